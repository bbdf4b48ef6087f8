# An object that holds the datastore, as oe.classextend.ClassExtender does:
# stored in a variable and called by inline Python when values expand.


class Keeper:
    def __init__(self, prefix, d):
        self.prefix = prefix
        self.d = d
        self.seen = []
        d.setVar("KEEPER", self)

    def name(self, var):
        self.seen.append(var)
        return self.prefix + "-" + (self.d.getVar(var) or "")
