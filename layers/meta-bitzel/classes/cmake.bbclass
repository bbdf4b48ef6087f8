# cmake.bbclass: a CMake project, configured with the host's cmake for the
# Ninja generator (OECMAKE_GENERATOR) and built with the host toolchain:
#   do_configure  cmake -S ${OECMAKE_SOURCEPATH} -B ${B} -G Ninja <paths> ${EXTRA_OECMAKE}
#   do_compile    cmake --build ${B} ${PARALLEL_MAKE}
#   do_install    DESTDIR=${D} cmake --install ${B}
# Out of tree: ${B} is emptied before configure runs. find_package() and
# find_library() look in the recipe sysroot (and the native sysroot) before
# the host; inherit pkgconfig as well for pkg_check_modules().

B = "${WORKDIR}/build"
EXTRA_OECMAKE ?= ""
OECMAKE_SOURCEPATH ?= "${S}"
OECMAKE_GENERATOR ?= "Ninja"
OECMAKE_BUILDTYPE ?= "Release"

OECMAKE_PATHS = "-DCMAKE_INSTALL_PREFIX=${prefix} \
    -DCMAKE_INSTALL_BINDIR=${bindir} -DCMAKE_INSTALL_SBINDIR=${sbindir} \
    -DCMAKE_INSTALL_LIBEXECDIR=${libexecdir} -DCMAKE_INSTALL_SYSCONFDIR=${sysconfdir} \
    -DCMAKE_INSTALL_LOCALSTATEDIR=${localstatedir} -DCMAKE_INSTALL_LIBDIR=${libdir} \
    -DCMAKE_INSTALL_INCLUDEDIR=${includedir} -DCMAKE_INSTALL_DATAROOTDIR=${datadir}"
# A CMake list: quoted where it is used (";" separates shell commands).
OECMAKE_PREFIX_PATH = "${STAGING_DIR_HOST}${prefix};${STAGING_DIR_NATIVE}${prefix_native}"

cmake_do_configure() {
	command -v cmake >/dev/null || bbfatal "cmake is not installed on the build host (Debian: apt-get install cmake): the cmake class uses the host's"
	if [ "${OECMAKE_GENERATOR}" = Ninja ]; then
		command -v ninja >/dev/null || bbfatal "ninja is not installed on the build host (Debian: apt-get install ninja-build)"
	fi
	cmake -S ${OECMAKE_SOURCEPATH} -B ${B} -G "${OECMAKE_GENERATOR}" \
		-DCMAKE_BUILD_TYPE=${OECMAKE_BUILDTYPE} ${OECMAKE_PATHS} \
		"-DCMAKE_PREFIX_PATH=${OECMAKE_PREFIX_PATH}" ${EXTRA_OECMAKE} \
		|| bbfatal "cmake failed to configure ${OECMAKE_SOURCEPATH}"
}
do_configure[cleandirs] = "${B}"

cmake_do_compile() {
	cmake --build ${B} ${PARALLEL_MAKE} || bbfatal "cmake --build failed"
}

cmake_do_install() {
	DESTDIR=${D} cmake --install ${B} || bbfatal "cmake --install failed"
}

EXPORT_FUNCTIONS do_configure do_compile do_install
