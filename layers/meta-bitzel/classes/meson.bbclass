# meson.bbclass: a Meson project, configured with the host's meson and built
# with ninja and the host toolchain:
#   do_configure  meson setup ${B} ${MESON_SOURCEPATH} <paths> ${EXTRA_OEMESON}
#   do_compile    ninja -C ${B} ${PARALLEL_MAKE}
#   do_install    DESTDIR=${D} meson install -C ${B} --no-rebuild
# Out of tree: ${B} is emptied before configure runs. Subprojects are never
# downloaded (--wrap-mode=nodownload): tasks have no network. Inherit
# pkgconfig as well for dependency() lookups in the recipe sysroot.

B = "${WORKDIR}/build"
EXTRA_OEMESON ?= ""
MESON_SOURCEPATH ?= "${S}"
MESON_BUILDTYPE ?= "release"

MESON_PATHS = "--prefix=${prefix} --bindir=${bindir} --sbindir=${sbindir} \
    --libexecdir=${libexecdir} --libdir=${libdir} --includedir=${includedir} \
    --datadir=${datadir} --mandir=${mandir} --infodir=${infodir} \
    --sysconfdir=${sysconfdir} --localstatedir=${localstatedir}"

meson_do_configure() {
	command -v meson >/dev/null || bbfatal "meson is not installed on the build host (Debian: apt-get install meson): the meson class uses the host's"
	command -v ninja >/dev/null || bbfatal "ninja is not installed on the build host (Debian: apt-get install ninja-build)"
	meson setup ${B} ${MESON_SOURCEPATH} ${MESON_PATHS} --buildtype=${MESON_BUILDTYPE} \
		--wrap-mode=nodownload ${EXTRA_OEMESON} \
		|| bbfatal "meson setup failed (see ${B}/meson-logs/meson-log.txt)"
}
do_configure[cleandirs] = "${B}"

meson_do_compile() {
	ninja -C ${B} ${PARALLEL_MAKE} || bbfatal "ninja failed"
}

meson_do_install() {
	DESTDIR=${D} meson install -C ${B} --no-rebuild || bbfatal "meson install failed"
}

EXPORT_FUNCTIONS do_configure do_compile do_install
