modulecode_deps = {}


def add_module_functions(fn, functions, namespace):
    for name in functions:
        modulecode_deps["%s.%s" % (namespace, name)] = fn


class PythonParser:
    """Stand-in for BitBake's code analysis (bitzel's own, much smaller):
    a string-literal `.getVar('X')` is a reference, `bb.utils.contains('X',
    'item', ...)` a contains check."""

    def __init__(self, name, log):
        self.references = set()
        self.execs = set()
        self.contains = {}

    def parse_python(self, node, lineno=0, filename="<string>"):
        import ast
        for n in ast.walk(ast.parse(node.strip(), mode='eval')):
            if not isinstance(n, ast.Call) or not n.args:
                continue
            if not all(isinstance(a, ast.Constant) for a in n.args[:2]):
                continue
            name = ast.unparse(n.func)
            if name.endswith('.getVar'):
                self.references.add(n.args[0].value)
            elif name == 'bb.utils.contains':
                self.contains.setdefault(n.args[0].value, set()).add(n.args[1].value)


# BitBake keeps what its code parser learnt in a cache directory; the
# stand-in has nothing to keep.
def parser_cache_init(cachedir):
    pass


def parser_cache_save():
    pass


def parser_cache_savemerge():
    pass
