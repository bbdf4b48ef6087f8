class SkipRecipe(Exception):
    pass
