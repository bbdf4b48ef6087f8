# pkgconfig.bbclass: pkg-config (the host's) answers from the recipe
# sysroot only: the .pc files the recipe's DEPENDS staged, with
# PKG_CONFIG_SYSROOT_DIR prepended to their -I/-L paths, never the build
# host's own libraries. A native recipe asks the native sysroot instead
# (its .pc files already hold STAGING_DIR_NATIVE paths).

PKG_CONFIG_LIBDIR = "${STAGING_LIBDIR}/pkgconfig:${STAGING_DATADIR}/pkgconfig"
PKG_CONFIG_LIBDIR:class-native = "${STAGING_LIBDIR_NATIVE}/pkgconfig:${STAGING_DATADIR_NATIVE}/pkgconfig"
PKG_CONFIG_PATH = "${PKG_CONFIG_LIBDIR}"
PKG_CONFIG_SYSROOT_DIR = "${STAGING_DIR_HOST}"
PKG_CONFIG_SYSROOT_DIR:class-native = ""
PKG_CONFIG_DISABLE_UNINSTALLED = "yes"
PKG_CONFIG = "pkg-config"
export PKG_CONFIG_LIBDIR
export PKG_CONFIG_PATH
export PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_DISABLE_UNINSTALLED
export PKG_CONFIG

pkgconfig_check() {
	command -v pkg-config >/dev/null || bbfatal "pkg-config is not installed on the build host (Debian: apt-get install pkg-config): the pkgconfig class uses the host's"
}
do_configure[prefuncs] += "pkgconfig_check"
