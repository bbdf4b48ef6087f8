PROVIDES = "virtual/gui"
python () {
    if not bb.utils.contains('DISTRO_FEATURES', 'x11', True, False, d):
        raise bb.parse.SkipRecipe("requires x11 in DISTRO_FEATURES")
}
