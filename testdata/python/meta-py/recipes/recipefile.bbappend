APPEND_RECIPE_FILE := "${@os.path.basename(d.getVar('__BB_RECIPE_FILE'))}"
APPEND_FILE := "${@os.path.basename(d.getVar('FILE'))}"
require recipefile-b.inc
