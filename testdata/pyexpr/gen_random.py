#!/usr/bin/env python3
"""Generate random.txt: random expressions over the supported subset, for
differential testing against CPython (oracle.py computes the expectations).

    python3 testdata/pyexpr/gen_random.py > testdata/pyexpr/random.txt
    python3 testdata/pyexpr/oracle.py

Avoids results that depend on CPython's set iteration order.
"""
import random
import sys

R = random.Random(20261126)
STRS = ["''", "'a'", "'abc'", "' a  b '", "'a,b,,c'", "'x11 wayland'", "'1.2.3'", "'héllo wörld'",
        "'A-b_C'", "'%s'", "'{}'", "'  '", "'\\t x \\n y\\r\\n'", "'aaa'", "'42'", "'-7'", "'1e3'",
        "'0x1f'", "'yes'", "'No'", "'/usr/lib/x.so.1'", "'a.b/c.d'", "'.bashrc'", "'../x//y/'",
        "'it\\'s'", "'q\"q'"]
VARS = ["d.getVar('PN')", "d.getVar('UNSET')", "d.getVar('DISTRO_FEATURES')", "d.getVar('EMPTY')",
        "d.getVar('PV')", "d.getVar('LISTVAR')", "d.getVar('NUMVAR')", "d.getVar('UNICODE')",
        "d.getVar('TABS')", "d.getVar('CSV')", "d.getVar('PATHVAR')", "PN", "PV"]
INTS = ["0", "1", "2", "-1", "3", "10", "-3", "7", "True", "False"]
FLOATS = ["1.5", "0.1", "-2.25", "1e16", "1e-5", "3.0", "0.0", "123456.789"]


def c(xs):
    return R.choice(xs)


def s(k):
    if k <= 0:
        return c(STRS + VARS)
    r = R.randrange(22)
    if r == 0: return "%s + %s" % (s(k - 1), s(k - 1))
    if r == 1: return "%s.replace(%s, %s%s)" % (s(k - 1), c(STRS), c(STRS), c(["", ", 1", ", 0", ", -1"]))
    if r == 2: return "%s.%s(%s)" % (s(k - 1), c(["strip", "lstrip", "rstrip"]), c(["", "'a'", "' '", "None", "'-/'"]))
    if r == 3: return "' '.join(%s)" % l(k - 1)
    if r == 4: return "%s[%s:%s:%s]" % (s(k - 1), c(["", "1", "-2", "0", "10"]), c(["", "2", "-1", "10"]), c(["", "1", "2", "-1", "-2"]))
    if r == 5: return "%s %% (%s, %s)" % (c(["'%s-%s'", "'%5s|%-3s'", "'%r %s'", "'%.2s%s'"]), s(k - 1), s(k - 1))
    if r == 6: return "(%s or %s)" % (s(k - 1), s(k - 1))
    if r == 7: return "(%s and %s)" % (s(k - 1), s(k - 1))
    if r == 8: return "(%s if %s else %s)" % (s(k - 1), b(k - 1), s(k - 1))
    if r == 9: return "%s.%s()" % (s(k - 1), c(["upper", "lower", "title", "capitalize", "swapcase"]))
    if r == 10: return "str(%s)" % c([n(k - 1), l(k - 1), s(k - 1)])
    if r == 11: return "bb.utils.contains('DISTRO_FEATURES', %s, %s, %s, d)" % (c([s(k - 1), l(k - 1)]), s(k - 1), s(k - 1))
    if r == 12: return "bb.utils.contains_any('DISTRO_FEATURES', %s, %s, %s, d)" % (c([s(k - 1), l(k - 1)]), s(k - 1), c(INTS))
    if r == 13: return "oe.utils.conditional('PN', %s, %s, %s, d)" % (s(k - 1), s(k - 1), s(k - 1))
    if r == 14: return "'%s' %% %s" % (c(["%d", "%5.2f", "%g", "%x", "%e", "%.3g", "%+d", "%05d", "%#o", "%c"]), n(k - 1))
    if r == 15: return "'%s'.format(%s, %s)" % (c(["{}-{}", "{1}{0}", "{!r}:{}", "{:>6}|{:<4}", "{:^7}{}", "{:03d}{}", "{:.2f}{}", "{:x}{:o}", "{:+d}{}"]), c([s(k - 1), n(k - 1)]), c([s(k - 1), n(k - 1)]))
    if r == 16: return "%s.%s(%s%s)" % (s(k - 1), c(["ljust", "rjust", "center", "zfill"]), c(["0", "3", "7", "-1", "12"]), c(["", ", '*'"]))
    if r == 17: return "os.path.%s(%s)" % (c(["basename", "dirname", "normpath"]), s(k - 1))
    if r == 18: return "os.path.join(%s, %s)" % (s(k - 1), s(k - 1))
    if r == 19: return "%s[%s]" % (s(k - 1), c(["0", "-1", "1"]))
    if r == 20: return "%s.%s(%s)" % (s(k - 1), c(["removeprefix", "removesuffix"]), s(k - 1))
    return c(STRS + VARS)


def l(k):
    if k <= 0:
        return c(["[]", "['a', 'b']", "('x11',)", "['b', 'a', 'b']"])
    r = R.randrange(14)
    if r == 0: return "%s.split(%s)" % (s(k - 1), c(["", "','", "' '", "None, 1", "'a'", "maxsplit=1"]))
    if r == 1: return "%s.rsplit(%s)" % (s(k - 1), c(["", "','", "None, 1", "'.', 1"]))
    if r == 2: return "[x for x in %s if %s]" % (l(k - 1), c(["x", "x.startswith('a')", "len(x) > 1", "x not in 'abc'"]))
    if r == 3: return "sorted(%s%s)" % (l(k - 1), c(["", ", reverse=True"]))
    if r == 4: return "sorted(set(%s))" % l(k - 1)
    if r == 5: return "%s + %s" % (l(k - 1), l(k - 1))
    if r == 6: return "%s[%s:%s]" % (l(k - 1), c(["", "1", "-2"]), c(["", "2", "-1"]))
    if r == 7: return "list(%s)" % s(k - 1)
    if r == 8: return "%s.%s(%s)" % (s(k - 1), c(["partition", "rpartition"]), c(["','", "' '", "'a'"]))
    if r == 9: return "%s.splitlines(%s)" % (s(k - 1), c(["", "True"]))
    if r == 10: return "[a + b for a, b in zip(%s, %s)]" % (s(k - 1), s(k - 1))
    if r == 11: return "[i for i, x in enumerate(%s) if x == %s]" % (s(k - 1), s(k - 1))
    if r == 12: return "list(range(%s, %s, %s))" % (c(INTS), c(INTS), c(["1", "2", "-1", "3"]))
    return "[%s, %s]" % (s(k - 1), n(k - 1))


def n(k):
    if k <= 0:
        return c(INTS + FLOATS)
    r = R.randrange(12)
    ops = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^"]
    if r < 4: return "(%s %s %s)" % (n(k - 1), c(ops), n(k - 1))
    if r == 4: return "len(%s)" % c([s(k - 1), l(k - 1)])
    if r == 5: return "int(%s%s)" % (c([s(k - 1), n(k - 1)]), c(["", "", ", 16", ", 0"]))
    if r == 6: return "float(%s)" % c([s(k - 1), n(k - 1)])
    if r == 7: return "-%s" % n(k - 1)
    if r == 8: return "%s.%s(%s)" % (s(k - 1), c(["find", "rfind", "count", "index"]), ", ".join([s(k - 1)] + R.sample(["0", "1", "-2", "5", "None"], R.randrange(3))))
    if r == 9: return "abs(%s)" % n(k - 1)
    if r == 10: return "bb.utils.vercmp_string(%s, %s)" % (c(["'1.0'", "'1.0a'", "'2:0.1'", "'1.0-r1'", "'1~rc'", "'0:1'"]), c(["'1.0'", "'1.00'", "'1.0.1'", "'1.0-r2'", "'1.0+git'"]))
    return c([c(INTS + FLOATS), "min(%s)" % l(k - 1), "max(%s, default=%s)" % (l(k - 1), c(INTS)), "sum(%s)" % c(["[1, 2, True]", "range(%s)" % c(INTS), "[1.5, 2]"])])


def b(k):
    r = R.randrange(9)
    if r == 0: return "%s in %s" % (s(k - 1), c([s(k - 1), l(k - 1)]))
    if r == 1: return "%s %s %s" % (n(k - 1), c(["<", "<=", "==", "!=", ">", ">="]), n(k - 1))
    if r == 2: return "%s %s %s" % (s(k - 1), c(["<", "==", "!=", ">="]), s(k - 1))
    if r == 3: return "not %s" % s(k - 1)
    if r == 4: return "%s.%s(%s)" % (s(k - 1), c(["startswith", "endswith"]), c([s(k - 1), "(%s, %s)" % (s(k - 1), s(k - 1))]))
    if r == 5: return "%s is None" % s(k - 1)
    if r == 6: return "%s.%s()" % (s(k - 1), c(["isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isidentifier"]))
    if r == 7: return "bb.utils.vercmp_string_op(%s, %s, %s)" % (c(["'1.0'", "'1.0a'", "'1.0-r1'", "' >=1.2'"]), c(["'1.0'", "'1.0.1'", "'1.0+git'"]), c(["'<'", "'<='", "'='", "'>>'", "'!='", "'~'"]))
    return "%s < %s <= %s" % (c([s(k - 1), n(k - 1)]), c([s(k - 1), n(k - 1)]), c([s(k - 1), n(k - 1)]))


out = set()
while len(out) < int(sys.argv[1] if len(sys.argv) > 1 else 3000):
    k = R.random()
    out.add((s if k < 0.45 else l if k < 0.65 else n if k < 0.85 else b)(R.randint(1, 4)))
print("# Generated by gen_random.py; expectations in random.expected (oracle.py).")
print("\n".join(sorted(out)))
