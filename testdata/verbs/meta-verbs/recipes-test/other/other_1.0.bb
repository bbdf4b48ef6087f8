SUMMARY = "Deploys a file of its own next to app's"
LICENSE = "MIT"

inherit deploy

do_deploy() {
	install -d ${DEPLOYDIR}/app
	echo other > ${DEPLOYDIR}/other.txt
	echo other > ${DEPLOYDIR}/app/other.txt
}
