SUMMARY = "BitBake's own fetcher in a Python task, as poky's do_fetch runs it"
LICENSE = "MIT"

inherit deploy

# BitBake's build directory layout, as OpenEmbedded-Core names it: DL_DIR
# below the build directory (bitzel's own download directory is there too).
WORKDIR = "${TOPDIR}/tmp/work/${PN}"
DL_DIR = "${TOPDIR}/downloads"
FILESPATH = "${@os.path.dirname(d.getVar('FILE'))}/files"

# Not SRC_URI: bitzel's own fetch and unpack built-ins leave these alone.
PYFETCH_URI = "file://greeting.txt http://downloads.invalid/hello-1.0.txt"
SRC_URI[sha256sum] = "7765637a7c41aebc23cd4f6d791cbb2795e6e6e5d5f35a5b4f655cdc863a3ad1"

# BitBake's fetcher: DL_DIR made as the task's [dirs], a lock file (removed
# again) and a `.done` stamp written there; the layer's file found through
# FILESPATH, the http one in DL_DIR (no network).
python do_getsrc() {
    import os
    fetcher = bb.fetch2.Fetch(d.getVar("PYFETCH_URI").split(), d)
    fetcher.download()
    b = d.getVar("B")
    os.makedirs(b, exist_ok=True)
    with open(os.path.join(b, "sources.txt"), "w") as out:
        for path in fetcher.localpaths():
            out.write("%s: %s" % (os.path.basename(path), open(path).read()))
    with open(os.path.join(b, "dl_dir.txt"), "w") as out:
        dl = d.getVar("DL_DIR")
        out.write(" ".join(sorted(os.listdir(dl))) + "\n")
        stamp = os.path.getsize(os.path.join(dl, "hello-1.0.txt.done"))
        out.write("stamp rewritten %s\n" % (stamp > 0))
    # As bitbake-worker sets them: the task and what it depends on.
    deps = d.getVar("BB_TASKDEPDATA")
    me = [k for k, v in deps.items() if v.pn == d.getVar("PN") and v.taskname == "do_getsrc"]
    with open(os.path.join(b, "taskdepdata.txt"), "w") as out:
        for k in sorted(deps):
            v = deps[k]
            out.write("%s %s %s deps=%s\n" % (os.path.basename(k), v.pn, v.taskname,
                      " ".join(sorted(os.path.basename(x) for x in v.deps))))
        out.write("own hash %s\n" % (d.getVar("BB_TASKHASH") == deps[me[0]].taskhash))
        mask = os.umask(0)
        out.write("umask %03o\n" % mask)
}
do_getsrc[dirs] = "${DL_DIR}"
# Keyed by every later Python task; one file named twice, as poky names
# scripts/runqemu twice (nothing of it is mounted, so that is no conflict).
do_fetch[file-checksums] = "${FILESPATH}/greeting.txt:True ${FILESPATH}/greeting.txt:True"
do_getsrc[umask] = "027"
addtask getsrc after do_unpack before do_compile

do_deploy() {
	cp ${B}/sources.txt ${B}/dl_dir.txt ${B}/taskdepdata.txt ${DEPLOYDIR}/
}
