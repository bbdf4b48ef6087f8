SUMMARY = "Reads what greet stages in its sysroot"
LICENSE = "MIT"
DEPENDS = "greet"

do_compile() {
	cat ${STAGING_DIR_HOST}${datadir}/greet/greeting > app.out
}

do_install() {
	install -d ${D}${datadir}/app
	install -m 0644 app.out ${D}${datadir}/app/
}
