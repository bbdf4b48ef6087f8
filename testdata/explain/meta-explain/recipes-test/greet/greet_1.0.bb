SUMMARY = "A local source file, compiled and staged for app"
LICENSE = "MIT"

SRC_URI = "file://greeting.txt"

do_compile() {
	cat ${WORKDIR}/greeting.txt > greeting.out
}

do_install() {
	install -d ${D}${datadir}/greet
	install -m 0644 greeting.out ${D}${datadir}/greet/greeting
}
