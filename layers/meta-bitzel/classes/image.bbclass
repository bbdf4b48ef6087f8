# image.bbclass: bitzel's own image class.
#
# An image recipe lists what goes into the root file system in IMAGE_INSTALL.
# do_rootfs stacks the staged output (do_populate_sysroot, i.e. the whole of
# ${D}) of those recipes and of everything they depend on, runs the recipe's
# ROOTFS_POSTPROCESS_COMMAND shell functions on the tree, and packs it as a
# reproducible newc cpio archive compressed with gzip:
#   ${IMGDEPLOYDIR}/${IMAGE_NAME}.cpio.gz
# IMGDEPLOYDIR is the task's [deploy-dir], published to DEPLOY_DIR_IMAGE.
# The image also makes the build deploy the machine's kernel (virtual/kernel).

IMAGE_INSTALL ?= ""
IMAGE_FSTYPES ?= "cpio.gz"
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

# What goes in: IMAGE_INSTALL as build-time dependencies of the image, and the
# staged output of those recipes and of everything they depend on.
DEPENDS += "${IMAGE_INSTALL}"
do_rootfs[recrdeptask] = "do_populate_sysroot"
do_rootfs[deptask] = "do_populate_sysroot"

# Building an image deploys the kernel that boots it.
do_build[depends] += "virtual/kernel:do_deploy"

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
	case " ${IMAGE_FSTYPES} " in
	*" cpio.gz "*) bitzel_pack_cpio ${IMAGE_ROOTFS} ${IMGDEPLOYDIR}/${IMAGE_NAME}.cpio.gz ;;
	*) bbfatal "IMAGE_FSTYPES = '${IMAGE_FSTYPES}': bitzel's image class writes cpio.gz only" ;;
	esac
}
do_rootfs[dirs] = "${WORKDIR}"
do_rootfs[cleandirs] = "${IMGDEPLOYDIR}"
do_rootfs[deploy-dir] = "deploy-${PN}"
do_rootfs[doc] = "Assembles the image root file system and packs it"
addtask rootfs after do_prepare_recipe_sysroot before do_build
