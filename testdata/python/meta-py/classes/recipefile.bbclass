# FILE in a class is the file that inherits it.
CLASS_RECIPE_FILE := "${@os.path.basename(d.getVar('__BB_RECIPE_FILE'))}"
CLASS_FILE := "${@os.path.basename(d.getVar('FILE'))}"
