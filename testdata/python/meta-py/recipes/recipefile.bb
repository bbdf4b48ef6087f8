# FILE is the file being read; __BB_RECIPE_FILE (set by the cooker of a
# BitBake that has it: the stand-in bb.cookerdata does) stays this recipe
# in its include, its bbappend, the bbappend's include and a class.
REC_RECIPE_FILE := "${@os.path.basename(d.getVar('__BB_RECIPE_FILE'))}"
REC_FILE := "${@os.path.basename(d.getVar('FILE'))}"
require recipefile-a.inc
