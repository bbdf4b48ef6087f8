# image.bbclass: bitzel's own image class.
#
# An image recipe lists what goes into the root file system in IMAGE_INSTALL.
# do_rootfs stacks the staged output (do_populate_sysroot, i.e. the whole of
# ${D}) of those recipes and of the target recipes they depend on at build
# time (their target sysroots; -native tools never, see native.bbclass),
# runs the recipe's ROOTFS_POSTPROCESS_COMMAND shell functions on the tree,
# and writes it in every format IMAGE_FSTYPES names, reproducibly:
#   tar.gz    ${IMGDEPLOYDIR}/${IMAGE_NAME}.tar.gz   (GNU tar, sorted, owner 0:0)
#   cpio.gz   ${IMGDEPLOYDIR}/${IMAGE_NAME}.cpio.gz  (newc, with /dev/console)
#   ext4      ${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4     (mke2fs -d, fixed UUID,
#             hash seed and time, every inode's times set to
#             SOURCE_DATE_EPOCH by debugfs; size: IMAGE_ROOTFS_SIZE KiB, else
#             twice the tree plus IMAGE_ROOTFS_EXTRA_SPACE)
# An unknown type is refused when the recipe is parsed, naming the recipe.
# IMGDEPLOYDIR is the task's [deploy-dir], published to DEPLOY_DIR_IMAGE.
# EXTRA_IMAGEDEPENDS names recipes built with the image that put nothing in
# it (a kernel, a bootloader): their do_build runs before the image's.

IMAGE_INSTALL ?= ""
IMAGE_FSTYPES ?= "cpio.gz"
IMAGE_FSTYPES_SUPPORTED = "tar.gz cpio.gz ext4"
IMAGE_ROOTFS_SIZE ?= ""
IMAGE_ROOTFS_EXTRA_SPACE ?= "4096"
# Fixed identities of the ext4 image (reproducible; override per image).
IMAGE_EXT4_UUID ?= "b172e1ce-0000-4000-8000-000000000001"
IMAGE_EXT4_HASH_SEED ?= "b172e1ce-0000-4000-8000-000000000002"
EXTRA_IMAGEDEPENDS ?= ""
IMAGE_NAME ?= "${PN}-${MACHINE}"
IMAGE_ROOTFS = "${WORKDIR}/rootfs"
IMGDEPLOYDIR = "${WORKDIR}/deploy-${PN}"
# Directories every image has, whether or not a package creates them.
IMAGE_ROOTFS_DIRS ?= "/bin /sbin /usr/bin /usr/sbin /etc /dev /proc /sys /tmp /root /run /var"
ROOTFS_POSTPROCESS_COMMAND ?= ""

# Image recipes have no sources of their own.
SRC_URI = ""
LICENSE ?= "MIT"
do_fetch[noexec] = "1"
do_unpack[noexec] = "1"
do_patch[noexec] = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install[noexec] = "1"
do_populate_sysroot[noexec] = "1"

# What goes in: IMAGE_INSTALL as build-time dependencies of the image; each
# one's sysroot layer carries the target layers it was built against, so the
# image sees those too (a recursive [recrdeptask] would also bring the
# -native tools every recipe used, into the image's key).
DEPENDS += "${IMAGE_INSTALL}"
do_rootfs[deptask] = "do_populate_sysroot"

do_build[depends] += "${@' '.join([x + ':do_build' for x in (d.getVar('EXTRA_IMAGEDEPENDS') or '').split()])}"

# Unknown image types fail the parse, naming the recipe and the value, rather
# than do_rootfs after everything else was built.
python () {
    supported = (d.getVar('IMAGE_FSTYPES_SUPPORTED') or '').split()
    for t in (d.getVar('IMAGE_FSTYPES') or '').split():
        if t not in supported:
            bb.fatal("%s: IMAGE_FSTYPES has '%s', which bitzel's image class cannot write (it writes: %s)" % (d.getVar('PN'), t, ' '.join(supported)))
}

# usage: bitzel_cpio_entry <name> <mode> <rdev major> <rdev minor>
# Writes one newc header for an entry without data (a device node or the
# trailer): GNU cpio archives only what exists on disk, and no task can create
# device nodes in bitzel's sandbox, so /dev/console is written here by hand.
bitzel_cpio_entry() {
	namesize=$(($(printf '%s' "$1" | wc -c) + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		0 "$2" 0 0 1 "$SOURCE_DATE_EPOCH" 0 0 0 "$3" "$4" "$namesize" 0
	printf '%s\000' "$1"
	pad=$(((4 - (110 + namesize) % 4) % 4))
	while [ "$pad" -gt 0 ]; do
		printf '\000'
		pad=$((pad - 1))
	done
}

# usage: bitzel_pack_cpio <root dir> <output .cpio.gz>
# Reproducible: sorted names, owner 0:0, every mtime SOURCE_DATE_EPOCH,
# sequential inode numbers, gzip without name or time stamp.
bitzel_pack_cpio() {
	root="$1"
	out="$2"
	find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out.cpio"
	# A second archive, concatenated (the kernel unpacks every one in turn):
	# the console device the kernel opens for /init's stdin/stdout/stderr.
	{
		bitzel_cpio_entry dev/console $((0020600)) 5 1
		bitzel_cpio_entry TRAILER!!! 0 0 0
	} >>"$out.cpio"
	gzip -9 -n <"$out.cpio" >"$out"
	rm -f "$out.cpio"
	bbnote "packed $(cd "$root" && find . -mindepth 1 | wc -l) entries into $out ($(wc -c <"$out") bytes)"
}

# usage: bitzel_pack_tar <root dir> <output .tar.gz>
bitzel_pack_tar() {
	tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
		--format=gnu -C "$1" -cf - . | gzip -9 -n >"$2"
	bbnote "packed $2 ($(wc -c <"$2") bytes)"
}

# usage: bitzel_pack_ext4 <root dir> <output .ext4>
# mke2fs -d adds entries in the order the directory lists them; a copy made in
# sorted order on /tmp (a tmpfs, which lists in creation order) makes that
# order, and so the image, the same on every run.
bitzel_pack_ext4() {
	command -v mke2fs >/dev/null && command -v debugfs >/dev/null \
		|| bbfatal "mke2fs or debugfs is not installed on the build host (Debian: apt-get install e2fsprogs): IMAGE_FSTYPES ext4 needs them"
	stage=$(mktemp -d /tmp/ext4-root.XXXXXX)
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -pdm --quiet "$stage")
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	size_kb="${IMAGE_ROOTFS_SIZE}"
	if [ -z "$size_kb" ]; then
		size_kb=$(($(du -sk "$stage" | cut -f1) * 2 + ${IMAGE_ROOTFS_EXTRA_SPACE}))
		[ "$size_kb" -ge 8192 ] || size_kb=8192
	fi
	rm -f "$2"
	E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -b 4096 -d "$stage" \
		-U ${IMAGE_EXT4_UUID} -E hash_seed=${IMAGE_EXT4_HASH_SEED},root_owner=0:0,nodiscard \
		-L "${PN}" "$2" "$size_kb"K || bbfatal "mke2fs failed for $2"
	# mke2fs copies each file's ctime and atime, which no tool can set on the
	# source: debugfs sets them to SOURCE_DATE_EPOCH, as touch did mtime.
	(cd "$stage" && find . | LC_ALL=C sort | sed 's|^\.||; s|^$|/|' | while IFS= read -r p; do
		printf 'sif "%s" ctime @%s\nsif "%s" atime @%s\n' "$p" "$SOURCE_DATE_EPOCH" "$p" "$SOURCE_DATE_EPOCH"
	done) >"$stage.debugfs"
	E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$stage.debugfs" "$2" >"$stage.debugfs.log" 2>&1 \
		|| { cat "$stage.debugfs.log" >&2; bbfatal "debugfs could not set the times in $2"; }
	# (debugfs -f echoes each command as "debugfs: ..."; anything else is an error)
	if grep -v '^debugfs[ :]' "$stage.debugfs.log" | grep -q .; then
		cat "$stage.debugfs.log" >&2
		bbfatal "debugfs could not set the times in $2"
	fi
	rm -rf "$stage" "$stage.debugfs" "$stage.debugfs.log"
	bbnote "wrote $2 (${size_kb} KiB)"
}

do_rootfs() {
	rm -rf ${IMAGE_ROOTFS}
	mkdir -p ${IMAGE_ROOTFS}
	if [ -d ${STAGING_DIR_HOST} ]; then
		cp -a ${STAGING_DIR_HOST}/. ${IMAGE_ROOTFS}/
	fi
	for dir in ${IMAGE_ROOTFS_DIRS}; do
		mkdir -p ${IMAGE_ROOTFS}$dir
	done
	cd ${IMAGE_ROOTFS}
	${ROOTFS_POSTPROCESS_COMMAND}
	cd ${WORKDIR}
	for fstype in ${IMAGE_FSTYPES}; do
		case "$fstype" in
		cpio.gz) bitzel_pack_cpio ${IMAGE_ROOTFS} ${IMGDEPLOYDIR}/${IMAGE_NAME}.cpio.gz ;;
		tar.gz) bitzel_pack_tar ${IMAGE_ROOTFS} ${IMGDEPLOYDIR}/${IMAGE_NAME}.tar.gz ;;
		ext4) bitzel_pack_ext4 ${IMAGE_ROOTFS} ${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4 ;;
		*) bbfatal "IMAGE_FSTYPES has $fstype, which the image class cannot write" ;;
		esac
	done
}
do_rootfs[dirs] = "${WORKDIR}"
do_rootfs[cleandirs] = "${IMGDEPLOYDIR}"
do_rootfs[deploy-dir] = "deploy-${PN}"
do_rootfs[doc] = "Assembles the image root file system and packs it"
addtask rootfs after do_prepare_recipe_sysroot before do_build
