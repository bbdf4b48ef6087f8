SUMMARY = "Depends on both branches"
LICENSE = "MIT"
DEPENDS = "slow quick"

do_compile() {
	cat ${STAGING_INCDIR}/slow.h ${STAGING_INCDIR}/quick.h > top.h
}

do_install() {
	install -d ${D}${includedir}
	install -m 0644 top.h ${D}${includedir}/
}
