import os
import time

import bb

_context = {"os": os, "bb": bb, "time": time}


def get_context():
    return _context


def which(path, item):
    for p in (path or "").split(":"):
        candidate = os.path.join(p, item)
        if os.path.exists(candidate):
            return candidate
    return ""
