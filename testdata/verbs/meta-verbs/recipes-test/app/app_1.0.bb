SUMMARY = "Depends on greet, deploys what it made"
LICENSE = "MIT"
DEPENDS = "greet"

inherit deploy

do_compile() {
	cp ${STAGING_INCDIR}/greet.h app.h
	echo "app ${PV}" > version.txt
}
do_compile[doc] = "Makes app.h and version.txt"

do_install() {
	install -d ${D}${datadir}/app
	install -m 0644 app.h ${D}${datadir}/app/
}

do_deploy() {
	install -d ${DEPLOYDIR}/app
	cp ${B}/version.txt ${DEPLOYDIR}/app-version.txt
	cp ${B}/app.h ${DEPLOYDIR}/app/app.h
}
do_deploy[doc] = "Deploys app-version.txt and app/app.h"

# A task of this recipe only, not part of do_build: run it with `-c stamp`;
# it writes the time, so each run gives a new output (for -f).
do_stamp() {
	date +%s%N > stamp.txt
}
do_stamp[doc] = "Writes the time"
addtask stamp after do_compile
