SUMMARY = "Debian's generic x86-64 kernel, deployed as bzImage"
DESCRIPTION = "Takes the kernel image out of one Debian kernel package, pinned \
by its sha256. scripts/preseed-downloads puts exactly that package into \
DL_DIR as linux-image-amd64.deb (apt-get download of LINUX_DEB_PACKAGE at \
LINUX_DEB_VERSION, checked against the checksum below); the file:// entry is \
not found in FILESPATH and is then taken from DL_DIR, as BitBake's local \
fetcher does. The declared checksum makes it a fixed-output download: the \
keys of this recipe's tasks are known without the file, so a build whose \
tasks are all cached never needs it. README.md says how to move to Debian's \
next kernel."
LICENSE = "GPL-2.0-only"
PROVIDES = "virtual/kernel"

inherit deploy

# unpack=0: the package is copied, not extracted. Its data.tar holds ~400 MB of
# modules an initramfs-only boot does not need; do_compile extracts ./boot only.
SRC_URI = "file://linux-image-amd64.deb;unpack=0;name=kernel"
# The package scripts/preseed-downloads fetches (Debian's archive index gives
# its sha256 too: `apt-cache show --no-all-versions <package>`).
LINUX_DEB_PACKAGE = "linux-image-6.1.0-57-amd64"
LINUX_DEB_VERSION = "6.1.192-3"
SRC_URI[kernel.sha256sum] = "14d219d01e1283261817d961dbb3895cb5b4288d0de10e0ba0632a0d993e15bf"

S = "${WORKDIR}/kernel"
B = "${S}"

do_configure[noexec] = "1"

do_compile() {
	member=$(ar t ${WORKDIR}/linux-image-amd64.deb | grep '^data\.tar') || bbfatal "linux-image-amd64.deb has no data.tar member"
	case "$member" in
	*.xz) decomp="xz -dc" ;;
	*.zst) decomp="zstd -dc" ;;
	*.gz) decomp="gzip -dc" ;;
	*.bz2) decomp="bzip2 -dc" ;;
	data.tar) decomp="cat" ;;
	*) bbfatal "linux-image-amd64.deb: unknown data member $member" ;;
	esac
	ar p ${WORKDIR}/linux-image-amd64.deb "$member" | $decomp | tar -x --wildcards './boot/vmlinuz-*'
	set -- boot/vmlinuz-*
	[ -f "$1" ] || bbfatal "linux-image-amd64.deb holds no boot/vmlinuz-*"
	[ "$#" -eq 1 ] || bbfatal "linux-image-amd64.deb holds several kernels: $*"
	bbnote "kernel $1"
}

do_install[noexec] = "1"

do_deploy() {
	set -- ${B}/boot/vmlinuz-*
	install -m 0644 "$1" ${DEPLOYDIR}/${KERNEL_IMAGETYPE}
	basename "$1" | sed 's/^vmlinuz-//' >${DEPLOYDIR}/${KERNEL_IMAGETYPE}.version
}
