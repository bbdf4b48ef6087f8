# Runtime dependencies on packages of modules' PACKAGES_DYNAMIC: the first
# matches it, the second (only with MODUSERS_NATIVE set) is excluded by the
# pattern's lookbehind.
RDEPENDS:${PN} = "modules-mod-foo ${MODUSERS_NATIVE}"
MODUSERS_NATIVE ??= ""
