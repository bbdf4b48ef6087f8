SUMMARY = "A Python task that gives up through bb.fatal"
LICENSE = "MIT"

python do_compile() {
    if not d.getVar("PYFATAL_CONFIG"):
        bb.fatal("PYFATAL_CONFIG is not set for %s" % d.getVar("PN"))
}
