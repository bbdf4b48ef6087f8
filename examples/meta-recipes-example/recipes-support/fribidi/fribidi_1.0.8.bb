SUMMARY = "GNU FriBidi: the Unicode bidirectional algorithm"
HOMEPAGE = "https://github.com/fribidi/fribidi"
LICENSE = "LGPL-2.1-or-later"

DEPENDS = "virtual/cc"

# Debian's fribidi_1.0.8.orig.tar.bz2 is upstream's release tarball, byte for byte.
SRC_URI = "https://github.com/fribidi/fribidi/releases/download/v${PV}/fribidi-${PV}.tar.bz2"
SRC_URI[sha256sum] = "94c7b68d86ad2a9613b4dcffe7bbeb03523d63b5b37918bdf2e4ef34195c1e6c"

inherit meson pkgconfig

# No manual pages: they need c2man, which Debian does not ship.
EXTRA_OEMESON = "-Ddocs=false"
