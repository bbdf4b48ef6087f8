PN = "good"
FLAVOURS = "sweet sour"

python () {
    def helper(x):
        return x + "!"
    n = 0
    while n < 2:
        d.appendVar("COUNTED", " " + helper(str(n)))
        n += 1
    d.setVar("OBJ", {"k": (1, 2)})
    o = d.getVar("OBJ")
    d.setVar("OBJ_KIND", type(o).__name__ + ":" + str(o["k"][1]))
    # Equal to OBJ's content but not the same literal (True == 1): each
    # keeps its own text, and reads back as its own object.
    d.setVar("OBJ_AGAIN", {"k": (1, 2)})
    d.setVar("OBJ_TRUE", {"k": (True, 2)})
    d.setVar("OBJ_TRUE_READ", repr(d.getVar("OBJ_TRUE")) + repr(d.getVar("OBJ_AGAIN")))
    d.setVarFlag("do_thing", "cleandirs", "/x")
    local = d.createCopy()
    local.setVar("FLAVOURS", "bitter")
    d.setVar("COPY_SEEN", local.getVar("FLAVOURS") + "/" + d.getVar("FLAVOURS"))
    d.setVar("HAS_OV", str(d.hasOverrides("FLAVOURS")))
    d.setVar("IN_D", str("FLAVOURS" in d) + str("NOPE" in d))

    class Extender:
        def __init__(self, d):
            self.d = d
    d.setVar("EXTENDER", Extender(d))
    d.setVar("EXTENDER_BACK", str(d.getVar("EXTENDER").d is d))
}

addtask thing after do_other
addtask other

python () {
    # BitBake's internal lists are Python lists, as bb.build.addtask uses them.
    tasks = d.getVar("__BBTASKS", False)
    tasks.append("do_extra")
    d.setVar("__BBTASKS", tasks)
    deps = d.getVarFlag("do_thing", "deps", False)
    d.setVarFlag("do_extra", "deps", deps + ["do_thing"])
    d.setVarFlag("do_extra", "task", 1)
}

export EXPORTED = "e"

python () {
    # The same value read twice is the same object, as DataSmart returns its
    # stored one; the parser's `export` flag is the int 1.
    d.setVar("SAME_OBJECT", str(d.getVar("FLAVOURS", False) is d.getVar("FLAVOURS", False)))
    d.setVar("EXPORT_FLAG", repr(d.getVarFlag("EXPORTED", "export")))
    import io
    out = io.StringIO()
    d.varhistory.emit("FLAVOURS", None, None, out, d)
    d.setVar("FLAVOURS_HISTORY", out.getvalue())
}

REFS_A = "a"
REFS_GONE = "n"
REFS_CMD = "${REFS_A} ${@d.getVar('REFS_PY')} ${@bb.utils.contains('REFS_F', 'x', 'y', 'n', d)}"
REFS_CMD:remove = "${REFS_GONE}"

python () {
    # What an expansion read, as DataSmart's getVarFlag(retparser=True) and
    # expandWithRefs give it (`$` written as `%` so the value stays as is).
    v, p = d.getVarFlag("REFS_CMD", "_content", False, retparser=True)
    seen = [v, p.value, " ".join(sorted(p.references)), repr(sorted(p.contains.items())),
            repr(sorted(p.removes))]
    r = d.expandWithRefs("${REFS_CMD} ${REFS_A}", "X")
    seen.append(" ".join(sorted(r.references)))
    d.setVar("REFS_SEEN", "|".join(seen).replace("$", "%"))
}
