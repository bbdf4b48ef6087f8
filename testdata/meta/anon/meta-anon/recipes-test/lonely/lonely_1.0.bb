PROVIDES = "virtual/lonely"
python () {
    import bb
    raise bb.parse.SkipRecipe('incompatible with %s' % d.getVar('PN'))
}
