SUMMARY = "A fixed-output download: its identity is the declared sha256"
LICENSE = "MIT"

# The test puts version A (this checksum) into DL_DIR; the mirror below holds
# version B. Nothing is ever fetched over the network (BB_NO_NETWORK).
SRC_URI = "https://downloads.example.invalid/payload/payload-1.0.txt"
SRC_URI[sha256sum] = "32caa0fd9f4d940d443ad0ff7737e7a419786d7b7bccf4d808c89c4443f5f8b7"
PREMIRRORS = "https://.*/.* file://${FILE_DIRNAME}/mirror/"

do_compile() {
	cat ${WORKDIR}/payload-1.0.txt > payload.out
}

do_install() {
	install -d ${D}${datadir}
	install -m 0644 payload.out ${D}${datadir}/payload.out
}
