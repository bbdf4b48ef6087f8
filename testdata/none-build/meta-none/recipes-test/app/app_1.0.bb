SUMMARY = "Two chained tasks: do_compile changes and deletes what do_configure made"
LICENSE = "MIT"
DEPENDS = "greet"

inherit deploy

do_configure() {
	echo one > keep.txt
	echo one > modify.txt
	echo doomed > delete.txt
	mkdir -p deldir/sub replace
	echo a > deldir/a
	echo b > deldir/sub/b
	echo old > replace/old
	cp ${STAGING_INCDIR}/greet.h greet.h
}

do_compile() {
	echo two >> modify.txt
	rm delete.txt
	rm -r deldir
	rm -r replace
	mkdir replace
	echo new > replace/new
	chmod 0600 keep.txt
	sed 's/hello/bye/' greet.h > bye.h
	cat ${STAGING_DIR_HOST}${datadir}/greet/version > version.txt
}

do_install() {
	install -d ${D}${datadir}/app
	install -m 0644 modify.txt bye.h ${D}${datadir}/app/
}

do_deploy() {
	install -d ${DEPLOYDIR}
	cp ${B}/modify.txt ${B}/version.txt ${B}/bye.h ${DEPLOYDIR}/
	(cd ${B} && find . | sort) > ${DEPLOYDIR}/listing.txt
}
