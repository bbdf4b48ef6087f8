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
