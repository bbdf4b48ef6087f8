modulecode_deps = {}


def add_module_functions(fn, functions, namespace):
    for name in functions:
        modulecode_deps["%s.%s" % (namespace, name)] = fn


# BitBake keeps what its code parser learnt in a cache directory; the
# stand-in has nothing to keep.
def parser_cache_init(cachedir):
    pass


def parser_cache_save():
    pass


def parser_cache_savemerge():
    pass
