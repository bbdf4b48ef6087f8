SUMMARY = "cJSON: an ultralightweight JSON parser in ANSI C"
HOMEPAGE = "https://github.com/DaveGamble/cJSON"
LICENSE = "MIT"

DEPENDS = "virtual/cc"

# Debian's cjson_1.7.15.orig.tar.gz is upstream's v1.7.15 tag archive, byte for byte.
SRC_URI = "https://github.com/DaveGamble/cJSON/archive/refs/tags/v${PV}.tar.gz;downloadfilename=cJSON-${PV}.tar.gz"
SRC_URI[sha256sum] = "5308fd4bd90cef7aa060558514de6a1a4a0819974a26e6ed13973c5f624c24b2"

S = "${WORKDIR}/cJSON-${PV}"

inherit cmake pkgconfig

EXTRA_OECMAKE = "-DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF -DBUILD_SHARED_AND_STATIC_LIBS=OFF"
