SUMMARY = "greeter: a program built against the suite's libraries with a generated header"
DESCRIPTION = "Written for bitzel's recipe-suite example. do_compile runs \
embedfile from the native sysroot (on PATH) to turn greeting.json into \
greeting.h, and links cJSON (CMake) and FriBidi (Meson) from the recipe \
sysroot through pkg-config."
LICENSE = "MIT"

DEPENDS = "virtual/cc embedfile-native cjson fribidi"

SRC_URI = "file://greeter.c;subdir=${BP} file://greeting.json;subdir=${BP}"

inherit pkgconfig

do_compile() {
	command -v embedfile >/dev/null || bbfatal "embedfile-native is not on PATH (${STAGING_BINDIR_NATIVE})"
	[ "$(command -v embedfile)" = "${STAGING_BINDIR_NATIVE}/embedfile" ] \
		|| bbfatal "embedfile comes from $(command -v embedfile), not the native sysroot"
	embedfile greeting_json <${S}/greeting.json >greeting.h
	${CC} ${CFLAGS} -I. $(pkg-config --cflags libcjson fribidi) -o greeter ${S}/greeter.c \
		${LDFLAGS} $(pkg-config --libs libcjson fribidi)
	# Target and build host are one machine here: run it against the sysroot's
	# libraries once, so a broken link shows now rather than in the image.
	LD_LIBRARY_PATH=${STAGING_LIBDIR} ./greeter
}

do_install() {
	install -d ${D}${bindir}
	install -m 0755 greeter ${D}${bindir}/greeter
}
