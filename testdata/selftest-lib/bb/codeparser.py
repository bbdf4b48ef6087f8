modulecode_deps = {}


def add_module_functions(fn, functions, namespace):
    pass
