SUMMARY = "The long branch: its do_compile sleeps"
LICENSE = "MIT"
DEPENDS = "base"
SLOW_SECONDS = "1"

do_compile() {
	sleep ${SLOW_SECONDS}
	cp ${STAGING_INCDIR}/base.h slow.h
}

do_install() {
	install -d ${D}${includedir}
	install -m 0644 slow.h ${D}${includedir}/
}
