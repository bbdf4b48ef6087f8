# Imported by addpylib (pyfixture's BBIMPORTS): BitBake's code parser reads
# these functions' source for their dependencies.
import os


def joined(d, *words):
    return os.path.join(d.getVar("WORKDIR") or "", *words)


def upper_pn(d):
    return (d.getVar("PN") or "").upper()
