SUMMARY = "A tiny initramfs: static BusyBox and an /init that starts a shell on the console"
LICENSE = "MIT"

inherit image

IMAGE_INSTALL = "busybox"

# The image boots in QEMU: build and deploy the machine's kernel with it.
EXTRA_IMAGEDEPENDS += "virtual/kernel"

# Printed by /init once the system is up; `bitzel runqemu --check` waits for it.
BITZEL_BOOT_MARKER = "bitzel: core-image-busybox is up"

ROOTFS_POSTPROCESS_COMMAND += "core_image_busybox_init; core_image_busybox_etc;"

# /init runs as PID 1 from the initramfs: mount the kernel file systems, say
# hello on the console, then keep a login-less shell on it (respawned).
core_image_busybox_init() {
	cat >init <<'INIT'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname bitzel
echo
INIT
	echo "echo \"${BITZEL_BOOT_MARKER} (\$(uname -m), \$(uname -r))\"" >>init
	cat >>init <<'INIT'
while true; do
	setsid cttyhack /bin/sh -l
	echo "init: the shell exited; starting another one (poweroff -f to stop)"
done
INIT
	chmod 0755 init
}

core_image_busybox_etc() {
	echo "root:x:0:0:root:/root:/bin/sh" >etc/passwd
	echo "root:x:0:" >etc/group
	echo "bitzel" >etc/hostname
	echo 'export PS1="bitzel# "' >etc/profile
	echo "${BITZEL_BOOT_MARKER}" >etc/bitzel-release
}
