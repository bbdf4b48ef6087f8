# BitBake's own tests (bb/tests/data.py, bb/tests/parse.py from the user's
# BitBake library) run against bitzel: `bb.data.init()` returns a datastore
# of bitzel's (a DataProxy over a Rust DataStore of its own) and
# `bb.parse.handle` parses with bitzel's parser into it. BitBake's own
# DataSmart and parser raise if anything calls them while the tests run,
# so a pass cannot come from BitBake computing the values.
import logging
import sys
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


def run(boot, core_type, modules, verbose):
    """Run the test modules; print per-module and total figures; return
    (passed, failed). Skips, errors and unexpected successes are failures."""
    install(boot, core_type)
    # The guard itself (issue 13, item 4): BitBake's DataSmart and parser
    # must refuse to run, or no figure below means anything.
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
    passed = failed = 0
    for name in modules:
        suite = unittest.defaultTestLoader.loadTestsFromName(name)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if verbose else 1).run(suite)
        bad = (len(result.failures) + len(result.errors) + len(result.skipped)
               + len(result.unexpectedSuccesses))
        good = result.testsRun - bad
        print('%s: %d passed, %d failed' % (name, good, bad))
        for test, _ in result.skipped:
            print('  skipped (counted as failed): %s' % test.id())
        passed += good
        failed += bad
    sys.stdout.flush()
    return passed, failed
