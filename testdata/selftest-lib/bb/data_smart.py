"""A datastore of this stand-in's own: BitBake's tests run against it
when bitzel checks whether a test passes without bitzel."""


class ExpansionError(Exception):
    def __init__(self, varname, expression, exception):
        super().__init__("%s: %s" % (varname, exception))


class VariableParse:
    def __init__(self, varname, d, unexpanded_value=None, val=None):
        self.varname = varname
        self.value = val
        self.unexpanded_value = unexpanded_value
        self.references = set()
        self.execs = set()
        self.contains = {}


class DataSmart(dict):
    def setVar(self, var, value, **loginfo):
        self[var] = value

    def getVar(self, var, expand=True):
        return self.get(var)
