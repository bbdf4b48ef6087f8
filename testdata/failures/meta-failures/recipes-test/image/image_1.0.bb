SUMMARY = "Like an image: nothing to configure or compile; do_install makes its files"
LICENSE = "MIT"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
	install -d ${D}/etc
	echo image > ${D}/etc/issue
}
