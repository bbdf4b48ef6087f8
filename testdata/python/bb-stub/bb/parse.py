class SkipRecipe(Exception):
    pass


class BBHandler:
    """Stands in for bb.parse.BBHandler; bitzel replaces `inherit`."""

    @staticmethod
    def inherit(files, fn, lineno, d, deferred=False):
        raise RuntimeError("the stand-in's inherit ran: bitzel did not replace it")
