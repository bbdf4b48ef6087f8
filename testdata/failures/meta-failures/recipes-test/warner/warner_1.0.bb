SUMMARY = "Succeeds, with a warning and an error message on the way"
LICENSE = "MIT"

do_compile() {
	bbnote "a note stays in the log"
	bbwarn "option FOO is deprecated"
	echo built > built.txt
}
