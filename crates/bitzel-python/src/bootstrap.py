# bitzel's side of embedded CPython (bitzel's own code, not BitBake's).
#
# `d` is a DataProxy over bitzel's Rust datastore (the `_core` object the
# Rust side provides). Metadata code runs in BitBake's shared globals,
# `bb.utils._context`, from the user's own BitBake library.
import base64
import builtins
import importlib.util
import io
import logging
import pickle
import sys
import traceback

# BitBake's lib/ carries `hashserv` beside `bb`; the `bitbake-setup` wheel
# carries `bb` alone, and bb.parse imports bb.siggen, which imports hashserv
# at import time although parsing never calls it. Only then an empty module
# stands in (as in bitzel-exec's Python-task runner). Kept as text: the
# selftest runs it in a plain interpreter too, to run BitBake's own tests on
# BitBake's own library.
HASHSERV_STAND_IN = '''
import importlib.util, sys, types
if importlib.util.find_spec('hashserv') is None:
    for _name in ('hashserv', 'hashserv.client'):
        sys.modules[_name] = types.ModuleType(_name)
    sys.modules['hashserv'].client = sys.modules['hashserv.client']
'''
exec(HASHSERV_STAND_IN)

import bb
import bb.codeparser
import bb.event
import bb.parse
import bb.utils

_ctx = bb.utils.get_context()
_EXCLUDED = set(i for i in dir(builtins) if not i.startswith('_')) | {'oe'}

# Values that are not strings cross the Rust datastore as marked strings:
# literals by repr (they survive the parse cache), other objects by a
# number valid in this process only (_OBJ, bitzel-meta's PROCESS_LOCAL,
# set by install()).
_MARK = '\x00bitzel-py:'
_OBJ = None
_objects = {}
_object_ids = {}


# Containers are checked once per distinct content: poky's create-spdx
# stores the same 180 KB license dict (read afresh from JSON) in every
# recipe, and `ast.literal_eval` of its repr takes 23 ms where pickling it
# takes 0.3. Equal pickles mean equal types and values, so the pickle keys
# both directions: pickle -> literal text (None: not a literal) and text ->
# pickle, which rebuilds a fresh object far faster than literal_eval.
_LIT_MEMO_MAX = 512
_lit_text = {}
_lit_pickle = {}


def _remember(table, key, value):
    if len(table) >= _LIT_MEMO_MAX:
        table.clear()
    table[key] = value


def _literal_text(value):
    """repr(value) when it is a Python literal that reads back equal, else None."""
    try:
        pickled = pickle.dumps(value, 4)
    except Exception:
        pickled = None
    if pickled is not None and pickled in _lit_text:
        return _lit_text[pickled]
    try:
        import ast
        text = repr(value)
        if ast.literal_eval(text) != value:
            text = None
    except Exception:
        text = None
    if pickled is not None:
        _remember(_lit_text, pickled, text)
        if text is not None:
            _remember(_lit_pickle, text, pickled)
    return text


def _literal_value(text):
    pickled = _lit_pickle.get(text)
    if pickled is not None:
        return pickle.loads(pickled)
    import ast
    value = ast.literal_eval(text)
    try:
        _remember(_lit_pickle, text, pickle.dumps(value, 4))
    except Exception:
        pass
    return value


def _to_store(value):
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return _MARK + 'lit:' + repr(value)
    if isinstance(value, (tuple, list, dict, set, frozenset)):
        text = _literal_text(value)
        if text is not None:
            return _MARK + 'lit:' + text
    key = id(value)
    n = _object_ids.get(key)
    if n is None or _objects.get(n) is not value:
        n = len(_objects) + 1
        _objects[n] = value
        _object_ids[key] = n
    return _OBJ + '%d' % n


# The parse cache keeps an object by its pickled final state: `d` in it is
# kept as a reference to the datastore it is read from, any other datastore
# makes it unkeepable. A restored object is rebuilt from that state at each
# read (BitBake re-parses instead; its cache holds no datastore).
_PKL = _MARK + 'pkl:'
_D = None


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if obj is _D:
            return 'd'
        if isinstance(obj, DataProxy):
            raise pickle.PicklingError('holds a datastore other than d')
        return None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if pid == 'd':
            return _D
        raise pickle.UnpicklingError('unknown reference %r' % (pid,))


def persist(value):
    """The pickled form of the process-local object `value` names, or None."""
    try:
        obj = _objects[int(value[len(_OBJ):])]
        buf = io.BytesIO()
        _Pickler(buf, protocol=4).dump(obj)
        return _PKL + base64.b64encode(buf.getvalue()).decode('ascii')
    except Exception:
        return None


def display(value):
    """str() of a stored value, as BitBake prints a value that is an object
    (`bitbake -e`: "%s" % value)."""
    return str(_from_store(value))


def _from_store(value):
    if value is None or not value.startswith(_MARK):
        return value
    if value.startswith(_PKL):
        try:
            return _Unpickler(io.BytesIO(base64.b64decode(value[len(_PKL):]))).load()
        except Exception as e:
            raise RuntimeError("bitzel: a Python object kept in the parse cache cannot be "
                               "restored (%s: %s); clear the parse cache" % (type(e).__name__, e)) from None
    if not value.startswith(_OBJ):
        return _literal_value(value[len(_MARK) + len('lit:'):])
    try:
        return _objects[int(value[len(_OBJ):])]
    except (KeyError, ValueError):
        raise RuntimeError("bitzel: a Python object value stored by an earlier process "
                           "is not available (clear the parse cache)") from None


# BitBake keeps these internal values as Python lists; bitzel's datastore
# keeps them as whitespace-separated words.
_LIST_VARS = frozenset(('__BBTASKS', '__BBANONFUNCS', '__BBHANDLERS', '__inherit_cache'))
_LIST_FLAGS = frozenset(('deps',))


def _list_in(value):
    return None if value is None else value.split()


def _list_out(value):
    if isinstance(value, (list, tuple)):
        return ' '.join(value)
    return _to_store(value)


class _OrigEnv:
    """BB_ORIGENV: the environment bitzel was started in, as a read-only
    datastore (BitBake keeps the client's environment there)."""
    __slots__ = ('_env',)

    def __init__(self, env):
        self._env = dict(env)

    def getVar(self, var, expand=True, noweakdefault=False, parsing=False):
        return self._env.get(var)

    def getVarFlag(self, var, flag, expand=True, noweakdefault=False, parsing=False):
        return None

    def keys(self):
        return iter(sorted(self._env))

    def __iter__(self):
        return self.keys()

    def __contains__(self, var):
        return var in self._env


_origenv = None


def _orig_env():
    global _origenv
    if _origenv is None:
        import os
        _origenv = _OrigEnv(os.environ)
    return _origenv


class DataProxy:
    """The datastore as BitBake's bb.data_smart.DataSmart presents it."""
    __slots__ = ('_c',)

    def __init__(self, core):
        self._c = core

    def getVar(self, var, expand=True, noweakdefault=False, parsing=False):
        if var in _LIST_VARS:
            return _list_in(self._c.get(var, False))
        value = _from_store(self._c.get(var, bool(expand)))
        if value is None and var == 'BB_ORIGENV':
            return _orig_env()
        return value

    def getVarFlag(self, var, flag, expand=True, noweakdefault=False, parsing=False,
                   retparser=False):
        if retparser:
            return self._flag_with_refs(var, flag, expand)
        if flag == '_content':
            return self.getVar(var, expand)
        if flag in _LIST_FLAGS:
            return _list_in(self._c.flag(var, flag, False))
        return _from_store(self._c.flag(var, flag, bool(expand)))

    def setVar(self, var, value, **loginfo):
        if var in _LIST_VARS:
            self._c.op('set', var, None, _list_out(value))
        else:
            self._c.op('set', var, None, _to_store(value))

    def setVarFlag(self, var, flag, value, **loginfo):
        if flag in _LIST_FLAGS:
            value = _list_out(value)
        else:
            value = _to_store(value)
        self._c.op('setflag', var, flag, value)

    def setVarFlags(self, var, flags, **loginfo):
        for f, v in flags.items():
            self.setVarFlag(var, f, v)

    def appendVar(self, var, value, **loginfo):
        self._c.op('append', var, None, value)

    def prependVar(self, var, value, **loginfo):
        self._c.op('prepend', var, None, value)

    def appendVarFlag(self, var, flag, value, **loginfo):
        self._c.op('appendflag', var, flag, value)

    def prependVarFlag(self, var, flag, value, **loginfo):
        self._c.op('prependflag', var, flag, value)

    def delVar(self, var, **loginfo):
        self._c.op('del', var, None, None)

    def delVarFlag(self, var, flag, **loginfo):
        self._c.op('delflag', var, flag, None)

    def delVarFlags(self, var, **loginfo):
        # As DataSmart: every flag goes, the value stays.
        for f, _ in self._c.flags(var, True) or ():
            self.delVarFlag(var, f)

    def __getitem__(self, var):
        value = self.getVar(var, False)
        if value is None:
            raise KeyError(var)
        return value

    def __setitem__(self, var, value):
        self.setVar(var, value)

    def __delitem__(self, var):
        self.delVar(var)

    def renameVar(self, key, newkey, **loginfo):
        self._c.op('rename', key, None, newkey)

    def getVarFlags(self, var, expand=False, internalflags=False):
        # As DataSmart.getVarFlags: internal flags (`_...`) only on request,
        # except that a flag's `_defaultval_flag_` default (`??=` on a flag)
        # shows under the flag's name when the flag itself is not set.
        raw = self._c.flags(var, bool(internalflags))
        local = dict(raw or ())
        if internalflags:
            content = self._c.get(var, False)
            if content is not None:
                local = dict(local, _content=content)
        flags = {}
        for f, v in local.items():
            if f.startswith('_defaultval_flag_') and not internalflags:
                f = f[len('_defaultval_flag_'):]
                if f in local:
                    continue
            elif f.startswith(('_', ':')) and not internalflags:
                continue
            v = _from_store(v)
            if (expand is True or (expand and f in expand)) and isinstance(v, str):
                v = self.expand(v, var + '[' + f + ']')
            flags[f] = v
        return flags or None

    def expand(self, s, varname=None):
        if not isinstance(s, str):
            return s
        return self._c.expand(s, varname)

    def expandWithRefs(self, s, varname):
        if not isinstance(s, str):
            return _variable_parse(varname, self, s, (s, (), ()))
        return _variable_parse(varname, self, s, self._c.expand_refs(s, varname))

    def _flag_with_refs(self, var, flag, expand):
        # getVarFlag(..., retparser=True): (value, VariableParse).
        name = var if flag == '_content' else '%s[%s]' % (var, flag)
        unexpanded, refs, removes = self._c.flag_refs(var, flag)
        value = _from_store(unexpanded)
        if value is not unexpanded:
            # A Python object value is not expanded (DataSmart's
            # expandWithRefs returns it as it is).
            return value, _variable_parse(name, self, value, (value, (), ()))
        parser = _variable_parse(name, self, value, refs)
        if removes is not None:
            parser.removes = set(removes)
        return (parser.value if expand else value), parser

    def hasOverrides(self, var):
        return self._c.has_overrides(var)

    def createCopy(self):
        return DataProxy(self._c.copy())

    def keys(self):
        return iter(self._c.keys())

    def __iter__(self):
        return iter(self._c.keys())

    def __contains__(self, var):
        return self._c.get(var, False) is not None

    def __len__(self):
        return len(self._c.keys())

    def __reduce__(self):
        # Pickling keeps the whole datastore (values, flags, history); it
        # comes back as a datastore of its own.
        return (_restore_store, (self._c.to_bytes(),))

    def __eq__(self, other):
        # As DataSmart (a Mapping): equal when the same variables hold the
        # same unexpanded values.
        if not isinstance(other, DataProxy):
            return NotImplemented
        keys = set(self.keys())
        if keys != set(other.keys()):
            return False
        return all(self.getVar(k, False) == other.getVar(k, False) for k in keys)

    __hash__ = None

    def enableTracking(self):
        # bitzel's datastore records every variable's history always.
        pass

    def getVarHistory(self, var):
        return []

    @property
    def varhistory(self):
        return _VarHistory(self._c)


_codeparser_log = logging.getLogger('BitBake.Data')


def _variable_parse(varname, d, unexpanded, refs):
    """The user's bb.data_smart.VariableParse for an expansion bitzel made:
    `refs` is (value, the ${NAME} references the expansion itself read, its
    inline Python expressions). As DataSmart, each expression's reads,
    calls and bb.utils.contains checks are what BitBake's codeparser finds
    in its code."""
    import bb.data_smart
    value, references, python = refs
    vp = bb.data_smart.VariableParse(varname, d, unexpanded, value)
    vp.references.update(references)
    for code in python:
        parser = bb.codeparser.PythonParser(varname, _codeparser_log)
        parser.parse_python(code)
        vp.references |= parser.references
        vp.execs |= parser.execs
        for k, v in parser.contains.items():
            vp.contains.setdefault(k, set()).update(v)
    return vp


def _restore_store(data):
    return DataProxy(type(_D._c).from_bytes(data))


class _VarHistory:
    """`d.varhistory` as bb.data.emit_var uses it: `emit` writes the
    history comment block bitzel's datastore keeps for a variable (the
    values are the datastore's own; `oval`/`val` are what it computes)."""
    __slots__ = ('_c',)

    def __init__(self, core):
        self._c = core

    def emit(self, var, oval, val, o, d):
        o.write(self._c.history_text(var))


class _Locals(dict):
    """BitBake's DataContext: a bare name is a datastore variable."""
    __slots__ = ()

    def __missing__(self, key):
        if key in _EXCLUDED or key in _ctx:
            raise KeyError(key)
        d = self['d']
        if _define_from(d, key):
            return _ctx[key]
        value = d.getVar(key)
        if value is None:
            raise KeyError(key)
        return value


class _LogToCore(logging.Handler):
    def __init__(self, core):
        super().__init__(logging.DEBUG)
        self._core = core

    def emit(self, record):
        try:
            self._core.log(record.levelno, record.getMessage())
        except Exception:
            pass


def _inherit(files, fn, lineno, d, deferred=False):
    """bb.parse.BBHandler.inherit as metadata calls it (from an event
    handler or anonymous function): bitzel's parser inherits the classes
    into the recipe being parsed once the call returns."""
    if not isinstance(d, DataProxy):
        raise TypeError("bitzel: bb.parse.BBHandler.inherit got %r, not the datastore "
                        "being parsed" % (d,))
    if deferred:
        raise NotImplementedError("bitzel: bb.parse.BBHandler.inherit(..., deferred=True) from "
                                  "Python is not supported; use `inherit_defer` in the metadata")
    if not isinstance(files, str):
        files = ' '.join(files)
    d._c.inherit(files, fn, int(lineno))


_bb_mark_dependency = getattr(bb.parse, 'mark_dependency', None)


def _mark_dependency(d, f):
    """bb.parse.mark_dependency as metadata calls it: on a datastore bitzel
    is parsing, the file joins what that parse depends on (BBINCLUDED, the
    parse cache's inputs)."""
    if not isinstance(d, DataProxy):
        return _bb_mark_dependency(d, f)
    d._c.mark_dependency(f)


def prefixes_task_deps():
    """Whether the user's BitBake names addtask's after/before entries
    with do_ (its bb.build has ensure_task_prefix; older ones keep them
    as written)."""
    try:
        import bb.build
    except Exception:
        return False
    return hasattr(bb.build, 'ensure_task_prefix')


def one_task_per_addtask():
    """Whether the user's BitBake parser reads one task name per addtask
    (its addtask regexp names a single `func`; newer ones read a list)."""
    handler = getattr(bb.parse, 'BBHandler', None)
    regexp = getattr(handler, '__addtask_regexp__', None)
    return regexp is not None and 'func' in regexp.groupindex


def sets_recipe_file():
    """Whether the user's BitBake cooker names the recipe file being parsed
    in __BB_RECIPE_FILE (newer ones do, before parsing each recipe): its
    bb.cookerdata uses that name as a constant. The module is compiled,
    not imported or run."""
    spec = importlib.util.find_spec('bb.cookerdata')
    if spec is None or not spec.origin or not spec.origin.endswith('.py'):
        return False
    with open(spec.origin, encoding='utf-8') as f:
        code = compile(f.read(), spec.origin, 'exec')
    pending = [code]
    while pending:
        for const in pending.pop().co_consts:
            if const == '__BB_RECIPE_FILE':
                return True
            if hasattr(const, 'co_consts'):
                pending.append(const)
    return False


def default_config_name():
    """The name the user's BitBake cooker gives the default configuration
    in BB_CURRENT_MC: the default of the `mc` parameter of
    CookerDataBuilder.parseConfigurationFiles in its bb.cookerdata (read
    from the source, not run), or None when that is not there."""
    import ast
    spec = importlib.util.find_spec('bb.cookerdata')
    if spec is None or not spec.origin or not spec.origin.endswith('.py'):
        return None
    with open(spec.origin, encoding='utf-8') as f:
        tree = ast.parse(f.read(), spec.origin)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == 'parseConfigurationFiles':
            args = node.args.args
            defaults = dict(zip([a.arg for a in args[len(args) - len(node.args.defaults):]],
                                node.args.defaults))
            value = defaults.get('mc')
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
    return None


_codeparser_cache = False


def install(core, obj_mark, codeparser_dir=None):
    """Called once by bitzel: `d` is the proxy of the calling datastore.
    With `codeparser_dir` (in bitzel's cache directory), BitBake's code
    parser keeps what it learns there (its own `bb_codeparser.dat`, as
    BitBake keeps it in its cache directory): `addpylib`'s
    add_module_functions then reads an unchanged module's functions from it
    instead of parsing their source again in every process. A library
    without that cache (no `parser_cache_init`) parses them every time."""
    global _OBJ, _codeparser_cache
    if codeparser_dir is not None and hasattr(bb.codeparser, 'parser_cache_init'):
        bb.codeparser.parser_cache_init(codeparser_dir)
        _codeparser_cache = True
    if not obj_mark.startswith(_MARK):
        raise RuntimeError('bitzel: object marker %r does not start with %r' % (obj_mark, _MARK))
    _OBJ = obj_mark
    global _D
    d = DataProxy(core)
    _D = d
    bb.parse.mark_dependency = _mark_dependency
    handler = getattr(bb.parse, 'BBHandler', None)
    if handler is not None:
        handler.inherit = _inherit
    logger = logging.getLogger('BitBake')
    logger.addHandler(_LogToCore(core))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return d


def _trim(exc, files):
    """The exception and its traceback from the first metadata frame on,
    and the file and line of the innermost metadata frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    handled = getattr(bb, 'BBHandledException', None)
    if handled is not None and isinstance(exc, handled):
        # bb.fatal: the message was logged (and is reported) already.
        where = (None, None)
        for f in frames:
            if f.filename in files:
                where = (f.filename, f.lineno)
        return 'bb.fatal (the error above)', where[0], where[1]
    start = 0
    for i, f in enumerate(frames):
        if f.filename in files:
            start = i
            break
    lines = ['Traceback (most recent call last):']
    where = (None, None)
    for f in frames[start:]:
        lines.append('  File "%s", line %d, in %s' % (f.filename, f.lineno, f.name))
        if f.line:
            lines.append('    ' + f.line)
        if f.filename in files:
            where = (f.filename, f.lineno)
    lines.append('%s: %s' % (type(exc).__name__, exc))
    return '\n'.join(lines), where[0], where[1]


def _run(call, *args):
    """None, ('skip', reason) or ('error', message, file, line)."""
    try:
        call(*args)
    except bb.parse.SkipRecipe as e:
        return ('skip', str(e))
    except Exception as e:
        msg, filename, line = _trim(e, _meta_files)
        return ('error', msg, filename, line)
    return None


def _compile_def(kind, name, params, body, filename, line):
    """`def name(params):` + body, its body's first line at `line`."""
    key = (kind, name, filename, line, body)
    co = _code_cache.get(key)
    if co is None:
        text = '\n' * max(line - 2, 0) + 'def %s(%s):\n%s\n' % (name, params, body)
        co = compile(text, filename, 'exec')
        _code_cache[key] = co
        _meta_files.add(filename)
    return co


_INLINE = '<inline ${@...}>'
_code_cache = {}
_meta_files = {_INLINE}


def eval_inline(d, code):
    co = _code_cache.get(code)
    if co is None:
        co = compile(code.strip(), _INLINE, 'eval')
        _code_cache[code] = co
    tried = set()
    while True:
        g = dict(_ctx)
        g['d'] = d
        try:
            return str(eval(co, g, _Locals(d=d)))
        except NameError as e:
            # A metadata def this process has not parsed (its recipe came
            # from the parse cache): define it from the datastore, retry.
            if e.name in tried or not _define_from(d, e.name):
                raise
            tried.add(e.name)


def _define_from(d, name):
    if not name or d.getVarFlag(name, 'python', False) is None:
        return False
    text = d.getVar(name, False)
    if not isinstance(text, str) or not text.startswith('def '):
        return False
    filename = d.getVarFlag(name, 'filename', False) or '<def %s>' % name
    line = int(d.getVarFlag(name, 'lineno', False) or 1)
    define(text, filename, line)
    return True


def run_anonymous(d, name, body, filename, line):
    # BitBake puts anonymous functions into the shared globals (methodpool).
    exec(_compile_def('anon', name, 'd', body, filename, line), _ctx)
    return _run(_ctx[name], d)


def fire(d, cls, fn, tasks, handlers):
    """Fire bb.event.<cls> to handlers [(name, body, file, line, mask)]."""
    ev_cls = getattr(bb.event, cls, None)
    if ev_cls is None:
        # A BitBake that does not have this event never fires it.
        return None
    if cls == 'MultiConfigParsed':
        # bitzel parses the default configuration only: mcdata = {'': d}.
        e = ev_cls({'': d})
    elif fn is None:
        e = ev_cls()
    elif tasks is None:
        e = ev_cls(fn)
    else:
        e = ev_cls(fn, tasks)
    e.data = d
    eid = 'bb.event.' + cls
    for name, body, filename, line, mask in handlers:
        if mask and eid not in mask:
            continue
        env = {}
        # As bb.event.register: the handler's globals are the shared ones.
        exec(_compile_def('handler', name, 'e, d', body, filename, line), _ctx, env)
        r = _run(env[name], e, d)
        if r is not None:
            return r
    return None


def define(text, filename, line):
    key = ('def', filename, line, text)
    co = _code_cache.get(key)
    if co is None:
        co = compile('\n' * max(line - 1, 0) + text, filename, 'exec')
        _code_cache[key] = co
        _meta_files.add(filename)
    exec(co, _ctx)


# The packages whose imported modules a parse cache entry records ('bb' and
# every addpylib namespace): Python that a cached recipe runs later (an
# inline `oe.classextend.get_depends(...)`) may rely on a submodule imported
# while it was parsed.
_namespaces = {'bb'}


def pylib_modules():
    return sorted(m for m in sys.modules if m.split('.', 1)[0] in _namespaces)


def require(names):
    for n in names:
        if n not in sys.modules:
            try:
                importlib.import_module(n)
            except Exception:
                # The code that relies on it reports the failure.
                pass


def add_pylib(d, libdir, namespace):
    _namespaces.add(namespace)
    for m in (d.getVar('BB_GLOBAL_PYMODULES') or '').split():
        if m not in _ctx:
            _ctx[m] = __import__(m)
    if libdir not in sys.path:
        sys.path.append(libdir)
    _ctx[namespace] = __import__(namespace)
    for sub in getattr(_ctx[namespace], 'BBIMPORTS', []):
        _ctx[namespace] = __import__(namespace + '.' + sub)
        mod = getattr(_ctx[namespace], sub)
        funcs = {}
        for f in dir(mod):
            if not f.startswith('_') and callable(getattr(mod, f)):
                funcs[f] = getattr(mod, f)
        bb.codeparser.add_module_functions(mod.__file__, funcs, namespace + '.' + sub)
    if _codeparser_cache:
        # As BitBake's parser processes and cooker: this process's new
        # entries, then merged into the kept file (both under BitBake's own
        # locks; nothing is written when nothing was new).
        bb.codeparser.parser_cache_save()
        bb.codeparser.parser_cache_savemerge()


def format_exc(e):
    return _trim(e, _meta_files)
