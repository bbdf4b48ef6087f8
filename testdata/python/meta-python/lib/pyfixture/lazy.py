# Not in pyfixture's BBIMPORTS: imported only by pylazy's anonymous function,
# so a process that reads pylazy from the parse cache has not imported it.


def tagged(d):
    return "lazy:" + d.getVar("PN")
