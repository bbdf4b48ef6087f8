# PN/PV come from the file name busybox_1.35.0.bb.
require busybox.inc
inherit autotools

DEPENDS = "virtual/libc"
DEPENDS:append:class-native = " zlib-native"
EXTRA_OECONF = "--enable-static"
EXTRA_OECONF:qemux86-64 = "--enable-static --x86"
# Appends/prepends with conditions (manual: "Conditional Syntax (Overrides)").
SRC_URI:append = " file://defconfig"
SRC_URI:prepend:pn-busybox = "file://first.patch "
FILES:${PN}-syslog = "${sysconfdir}/syslog.conf"
sysconfdir = "/etc"
# Operators (manual: "Basic Syntax").
A = "a"
A += "plus"
A =+ "pre"
A .= ".dot"
A =. "dot."
B2 ?= "first"
B2 ?= "second"
C ??= "weak1"
C ??= "weak2"
D2 ??= "weak"
D2 = "strong"
E = "${A}"
do_install:append() {
	install -d ${D}${bindir}
}
fakeroot do_package() {
	true
}
addtask package after do_install
deltask do_fetch_never_added
BBCLASSEXTEND = "native"
