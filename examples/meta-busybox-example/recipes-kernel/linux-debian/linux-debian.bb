SUMMARY = "Debian's generic x86-64 kernel, deployed as bzImage"
DESCRIPTION = "Takes the kernel image out of the Debian package that \
linux-image-amd64 currently depends on. scripts/preseed-downloads puts that \
package into DL_DIR as linux-image-amd64.deb; the file:// entry below is not \
found in FILESPATH and is then taken from DL_DIR, as BitBake's local fetcher \
does. When Debian moves on, only the file's content changes: its digest is \
part of this recipe's keys, so exactly this recipe's tasks run again."
LICENSE = "GPL-2.0-only"
PROVIDES = "virtual/kernel"

inherit deploy

# unpack=0: the package is copied, not extracted. Its data.tar holds ~400 MB of
# modules an initramfs-only boot does not need; do_compile extracts ./boot only.
SRC_URI = "file://linux-image-amd64.deb;unpack=0"

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
