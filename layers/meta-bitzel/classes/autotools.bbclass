# autotools.bbclass: a project with a generated `configure` script
# (GNU Autoconf/Automake release tarballs), built with the host toolchain:
#   do_configure  ${S}/configure ${CONFIGUREOPTS} ${EXTRA_OECONF}, run in ${B}
#   do_compile    oe_runmake (make ${PARALLEL_MAKE} ${EXTRA_OEMAKE})
#   do_install    oe_runmake DESTDIR=${D} install
# The build is out of tree: ${B} is a directory of its own, emptied before
# configure runs, so the source tree stays as do_patch left it.
#
# bitzel does not run autoreconf: use a release tarball (its `configure` is
# generated) or generate it in a do_configure:prepend of your own.

B = "${WORKDIR}/build"
EXTRA_OECONF ?= ""
EXTRA_OEMAKE ?= ""

CONFIGUREOPTS = "--prefix=${prefix} --exec-prefix=${exec_prefix} \
    --bindir=${bindir} --sbindir=${sbindir} --libexecdir=${libexecdir} \
    --datadir=${datadir} --sysconfdir=${sysconfdir} --localstatedir=${localstatedir} \
    --libdir=${libdir} --includedir=${includedir} --mandir=${mandir} \
    --infodir=${infodir} --docdir=${docdir} \
    --disable-silent-rules"

autotools_do_configure() {
	[ -x ${S}/configure ] || bbfatal "${S}/configure does not exist or is not executable: the autotools class runs a release tarball's generated configure (bitzel does not run autoreconf)"
	if ! ${S}/configure ${CONFIGUREOPTS} ${EXTRA_OECONF}; then
		[ ! -f config.log ] || tail -n 40 config.log >&2
		bbfatal "configure failed (the end of ${B}/config.log is above)"
	fi
}
do_configure[cleandirs] = "${B}"

autotools_do_compile() {
	oe_runmake
}

autotools_do_install() {
	oe_runmake DESTDIR=${D} install
}

EXPORT_FUNCTIONS do_configure do_compile do_install
