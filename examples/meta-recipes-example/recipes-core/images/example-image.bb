SUMMARY = "The recipe suite in one root file system, as tar.gz, cpio.gz and ext4"
LICENSE = "MIT"

inherit image

IMAGE_INSTALL = "hello greeter"
IMAGE_FSTYPES = "tar.gz cpio.gz ext4"

ROOTFS_POSTPROCESS_COMMAND += "example_image_etc;"

example_image_etc() {
	echo "root:x:0:0:root:/root:/bin/sh" >etc/passwd
	echo "root:x:0:" >etc/group
}
