SUMMARY = "GNU Hello: the GNU project's example of an Autoconf/Automake program"
HOMEPAGE = "https://www.gnu.org/software/hello/"
LICENSE = "GPL-3.0-or-later"

DEPENDS = "virtual/cc"

# Debian's hello_2.10.orig.tar.gz is GNU's release tarball, byte for byte.
SRC_URI = "https://ftp.gnu.org/gnu/hello/hello-${PV}.tar.gz"
SRC_URI[sha256sum] = "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"

inherit autotools

# No translations in the image; nothing of the host's gettext.
EXTRA_OECONF = "--disable-nls"

do_install:append() {
	# The info manual's directory file differs by host texinfo: not shipped.
	rm -f ${D}${infodir}/dir
}
