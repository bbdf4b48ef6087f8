SUMMARY = "Stages a header the others read"
LICENSE = "MIT"

do_install() {
	install -d ${D}${includedir}
	printf '#define BASE 1\n' > ${D}${includedir}/base.h
}
