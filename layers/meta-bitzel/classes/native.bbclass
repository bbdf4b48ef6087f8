# native.bbclass: builds a recipe as a tool for the build host, either in a
# recipe of its own (`inherit native` in foo-native.bb) or as the variant
# BBCLASSEXTEND = "native" makes (PN foo-native).
#
# What it changes, as OpenEmbedded's native recipes behave:
# - OVERRIDES holds class-native instead of class-target (`:class-native`
#   assignments apply);
# - everything installs below STAGING_DIR_NATIVE (/bitzel/sysroot-native),
#   the path the tool runs from in the recipes that DEPEND on it, and
#   do_populate_sysroot stages that subtree;
# - its sysroot layer is a native one (bitzel's [sysroot-native] flag):
#   dependents see it at STAGING_DIR_NATIVE, with its bin on PATH, never in
#   their target sysroot, and a target recipe does not pass it on, so a
#   generator never ends up in an image nor in the key of one;
# - DEPENDS and PROVIDES name the -native variants (virtual/cc, the host
#   compiler, stays).

CLASSOVERRIDE = "class-native"

base_prefix = "${STAGING_DIR_NATIVE}"
prefix = "${STAGING_DIR_NATIVE}${prefix_native}"
SYSROOT_SOURCE = "${D}${STAGING_DIR_NATIVE}"
do_populate_sysroot[sysroot-native] = "1"

# Libraries of other -native recipes are found when the tool runs.
LDFLAGS:append = " -L${STAGING_LIBDIR_NATIVE} -Wl,-rpath,${STAGING_LIBDIR_NATIVE}"
CFLAGS:append = " -I${STAGING_INCDIR_NATIVE}"

python () {
    pn = d.getVar('PN')
    for var in ['DEPENDS', 'PROVIDES']:
        mapped = ''
        for dep in (d.getVar(var) or '').split():
            if not (dep.endswith('-native') or dep == 'virtual/cc' or dep == pn):
                dep = dep + '-native'
            mapped = mapped + ' ' + dep
        d.setVar(var, mapped.strip())
}
