class Event:
    def __init__(self):
        self.data = None


class ConfigParsed(Event):
    pass


class MultiConfigParsed(Event):
    def __init__(self, mcdata):
        super().__init__()
        self.mcdata = mcdata


class RecipeEvent(Event):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn


class RecipePreFinalise(RecipeEvent):
    pass


class RecipePostKeyExpansion(RecipeEvent):
    pass


class RecipeParsed(RecipeEvent):
    pass


class RecipeTaskPreProcess(RecipeEvent):
    def __init__(self, fn, tasklist):
        super().__init__(fn)
        self.tasklist = tasklist
