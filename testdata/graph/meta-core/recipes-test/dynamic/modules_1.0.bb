# Module packages made at packaging time, named by a PACKAGES_DYNAMIC
# pattern with a negative lookbehind: every modules-mod-* package except
# the ones ending in "native".
PACKAGES_DYNAMIC = "^modules-mod-.*(?<!native)$"
