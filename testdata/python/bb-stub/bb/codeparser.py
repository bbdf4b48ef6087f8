modulecode_deps = {}


def add_module_functions(fn, functions, namespace):
    for name in functions:
        modulecode_deps["%s.%s" % (namespace, name)] = fn
