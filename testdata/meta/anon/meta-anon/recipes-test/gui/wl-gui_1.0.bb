# Skipped: provider resolution must pick x11-gui for virtual/gui.
PROVIDES = "virtual/gui"
python () {
    if not bb.utils.contains('DISTRO_FEATURES', 'wayland', True, False, d):
        raise bb.parse.SkipRecipe("requires wayland in DISTRO_FEATURES")
}
