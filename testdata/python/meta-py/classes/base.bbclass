def twice(d, var):
    try:
        return d.getVar(var) * 2
    except TypeError:
        return "unset"

def reentrant(d):
    # Python -> getVar -> ${@...} -> Python again.
    return "[" + d.getVar("LOUD") + "]"

TWICE = "${@twice(d, 'WORDS')}"
NESTED = "${@reentrant(d)}"

addhandler py_config_handler
py_config_handler[eventmask] = "bb.event.ConfigParsed"
python py_config_handler() {
    d.setVar("CONFIG_SEEN", "yes:" + type(e).__name__)
    # As sanity.bbclass does after it updates configuration files: ask for
    # a re-parse, on every other firing (so each load parses twice). What
    # this parse set is gone after the re-parse.
    import pylib.words
    pylib.words.config_fired = getattr(pylib.words, "config_fired", 0) + 1
    if pylib.words.config_fired % 2 == 1:
        d.setVar("STALE", "set before the re-parse")
        d.setVar("BB_INVALIDCONF", True)
    else:
        d.setVar("REPARSED", "yes")
}

addhandler py_host_fact
py_host_fact[eventmask] = "bb.event.ConfigParsed"
python py_host_fact() {
    # As poky's base_eventhandler sets NATIVELSBSTRING from os-release: a
    # configuration value read from the host, in no metadata file.
    path = d.getVar("HOST_FACT_FILE")
    if path:
        with open(path) as f:
            d.setVar("HOST_FACT", f.read().strip())
}

addhandler py_mc_handler
py_mc_handler[eventmask] = "bb.event.MultiConfigParsed"
python py_mc_handler() {
    # As poky's base_eventhandler: write through e.mcdata.
    e.mcdata[''].setVar("MC_SEEN", "configs:" + ",".join(repr(k) for k in e.mcdata))
}

addhandler py_recipe_handler
py_recipe_handler[eventmask] = "bb.event.RecipePreFinalise bb.event.RecipeTaskPreProcess bb.event.RecipeParsed"
python py_recipe_handler() {
    kind = type(e).__name__
    e.data.appendVar("EVENTS", " " + kind)
    if kind == "RecipeTaskPreProcess":
        d.setVar("TASKLIST", " ".join(e.tasklist))
    if kind == "RecipeParsed" and d.getVar("PN") == "vetoed":
        raise bb.parse.SkipRecipe("vetoed by a handler")
}

# Writes during expansion, as oe.classextend's map_depends_variable does.
def extend_like(d):
    orig = d.getVar("MARK", False)
    d.setVar("MARK", "temporary")
    v = d.getVar("USES_MARK")
    d.setVar("MARK", orig)
    return v

MARK = "orig"
USES_MARK = "mark=${MARK}"
VIA_WRITE = "${@extend_like(d)}"
