import bb

_context = {"bb": bb}


def get_context():
    return _context
