SUMMARY = "Places named as BitBake's build directory layout names them"
LICENSE = "MIT"

inherit deploy

# As OpenEmbedded-Core's bitbake.conf does: the work tree and the host tools
# below the build directory, and PATH naming HOSTTOOLS_DIR, exported.
WORKDIR = "${TOPDIR}/tmp/work/${PN}"
HOSTTOOLS_DIR = "${TOPDIR}/tmp/hosttools"
STAMP = "${TOPDIR}/tmp/stamps/${PN}"
export PATH = "${HOSTTOOLS_DIR}"

# A Python task: its subprocess finds a HOSTTOOLS tool through the exported
# PATH (os.environ, as BitBake's worker sets it), and so does the shell
# function it runs through exec_func.
python do_compile() {
    import os
    import subprocess
    b = d.getVar("B")
    os.makedirs(b, exist_ok=True)
    out = subprocess.run(["tr", "a-z", "A-Z"], input=b"python found tr\n",
                         stdout=subprocess.PIPE, check=True).stdout
    with open(os.path.join(b, "tools.txt"), "wb") as f:
        f.write(out)
    bb.build.exec_func("pynamed_shell", d)
    # The signature generator BitBake's worker sets up, and the recipe's
    # name it knows (sstate.bbclass asks for both).
    bb.siggen.dump_this_task(os.path.join(d.getVar("T"), "siginfo"), d)
    with open(os.path.join(b, "siggen.txt"), "w") as f:
        f.write("%s %s %s\n" % (bb.parse.siggen.name,
                                 getattr(bb.parse.siggen, "report_unihash", None),
                                 os.path.basename(d.getVar("BB_FILENAME"))))
    # The build directory is writable scratch; nothing of it is kept.
    scratch = os.path.join(d.getVar("TMPDIR"), "sstate-control")
    os.makedirs(scratch, exist_ok=True)
    with open(os.path.join(scratch, "manifest"), "w") as f:
        f.write("not kept\n")
}

pynamed_shell() {
	echo "shell found tr" | tr a-z A-Z >> ${B}/tools.txt
	echo "cwd $(pwd)" > ${B}/where.txt
}
pynamed_shell[dirs] = "${B}"

do_deploy() {
	cp ${B}/tools.txt ${B}/siggen.txt ${DEPLOYDIR}/
	test ! -e ${TMPDIR}/sstate-control/manifest
	echo "workdir ${WORKDIR}" > ${DEPLOYDIR}/where.txt
}
