SUMMARY = "Python tasks, hooks and exec_func both ways"
LICENSE = "MIT"

inherit deploy

export PYINFO_EXPORTED = "exported to ${PN}"

# A value that is a Python object (as poky's create-spdx keeps a dict in
# SPDX_LICENSE_DATA): tasks get the object, as BitBake's worker gives it.
python () {
    d.setVar("PYINFO_DATA", {"licenses": [{"id": "MIT"}], "n": 2})
}

def pyinfo_shout(d, text):
    return text.upper() + " (" + d.getVar("PN") + ")"

python pyinfo_pre() {
    import os
    os.makedirs(d.getVar("B"), exist_ok=True)
    with open(os.path.join(d.getVar("B"), "order.txt"), "w") as f:
        f.write("prefunc\n")
}

# Runs in the sandbox: what the task sees of its PID namespace and user map.
python do_compile() {
    import os
    b = d.getVar("B")
    with open(os.path.join(b, "order.txt"), "a") as f:
        f.write("task\n")
    uid_map = " ".join(open("/proc/self/uid_map").read().split())
    with open(os.path.join(b, "sandbox.txt"), "w") as f:
        f.write("pidns %s\n" % os.readlink("/proc/self/ns/pid"))
        f.write("uid_map %s\n" % uid_map)
        f.write("env %s\n" % os.environ.get("PYINFO_EXPORTED"))
        data = d.getVar("PYINFO_DATA")
        f.write("data %s %s\n" % (type(data).__name__, data["licenses"][0]["id"]))
    bb.note(pyfixture.greeting(d))
    bb.warn("a warning from a Python task")
}
do_compile[prefuncs] = "pyinfo_pre"
do_compile[postfuncs] = "pyinfo_post"

python pyinfo_post() {
    import os
    with open(os.path.join(d.getVar("B"), "order.txt"), "a") as f:
        f.write("postfunc\n")
}

# A shell task calling a Python function.
do_install() {
	install -d ${D}
	cp ${B}/order.txt ${B}/sandbox.txt ${D}/
	echo "${@pyinfo_shout(d, 'shell called python')}" > ${D}/from-shell.txt
}

# A Python task calling a shell function.
python do_deploy() {
    bb.build.exec_func("pyinfo_copy", d)
    bb.note("deployed " + d.getVar("PN"))
}

pyinfo_copy() {
	cp ${D}/* ${DEPLOYDIR}/
	echo "$PYINFO_EXPORTED" > ${DEPLOYDIR}/from-python.txt
}
