SUMMARY = "Its do_compile fails (for --keep-going)"
LICENSE = "MIT"

do_compile() {
	echo "broken: failing on purpose" >&2
	exit 1
}
