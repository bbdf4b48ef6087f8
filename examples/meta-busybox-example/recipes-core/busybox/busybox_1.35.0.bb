SUMMARY = "BusyBox: many common UNIX utilities in one small static executable"
HOMEPAGE = "https://busybox.net"
LICENSE = "GPL-2.0-only"
SECTION = "base"

DEPENDS = "virtual/cc"

SRC_URI = "https://busybox.net/downloads/busybox-${PV}.tar.bz2"
SRC_URI[sha256sum] = "faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694"

S = "${WORKDIR}/busybox-${PV}"
# Kbuild-style tree built in place.
B = "${S}"

# KCONFIG_NOTIMESTAMP and KBUILD_BUILD_* keep the build host and the clock out
# of the binary; SOURCE_DATE_EPOCH is exported by bitbake.conf.
EXTRA_OEMAKE = "CC='${CC}' HOSTCC='${BUILD_CC}' V=0 \
                KCONFIG_NOTIMESTAMP=1 KBUILD_BUILD_USER=bitzel KBUILD_BUILD_HOST=bitzel"

# The configuration fragment is an input of do_configure only (BitBake's
# [file-checksums] flag): changing it re-runs configure and what follows, not
# fetch/unpack/patch of the tarball. bitzel mounts the listed files read-only
# at ${TASK_FILESDIR}/<name>.
do_configure[file-checksums] = "${FILE_DIRNAME}/files/static.cfg:True"

do_configure() {
    oe_runmake defconfig
    bitzel_merge_config ${TASK_FILESDIR}/static.cfg .config
    # Answer every new question with its default: no terminal in the sandbox.
    yes "" | oe_runmake oldconfig >/dev/null
    bitzel_check_config ${TASK_FILESDIR}/static.cfg .config
}

do_compile() {
    oe_runmake busybox
}

do_install() {
    oe_runmake CONFIG_PREFIX=${D} install
    # The applet links are relative symlinks to /bin/busybox.
    test -x ${D}${base_bindir}/busybox || bbfatal "busybox was not installed into ${D}${base_bindir}"
}
