import logging

logger = logging.getLogger("BitBake.Parsing")
handlers = []


class SkipRecipe(Exception):
    pass


class ParseError(Exception):
    def __init__(self, msg, filename):
        super().__init__(msg)


from bb.parse.parse_py import BBHandler, ConfHandler  # noqa: E402
