PN = "fatal"

python () {
    try:
        bb.fatal("no toolchain for " + d.getVar("PN"))
    finally:
        pass
}
