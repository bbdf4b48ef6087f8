"""Stand-in for bb.cookerdata: this BitBake's cooker names the recipe file
it parses in __BB_RECIPE_FILE, as newer BitBake does. bitzel only compiles
this module to see that the cooker uses the name; it never runs it."""


def parse_recipe(d, bbfile, handle):
    d.setVar("__BB_RECIPE_FILE", bbfile)
    return handle(bbfile, d)
