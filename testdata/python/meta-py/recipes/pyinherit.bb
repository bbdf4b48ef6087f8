PN = "pyinherit"
CLASS_ORDER = "recipe"

python inherit_from_handler () {
    bb.parse.BBHandler.inherit(["viahandler"], d.getVar("FILE"), 5, d)
}
addhandler inherit_from_handler
inherit_from_handler[eventmask] = "bb.event.RecipePreFinalise"

python () {
    bb.parse.BBHandler.inherit("viaanon", d.getVar("FILE"), 12, d)
}
