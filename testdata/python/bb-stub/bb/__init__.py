"""bitzel test stand-in for BitBake's bb package (not BitBake's code)."""
__version__ = "0.0-bitzel-stub"


def note(*args):
    import logging
    logging.getLogger("BitBake").info("".join(args))


def warn(*args):
    import logging
    logging.getLogger("BitBake").warning("".join(args))


class BBHandledException(Exception):
    pass


def fatal(*args):
    import logging
    logging.getLogger("BitBake").critical("".join(args))
    raise BBHandledException()
