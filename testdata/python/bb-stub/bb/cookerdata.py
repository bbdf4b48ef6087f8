"""Stand-in for bb.cookerdata: this BitBake's cooker names the recipe file
it parses in __BB_RECIPE_FILE and calls the default configuration "" in
BB_CURRENT_MC, as newer BitBake does. bitzel only reads this module's source
to see both; it never runs it."""


def parse_recipe(d, bbfile, handle):
    d.setVar("__BB_RECIPE_FILE", bbfile)
    return handle(bbfile, d)


class CookerDataBuilder:
    def parseConfigurationFiles(self, prefiles, postfiles, mc=""):
        raise RuntimeError("the stand-in's parseConfigurationFiles ran")
