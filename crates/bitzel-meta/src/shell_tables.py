# Where BitBake's shell parser keeps its grammar tables (bitzel's own code).
#
# bb.pysh.pyshyacc, imported with `bb`, builds its LALR tables with ply and
# asks ply to write them as `pyshtables.py` beside its own source, or into
# the working directory when that is not writable; bitzel writes nothing
# outside its cache and build directories. While `bb` is imported, ply's
# yacc() (`ply.yacc` in a BitBake checkout, `bb._vendor.ply.yacc` in newer
# libraries) is wrapped so that the shell grammar's call reads and writes a
# table module of bitzel's own, `bitzel_pysh.pyshtables`, kept under a
# directory the caller names (the parse: its bytecode directory, beside the
# parser's compiled module; a Python task: its runner's scratch directory):
# ply's own signature check decides whether the kept tables still fit the
# grammar, so the next process reads them instead of building them again.
# New tables are written to a scratch directory and renamed into place
# (parser processes import `bb` at the same time). Without a directory, a
# temporary one is used and removed.
import importlib
import importlib.abc
import os
import shutil
import sys
import tempfile

_YACC = frozenset(('ply.yacc', 'bb._vendor.ply.yacc'))
# The table module names pyshyacc passes (its two import branches).
_TABLES = frozenset(('pyshtables', 'pysh.pyshtables'))
_PACKAGE = 'bitzel_pysh'

_state = None


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps yacc() in ply's yacc module as it is loaded."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.wrapped = []

    def find_spec(self, name, path, target=None):
        if name not in _YACC:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, 'find_spec', None)
            spec = None if finder is self or find is None else find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            self.wrapped.append((module, module.yacc))
            module.yacc = _wrap(module.yacc, self.prefix)

        spec.loader.exec_module = exec_module
        return spec


def _wrap(yacc, prefix):
    def wrapped(*args, **kw):
        if args or kw.get('tabmodule') not in _TABLES:
            return yacc(*args, **kw)
        # ply reads the grammar from its caller's module, which is now the
        # one calling this wrapper: name it.
        grammar = sys.modules[sys._getframe(1).f_globals['__name__']]
        return _build(yacc, grammar, prefix, kw)
    return wrapped


def _build(yacc, grammar, prefix, kw):
    source_dir = os.path.dirname(os.path.abspath(grammar.__file__))
    root = os.path.join(prefix, source_dir.lstrip(os.sep))
    package = os.path.join(root, _PACKAGE)
    os.makedirs(package, exist_ok=True)
    init = os.path.join(package, '__init__.py')
    if not os.path.exists(init):
        open(init, 'a').close()
    scratch = tempfile.mkdtemp(prefix='.new-', dir=package)
    kw = dict(kw, module=grammar, tabmodule=_PACKAGE + '.pyshtables', outputdir=scratch,
              write_tables=True)
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    try:
        return yacc(**kw)
    finally:
        sys.path.remove(root)
        for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + '.')]:
            del sys.modules[name]
        new = os.path.join(scratch, 'pyshtables.py')
        if os.path.exists(new):
            os.replace(new, os.path.join(package, 'pyshtables.py'))
        shutil.rmtree(scratch, ignore_errors=True)


def install(prefix):
    """Until finish(): ply's yacc module, when loaded, keeps the shell
    grammar's tables under `prefix` (None: a temporary directory)."""
    global _state
    temporary = None
    if prefix is None:
        prefix = temporary = tempfile.mkdtemp(prefix='bitzel-pysh-')
    finder = _Finder(prefix)
    sys.meta_path.insert(0, finder)
    _state = (finder, temporary)


def finish():
    """Undo install(): yacc() as it was, the finder gone, a temporary
    directory removed."""
    global _state
    if _state is None:
        return
    finder, temporary = _state
    _state = None
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    for module, yacc in finder.wrapped:
        module.yacc = yacc
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)
