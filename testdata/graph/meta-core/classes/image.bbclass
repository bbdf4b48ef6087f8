# Images: the root file system needs the packages of everything they pull in,
# recursively ([recrdeptask]); do_build also follows what do_image_complete
# depends on ([recideptask]), and the kernel's deploy ([depends]).
PACKAGES = ""
RDEPENDS:${PN} = "${IMAGE_INSTALL}"
deltask do_unpack
deltask do_patch
deltask do_configure
deltask do_compile
deltask do_install
deltask do_populate_sysroot
deltask do_package
deltask do_packagedata
deltask do_package_write
addtask rootfs after do_prepare_recipe_sysroot
do_rootfs[recrdeptask] = "do_package_write"
addtask image_complete after do_rootfs before do_build
do_image_complete[depends] = "virtual/kernel:do_deploy"
do_build[recrdeptask] = "do_deploy"
do_build[recideptask] = "do_image_complete"
