# BitBake's own tests (bb/tests/data.py, bb/tests/parse.py from the user's
# BitBake library) run against bitzel: `bb.data.init()` returns a datastore
# of bitzel's (a DataProxy over a Rust DataStore of its own) and
# `bb.parse.handle` parses with bitzel's parser into it. BitBake's own
# DataSmart and parser raise if anything calls them while the tests run,
# so a pass cannot come from BitBake computing the values.
import logging
import os
import subprocess
import sys
import tempfile
import unittest


class BitBakeUsed(AssertionError):
    pass


def _forbid(what):
    def forbidden(*args, **kwargs):
        raise BitBakeUsed("bitzel selftest: BitBake's own %s was called; the values "
                          "must come from bitzel's datastore and parser" % what)
    return forbidden


def install(boot, core_type):
    """Substitute bitzel for bb.data.init / bb.parse.handle."""
    import bb
    import bb.data
    import bb.data_smart
    import bb.parse
    import bb.parse.parse_py.BBHandler as BBHandler
    import bb.parse.parse_py.ConfHandler as ConfHandler

    def init():
        return boot.DataProxy(core_type.new_store())

    def init_db(parent=None):
        return parent.createCopy() if parent is not None else init()

    def handle(fn, d, include=0, baseconfig=False):
        if not isinstance(d, boot.DataProxy):
            raise TypeError("bitzel selftest: bb.parse.handle got %r, not a bitzel datastore" % (d,))
        skipped, errors, fatal, variants, logged = d._c.parse(fn, bool(include))
        # The warnings BitBake's parser logs itself, to the loggers it
        # uses (bb.parse.logger is BitBake.Parsing, bb.warn's BitBake).
        for name, message in logged:
            logging.getLogger(name).warning(message)
        if fatal:
            # bb.fatal: the error is logged, then BBHandledException.
            for e in errors:
                bb.parse.logger.critical(e)
            raise bb.BBHandledException()
        if errors:
            raise bb.parse.ParseError('\n'.join(errors), fn)
        if include or fn.endswith('.conf') or fn.endswith('.bbclass'):
            return d
        if skipped is not None:
            raise bb.parse.SkipRecipe(skipped)
        # As BitBake: the recipe under '', each BBCLASSEXTEND variant under
        # its word; a variant that raised SkipRecipe carries __SKIPPED.
        datastores = {'': d}
        for name, core, skip in variants:
            v = boot.DataProxy(core)
            if skip is not None:
                v.setVar('__SKIPPED', skip)
            datastores[name] = v
        return datastores

    # BitBake's loggers pass records on to the root logger (where
    # unittest's assertLogs looks); bitzel's embedding stops them at
    # `BitBake` to send them to its own diagnostics instead.
    logging.getLogger('BitBake').propagate = True
    bb.data.init = init
    bb.data.init_db = init_db
    bb.parse.handle = handle
    bb.data_smart.DataSmart.__init__ = _forbid('bb.data_smart.DataSmart')
    BBHandler.handle = _forbid('BitBake parser (BBHandler.handle)')
    ConfHandler.handle = _forbid('BitBake parser (ConfHandler.handle)')
    for h in bb.parse.handlers:
        h['handle'] = _forbid("BitBake parser (bb.parse.handlers)")


class _LibraryGaps:
    """What a test reads from the BitBake library directory that the
    library does not have: a path inside it that does not exist, opened
    for reading, listed, or handed to a command (an argument or an
    environment value of a subprocess). Found with an audit hook, for the
    test running now only."""

    def __init__(self, lib):
        self.roots = tuple(sorted({os.path.abspath(lib) + os.sep, os.path.realpath(lib) + os.sep}))
        self.current = None
        sys.addaudithook(self._hook)

    def start(self):
        self.current = []

    def stop(self):
        gaps, self.current = self.current, None
        return gaps

    def _missing(self, value, how):
        if isinstance(value, bytes):
            value = os.fsdecode(value)
        if not isinstance(value, str):
            return
        for part in value.split(os.pathsep):
            path = os.path.abspath(part) if os.path.isabs(part) else None
            if (path and (path + os.sep).startswith(self.roots) and not os.path.exists(path)
                    and (path, how) not in self.current):
                self.current.append((path, how))

    def _hook(self, event, args):
        if self.current is None:
            return
        try:
            if event == 'open':
                path, _, flags = args
                writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT
                if not isinstance(path, int) and not (flags or 0) & writing:
                    self._missing(path, 'read')
            elif event in ('os.listdir', 'os.scandir'):
                self._missing(args[0], 'listed')
            elif event == 'subprocess.Popen':
                _, argv, _, env = args
                argv = [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in (argv or ())]
                cmd = ' '.join(argv)
                for a in argv:
                    self._missing(a, 'an argument of `%s`' % cmd)
                for k, v in sorted((env or {}).items()):
                    self._missing(v, '%s in the environment of `%s`' % (k, cmd))
        except Exception:
            # An audit hook must not change what the test does.
            pass


# What `bitbake` is while the tests run: BitBake's tests run `bitbake -e
# [recipe]` in a build directory (parse.py's test_file_variables), and the
# values must come from bitzel, so a stand-in of bitzel's comes first on
# PATH. It runs bitzel's `show` on the current directory (read as BitBake
# reads a build directory: BBPATH and the variables BitBake passes through
# from the environment), with the library under test and a parse cache of
# its own; anything but `-e [recipe]` is refused.
_BITBAKE_STAND_IN = """#!/bin/sh
# bitzel selftest: a stand-in for bitbake, running bitzel (see selftest.py)
if [ "$1" = -e ] && [ $# -le 2 ]; then
    shift
    BITZEL_BITBAKE_LIB=%(lib)s exec %(show)s --cache-dir %(cache)s "$(pwd -P)" "$@"
fi
echo "bitzel selftest: this stand-in for bitbake runs only 'bitbake -e [recipe]', not: bitbake $*" >&2
exit 2
"""


def _bitbake_stand_in(scratch, lib, show):
    """Write the `bitbake` stand-in into `scratch`/bin; the directory."""
    import shlex
    bindir = os.path.join(scratch, 'bin')
    os.mkdir(bindir)
    path = os.path.join(bindir, 'bitbake')
    with open(path, 'w') as f:
        f.write(_BITBAKE_STAND_IN % {
            'lib': shlex.quote(lib),
            'show': ' '.join(shlex.quote(a) for a in show),
            'cache': shlex.quote(os.path.join(scratch, 'cache')),
        })
    os.chmod(path, 0o755)
    return bindir


def _fails_under_bitbake(boot, lib, test_id, path):
    """Whether `test_id` fails under BitBake's own library too (a plain
    interpreter, BitBake's own datastore and parser, nothing of bitzel's
    but the hashserv stand-in bitzel's embedding also uses)."""
    script = boot.HASHSERV_STAND_IN + (
        'import os, unittest\n'
        'r = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(\n'
        '    unittest.defaultTestLoader.loadTestsFromName(sys.argv[1]))\n'
        'sys.exit(0 if r.wasSuccessful() and not r.skipped else 1)\n')
    env = dict(os.environ, PYTHONPATH=lib, PYTHONDONTWRITEBYTECODE='1', PATH=path)
    with tempfile.TemporaryDirectory() as scratch:
        r = subprocess.run([sys.executable, '-c', script, test_id], cwd=scratch, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return r.returncode != 0


def run(boot, core_type, modules, verbose, show):
    """Run the test modules; print per-module figures; return (passed,
    failed, [(test, why it cannot run with this library)]). Skips, errors
    and unexpected successes are failures. A test that failed is not
    runnable with this library (and counted apart, never as passed) only
    when it read paths inside the library that the library does not have
    and it fails under BitBake's own library too. `show` is bitzel's
    `show` command (argv), which the `bitbake` stand-in runs."""
    install(boot, core_type)
    # The guard itself (issue 13, item 4): BitBake's DataSmart and parser
    # must refuse to run, or no figure below means anything.
    import bb
    import bb.data_smart
    import bb.parse.parse_py.BBHandler as BBHandler
    for what, call in (('DataSmart', bb.data_smart.DataSmart),
                       ('BBHandler.handle', lambda: BBHandler.handle('x.bb', None, 0))):
        try:
            call()
        except BitBakeUsed:
            pass
        else:
            raise RuntimeError('bitzel selftest: BitBake\'s %s did not refuse to run' % what)
    lib = os.path.dirname(os.path.dirname(os.path.abspath(bb.__file__)))
    with tempfile.TemporaryDirectory(prefix='bitzel-selftest-') as scratch:
        path = os.environ.get('PATH', os.defpath)
        os.environ['PATH'] = _bitbake_stand_in(scratch, lib, show) + os.pathsep + path
        try:
            return _run_modules(boot, lib, modules, verbose, path)
        finally:
            os.environ['PATH'] = path


def _run_modules(boot, lib, modules, verbose, path):
    """`run`'s loop over the modules; `path` is PATH without the stand-in
    (for the re-run under BitBake's own library)."""
    gaps = _LibraryGaps(lib)
    found = {}

    class Result(unittest.TextTestResult):
        def startTest(self, test):
            gaps.start()
            super().startTest(test)

        def stopTest(self, test):
            super().stopTest(test)
            found[test.id()] = gaps.stop()

    passed = failed = 0
    unrunnable = []
    for name in modules:
        suite = unittest.defaultTestLoader.loadTestsFromName(name)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if verbose else 1,
                                         resultclass=Result).run(suite)
        bad = (len(result.failures) + len(result.errors) + len(result.skipped)
               + len(result.unexpectedSuccesses))
        good = result.testsRun - bad
        here = []
        for test, _ in result.failures + result.errors:
            missing = found.get(test.id())
            if missing and _fails_under_bitbake(boot, lib, test.id(), path):
                what = '; '.join('%s (%s)' % m for m in missing)
                here.append((test.id(), 'the library has no %s; it fails under BitBake\'s own '
                             'library too' % what))
        bad -= len(here)
        print('%s: %d passed, %d failed, %d not runnable with this library'
              % (name, good, bad, len(here)))
        for test, _ in result.skipped:
            print('  skipped (counted as failed): %s' % test.id())
        passed += good
        failed += bad
        unrunnable += here
    sys.stdout.flush()
    return passed, failed, unrunnable
