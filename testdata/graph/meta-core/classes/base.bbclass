# The task chain every recipe gets. Inter-recipe edges come only from the
# flags set here, as in OE-core: a DEPENDS provider's do_populate_sysroot
# before do_prepare_recipe_sysroot ([deptask]), RDEPENDS providers'
# do_packagedata before do_package_write ([rdeptask]).
base_do_fetch() {
	echo fetch
}
base_do_compile() {
	make
}
addtask fetch
addtask unpack after do_fetch
addtask patch after do_unpack
addtask prepare_recipe_sysroot before do_configure after do_fetch
do_prepare_recipe_sysroot[deptask] = "do_populate_sysroot"
addtask configure after do_patch
addtask compile after do_configure
do_compile[dirs] = "${B}"
do_compile[cleandirs] = "${B}/.libs"
addtask install after do_compile
addtask populate_sysroot after do_install
addtask package after do_install
do_package[deptask] = "do_packagedata"
addtask packagedata after do_package
addtask package_write after do_packagedata
do_package_write[rdeptask] = "do_packagedata"
addtask build after do_populate_sysroot do_package_write
do_build[noexec] = "1"
addtask clean
do_clean[nostamp] = "1"
EXPORT_FUNCTIONS do_fetch do_compile
