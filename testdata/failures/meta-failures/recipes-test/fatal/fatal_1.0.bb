SUMMARY = "do_configure gives up through bbfatal"
LICENSE = "MIT"

do_configure() {
	if [ ! -f defconfig ]; then
		bbfatal "no defconfig for ${MACHINE}"
	fi
}
