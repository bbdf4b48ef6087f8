SUMMARY = "Compiles against a header in the host root (/usr/include)"
LICENSE = "MIT"
DEPENDS = "virtual/cc"

SRC_URI = "file://hostkey.c"
S = "${WORKDIR}"
B = "${S}"

# The header is not named anywhere in the recipe: only the host-root input of
# the key can notice that it changed.
do_compile() {
    ${CC} ${CFLAGS} -o hostkey hostkey.c
    ./hostkey > hostkey.out
    echo "hostkey compiled: $(cat hostkey.out)"
}

do_install() {
    install -d ${D}${bindir}
    install -m 0755 hostkey ${D}${bindir}/hostkey
    install -m 0644 hostkey.out ${D}${bindir}/hostkey.out
}
