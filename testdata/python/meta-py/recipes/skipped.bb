PN = "skipped"

python () {
    try:
        raise ValueError("x")
    except ValueError:
        raise bb.parse.SkipRecipe("not for this machine")
}
