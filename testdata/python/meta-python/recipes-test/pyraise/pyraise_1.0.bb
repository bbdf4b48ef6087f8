SUMMARY = "A Python task with an uncaught exception"
LICENSE = "MIT"

python do_compile() {
    settings = {"name": d.getVar("PN")}
    bb.note("looking up the version")
    version = settings["version"]
}
