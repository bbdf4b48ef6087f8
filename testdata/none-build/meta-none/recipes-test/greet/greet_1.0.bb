SUMMARY = "A dependency: app reads what it stages in its sysroot"
LICENSE = "MIT"

do_install() {
	install -d ${D}${includedir} ${D}${datadir}/greet
	printf '#define GREETING "hello from greet"\n' > ${D}${includedir}/greet.h
	echo "greet ${PV}" > ${D}${datadir}/greet/version
}
