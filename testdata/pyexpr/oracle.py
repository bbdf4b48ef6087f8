#!/usr/bin/env python3
"""Reference oracle for bitzel's inline-Python evaluator tests.

Evaluates every line of cases.txt (hand-written) and random.txt (made by
gen_random.py) with real CPython against a small mock of BitBake's datastore
and helper functions (written for this test from their documented
behaviour), and writes cases.expected / random.expected. Run it after
adding cases:

    python3 testdata/pyexpr/oracle.py

Output format, one line per case:  <expr>\t=> <str(result)>  or
<expr>\t!! <ExceptionName>. Results with newlines/tabs are escaped with
repr-style \\n and \\t (see encode()).
"""
import os
import re
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def load_vars():
    vars_, flags = {}, {}
    with open(os.path.join(HERE, "vars.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, value = line.split("=", 1)
            value = value.replace("\\t", "\t")
            m = re.match(r"^(.*)\[(.*)\]$", name)
            if m:
                flags[(m.group(1), m.group(2))] = value
            else:
                vars_[name] = value
    return vars_, flags


VARS, FLAGS = load_vars()


class Data:
    def expand(self, s, varname=None):
        if not isinstance(s, str):
            return s
        def sub(m):
            v = VARS.get(m.group(1))
            return self.expand(v) if v is not None else m.group(0)
        return re.sub(r"\$\{([a-zA-Z0-9\-_+./~]+?)\}", sub, s)

    def getVar(self, var, expand=True, parsing=False):
        v = VARS.get(var)
        if v is None:
            return None
        return self.expand(v) if expand else v

    def getVarFlag(self, var, flag, expand=True, retparser=False):
        v = FLAGS.get((var, flag))
        if v is None:
            return None
        return self.expand(v) if expand else v

    def __contains__(self, key):
        return key in VARS


class DataContext(dict):
    def __init__(self, d):
        dict.__init__(self)
        self.d = d
        self["d"] = d

    def __missing__(self, key):
        if key in ("bb", "oe", "os") or hasattr(__builtins__, key):
            raise KeyError(key)
        v = self.d.getVar(key)
        if v is None or self.d.getVarFlag(key, "func", False):
            raise KeyError(key)
        return v


# --- bb.utils / bb.data (mock, same semantics) -----------------------------
def _set_of(checkvalues):
    if isinstance(checkvalues, str):
        return set(checkvalues.split())
    return set(checkvalues)


def contains(variable, checkvalues, truevalue, falsevalue, d):
    val = d.getVar(variable)
    if not val:
        return falsevalue
    if _set_of(checkvalues).issubset(set(val.split())):
        return truevalue
    return falsevalue


def contains_any(variable, checkvalues, truevalue, falsevalue, d):
    val = d.getVar(variable)
    if not val:
        return falsevalue
    if _set_of(checkvalues) & set(val.split()):
        return truevalue
    return falsevalue


def filter_(variable, checkvalues, d):
    val = d.getVar(variable)
    if not val:
        return ''
    return ' '.join(sorted(_set_of(checkvalues) & set(val.split())))


def to_boolean(string, default=None):
    if not string:
        return default
    if isinstance(string, int):
        return string != 0
    n = string.lower()
    if n in ("y", "yes", "1", "true"):
        return True
    if n in ("n", "no", "0", "false"):
        return False
    raise ValueError("Invalid value for to_boolean: %s" % string)


def explode_version(s):
    r = []
    while s != '':
        if s[0].isdigit() and s[0].isascii():
            m = re.match(r'^(\d+)(.*)$', s, re.ASCII)
            r.append((0, int(m.group(1))))
            s = m.group(2)
            continue
        if s[0].isascii() and s[0].isalpha():
            m = re.match(r'^([a-zA-Z]+)(.*)$', s)
            r.append((1, m.group(1)))
            s = m.group(2)
            continue
        r.append((-1, s[0]) if s[0] == '~' else (2, s[0]))
        s = s[1:]
    return r


def split_version(s):
    s = s.strip(" <>=")
    e = 0
    if s.count(':'):
        e = int(s.split(":")[0])
        s = s.split(":")[1]
    r = ""
    if s.count('-'):
        r = s.rsplit("-", 1)[1]
        s = s.rsplit("-", 1)[0]
    return (e, s, r)


def vercmp_part(a, b):
    va, vb = explode_version(a), explode_version(b)
    while True:
        oa, ca = va.pop(0) if va else (0, None)
        ob, cb = vb.pop(0) if vb else (0, None)
        if (oa, ca) == (0, None) and (ob, cb) == (0, None):
            return 0
        if oa < ob:
            return -1
        if oa > ob:
            return 1
        if ca is None:
            return -1
        if cb is None:
            return 1
        if ca < cb:
            return -1
        if ca > cb:
            return 1


def vercmp_string(a, b):
    ea, va, ra = split_version(a)
    eb, vb, rb = split_version(b)
    r = int(ea or 0) - int(eb or 0)
    if r == 0:
        r = vercmp_part(va, vb)
    if r == 0:
        r = vercmp_part(ra, rb)
    return r


class VersionStringException(Exception):
    pass


def vercmp_string_op(a, b, op):
    res = vercmp_string(a, b)
    if op in ('=', '=='):
        return res == 0
    if op == '<=':
        return res <= 0
    if op == '>=':
        return res >= 0
    if op in ('>', '>>'):
        return res > 0
    if op in ('<', '<<'):
        return res < 0
    if op == '!=':
        return res != 0
    raise VersionStringException('Unsupported comparison operator "%s"' % op)


def explode_deps(s):
    r, flag = [], False
    for i in s.split():
        if i[0] == '(':
            flag = True
        if not flag:
            r.append(i)
        if flag and i.endswith(')'):
            flag = False
    return r


class ParseError(Exception):
    pass


def vars_from_file(mypkg, d):
    if not mypkg or not mypkg.endswith((".bb", ".bbappend")):
        return (None, None, None)
    myfile = os.path.splitext(os.path.basename(mypkg))
    parts = myfile[0].split('_')
    if len(parts) > 3:
        raise ParseError("Unable to generate default variables from filename (too many underscores)", mypkg)
    while len(parts) < 3:
        parts.append(None)
    return parts


def parallel_make(d, makeinst=False):
    pm = (d.getVar('PARALLEL_MAKEINST' if makeinst else 'PARALLEL_MAKE') or '').split()
    while pm:
        opt = pm.pop(0)
        if opt == '-j':
            v = pm.pop(0)
        elif opt.startswith('-j'):
            v = opt[2:].strip()
        else:
            continue
        return int(v)
    return ''


def parallel_make_argument(d, fmt, limit=None, makeinst=False):
    v = parallel_make(d, makeinst)
    if v:
        if limit:
            v = min(limit, v)
        return fmt % v
    return ''


def inherits_class(klass, d):
    val = (d.getVar('__inherit_cache', False) or "").split()
    needle = '/%s.bbclass' % klass
    return any(v.endswith(needle) or v == needle[1:] for v in val)


# --- oe.utils / oe.types (mock, same semantics) -----------------------------
def boolean(value):
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise TypeError("boolean accepts a string, not '%s'" % type(value))
    value = value.lower()
    if value in ('yes', 'y', 'true', 't', '1'):
        return True
    if value in ('no', 'n', 'false', 'f', '0'):
        return False
    raise ValueError("Invalid boolean value '%s'" % value)


def ifelse(condition, iftrue=True, iffalse=False):
    return iftrue if condition else iffalse


def conditional(variable, checkvalue, truevalue, falsevalue, d):
    return truevalue if d.getVar(variable) == checkvalue else falsevalue


def vartrue(var, iftrue, iffalse, d):
    return iftrue if boolean(d.getVar(var)) else iffalse


def less_or_equal(variable, checkvalue, truevalue, falsevalue, d):
    return truevalue if float(d.getVar(variable)) <= float(checkvalue) else falsevalue


def version_less_or_equal(variable, checkvalue, truevalue, falsevalue, d):
    return truevalue if vercmp_string(d.getVar(variable), checkvalue) <= 0 else falsevalue


def both_contain(variable1, variable2, checkvalue, d):
    val1 = set(d.getVar(variable1).split())
    val2 = set(d.getVar(variable2).split())
    checkvalue = _set_of(checkvalue)
    if checkvalue.issubset(val1) and checkvalue.issubset(val2):
        return " ".join(checkvalue)
    return ""


def prune_suffix(var, suffixes, d):
    for suffix in suffixes:
        if suffix and var.endswith(suffix):
            var = var[:-len(suffix)]
    prefix = d.getVar("MLPREFIX")
    if prefix and var.startswith(prefix):
        var = var[len(prefix):]
    return var


def trim_version(version, num_parts=2):
    if type(version) is not str:
        raise TypeError("Version should be a string")
    if num_parts < 1:
        raise ValueError("Cannot split to parts < 1")
    return ".".join(version.split(".")[:num_parts])


def inherits(d, *classes):
    return any(inherits_class(cls, d) for cls in classes)


def all_distro_features(d, features, truevalue="1", falsevalue=""):
    return contains("DISTRO_FEATURES", features, truevalue, falsevalue, d)


def any_distro_features(d, features, truevalue="1", falsevalue=""):
    return contains_any("DISTRO_FEATURES", features, truevalue, falsevalue, d)


def squashspaces(string):
    return re.sub(r"\s+", " ", string).strip()


def module(name, **fns):
    m = types.ModuleType(name)
    for k, v in fns.items():
        setattr(m, k, v)
    return m


bb = module("bb",
            utils=module("bb.utils", contains=contains, contains_any=contains_any,
                         filter=filter_, to_boolean=to_boolean,
                         vercmp_string=vercmp_string, vercmp_string_op=vercmp_string_op,
                         explode_deps=explode_deps),
            data=module("bb.data", inherits_class=inherits_class),
            parse=module("bb.parse", vars_from_file=vars_from_file))
oe = module("oe",
            utils=module("oe.utils", ifelse=ifelse, conditional=conditional, vartrue=vartrue,
                         less_or_equal=less_or_equal,
                         version_less_or_equal=version_less_or_equal,
                         both_contain=both_contain, prune_suffix=prune_suffix,
                         trim_version=trim_version, inherits=inherits,
                         all_distro_features=all_distro_features,
                         any_distro_features=any_distro_features,
                         squashspaces=squashspaces, parallel_make=parallel_make,
                         parallel_make_argument=parallel_make_argument),
            types=module("oe.types", boolean=boolean))


def encode(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def run(name):
    d = Data()
    out = []
    with open(os.path.join(HERE, name + ".txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            code = line
            try:
                globs = {"bb": bb, "oe": oe, "os": os, "d": d}
                value = eval(compile(code.strip(), "<case>", "eval"), globs, DataContext(d))
                out.append("%s\t=> %s" % (line, encode(str(value))))
            except Exception as e:  # noqa: BLE001 - the class name is the result
                out.append("%s\t!! %s" % (line, type(e).__name__))
    with open(os.path.join(HERE, name + ".expected"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print("%s: wrote %d cases" % (name, len(out)), file=sys.stderr)


def main():
    import warnings
    warnings.simplefilter("ignore")
    run("cases")
    run("random")


if __name__ == "__main__":
    main()
