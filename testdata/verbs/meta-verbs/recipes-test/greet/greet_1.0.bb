SUMMARY = "A dependency: stages a header app reads"
LICENSE = "MIT"

do_install() {
	install -d ${D}${includedir}
	printf '#define GREETING "hello"\n' > ${D}${includedir}/greet.h
}
