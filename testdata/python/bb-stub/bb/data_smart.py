"""bitzel test stand-in for BitBake's bb.data_smart (not BitBake's code):
the result type of `expandWithRefs`."""


class VariableParse:
    def __init__(self, varname, d, unexpanded_value=None, val=None):
        self.varname = varname
        self.d = d
        self.value = val
        self.unexpanded_value = unexpanded_value
        self.references = set()
        self.execs = set()
        self.contains = {}
