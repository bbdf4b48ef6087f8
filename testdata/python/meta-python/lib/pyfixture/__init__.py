# The test layer's Python library (addpylib in conf/layer.conf).


def greeting(d):
    return "greetings from pyfixture to %s" % d.getVar("PN")

# Imported with the library, as oe's are.
BBIMPORTS = ["helpers"]
