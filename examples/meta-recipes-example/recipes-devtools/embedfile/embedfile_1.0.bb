SUMMARY = "embedfile: turns a file into a C array (a build tool of this example)"
DESCRIPTION = "Written for bitzel's recipe-suite example. BBCLASSEXTEND gives \
embedfile-native, the build tool greeter's do_compile runs; the -native \
variant is staged in the native sysroot only, so it never reaches an image."
LICENSE = "MIT"

DEPENDS = "virtual/cc"

SRC_URI = "file://embedfile.c;subdir=${BP}"

BBCLASSEXTEND = "native"

do_compile() {
	${CC} ${CFLAGS} ${LDFLAGS} -o embedfile ${S}/embedfile.c
}

do_install() {
	install -d ${D}${bindir}
	install -m 0755 embedfile ${D}${bindir}/embedfile
}
