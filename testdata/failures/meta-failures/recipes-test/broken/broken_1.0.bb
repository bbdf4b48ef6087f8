SUMMARY = "do_compile fails on a missing header, after a warning"
LICENSE = "MIT"

do_configure() {
	echo configured > configured.txt
}

do_compile() {
	echo "compiling in $(pwd)"
	bbwarn "broken is about to fail"
	test -f missing.h
	echo "not reached"
}
