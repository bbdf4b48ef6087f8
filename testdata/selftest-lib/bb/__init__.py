"""bitzel test stand-in for BitBake's bb package (not BitBake's code)."""
import logging

logger = logging.getLogger("BitBake")


class BBHandledException(Exception):
    pass


def note(*args):
    logger.info("".join(args))


def warn(*args):
    logger.warning("".join(args))


def fatal(*args):
    logger.critical("".join(args))
    raise BBHandledException()
