SUMMARY = "The short branch"
LICENSE = "MIT"
DEPENDS = "base"

do_compile() {
	cp ${STAGING_INCDIR}/base.h quick.h
}

do_install() {
	install -d ${D}${includedir}
	install -m 0644 quick.h ${D}${includedir}/
}
