# bitzel's Python task runner (written by bitzel-exec, run inside the task's
# sandbox by /usr/bin/python3). It does what BitBake's worker does for one
# task: load the recipe's final datastore into BitBake's own DataSmart, import
# the layers' `addpylib` libraries, then run the task's prefuncs, the task and
# its postfuncs with bb.build.exec_func, every bb.note/warn/error line going
# to stdout (the task's log). Exit status 0 on success, 1 on failure.
import ast
import importlib.util
import json
import logging
import os
import sys
import types


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def setup_logging(bb):
    import bb.msg

    logger = logging.getLogger("BitBake")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(bb.msg.BBLogFormatter("%(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def add_pylib(bb, d, libdir, namespace):
    # As BitBake's PyLibNode: global modules, the directory on sys.path, the
    # namespace (and its BBIMPORTS) in the metadata's global context.
    for m in (d.getVar("BB_GLOBAL_PYMODULES") or "").split():
        if m not in bb.utils._context:
            bb.utils._context[m] = __import__(m)
    if libdir not in sys.path:
        sys.path.append(libdir)
    bb.utils._context[namespace] = __import__(namespace)
    for i in getattr(bb.utils._context[namespace], "BBIMPORTS", []):
        bb.utils._context[namespace] = __import__(namespace + "." + i)


def load_datastore(bb, spec):
    import bb.data_smart
    import bb.methodpool

    d = bb.data_smart.DataSmart()
    defs = []
    for name, entry in spec["vars"].items():
        if "l" in entry:
            # A Python literal value (a dict, list, number...): the object.
            d.setVar(name, ast.literal_eval(entry["l"]), parsing=True)
        if "v" in entry:
            d.setVar(name, entry["v"], parsing=True)
        for flag, value in entry.get("f", {}).items():
            d.setVarFlag(name, flag, value)
        flags = entry.get("f", {})
        if flags.get("python") and entry.get("v", "").startswith("def "):
            defs.append((name, entry["v"], flags))
    return d, defs


def compile_defs(bb, defs):
    # `def` functions go into the metadata's global context, as the parser puts them.
    for name, text, flags in defs:
        fn = flags.get("filename", name)
        lineno = int(flags.get("lineno", "1"))
        bb.methodpool.insert_method(fn, text, fn, lineno - 1)


def missing_hashserv():
    # BitBake's lib/ carries `hashserv` beside `bb`; the `bitbake-setup`
    # wheel carries `bb` alone, and bb.siggen imports hashserv at import time
    # although running a task never calls it. Only then an empty module
    # stands in, so that `import bb.parse` works.
    if importlib.util.find_spec("hashserv") is None:
        for name in ("hashserv", "hashserv.client"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["hashserv"].client = sys.modules["hashserv.client"]


def taskdepdata(bb, raw):
    # BB_TASKDEPDATA as BitBake's runqueue builds it: task id -> bb.TaskData
    # (pn, taskname, fn, deps as a set, provides, taskhash, unihash, hashfn,
    # and in newer BitBake taskhash_deps); a list in a BitBake without it.
    fields = ["pn", "taskname", "fn", "deps", "provides", "taskhash", "unihash", "hashfn"]
    out = {}
    for tid, e in raw.items():
        vals = dict(e, deps=set(e["deps"]), taskhash_deps=set())
        if hasattr(bb, "TaskData"):
            out[tid] = bb.TaskData(**{k: vals.get(k) for k in bb.TaskData._fields})
        else:
            out[tid] = [vals[k] for k in fields]
    return out


def failed_at(exc, files):
    # The innermost frame in a metadata file, through chained exceptions
    # (better_exec re-raises a BBHandledException from the original).
    where = None
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename in files:
                where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            tb = tb.tb_next
        if where:
            return where
        exc = exc.__context__
    return None


def import_bb():
    # BitBake's shell parser would write its grammar tables into the
    # library or the working directory (the task's output): bitzel's
    # shell_tables.py, written beside this runner, keeps them in the
    # runner's own scratch directory.
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "bitzel_shell_tables", os.path.join(here, "shell_tables.py"))
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    tables.install(os.path.join(here, "shell-tables"))
    try:
        import bb
        import bb.build
        import bb.data
        import bb.utils
    finally:
        tables.finish()
    return bb


def main():
    spec = load_spec(sys.argv[1])
    sys.path.insert(0, spec["bitbake_lib"])
    missing_hashserv()
    bb = import_bb()

    logger = setup_logging(bb)
    d, defs = load_datastore(bb, spec)
    task = spec["task"]
    temp = spec["temp"]
    os.makedirs(temp, exist_ok=True)
    # Run files and the shell functions' message fifo go to a scratch
    # directory of the sandbox, never into the task's captured output.
    d.setVar("T", temp)
    d.setVar("BB_RUNTASK", task)
    # As bb.build._exec_task: the task's name without `do_` (sstate.bbclass
    # refuses to run without it: "sstate code running without task context").
    d.setVar("BB_CURRENTTASK", task[3:] if task.startswith("do_") else task)
    d.setVar("BB_WORKERCONTEXT", "1")
    d.setVar("BB_LOGFILE", "/dev/stdout")
    # As bitbake-worker: the task's dependency data and its own hashes (see
    # BuildExecutor::taskdepdata: bitzel's stand-ins for BitBake's signatures).
    deps = taskdepdata(bb, spec.get("taskdepdata") or {})
    d.setVar("BB_TASKDEPDATA", deps)
    me = spec["filename"] + ":" + task
    if me in deps:
        d.setVar("BB_TASKHASH", deps[me][5])
        d.setVar("BB_UNIHASH", deps[me][6])
    # As bitbake-worker: a signature generator in bb.parse.siggen (sstate.bbclass
    # asks it for report_unihash). bitzel's own keys replace BitBake's task
    # signatures, so it is BitBake's no-op one: no hash equivalence to report.
    import bb.parse
    import bb.siggen

    bb.parse.siggen = bb.siggen.SignatureGenerator(d)
    # As bitbake-worker and bb.build._task_data: the recipe's name and the
    # generator's view of it (stamps), which bb.siggen.dump_this_task reads.
    d.setVar("BB_FILENAME", spec["filename"])
    tasks = d.getVar("__BBTASKS", False)
    if isinstance(tasks, str):
        d.setVar("__BBTASKS", tasks.split())
    bb.parse.siggen.setup_datacache_from_datastore(spec["filename"], d)
    for namespace, libdir in spec["pylibs"]:
        add_pylib(bb, d, libdir, namespace)
    compile_defs(bb, defs)
    # As bitbake-worker: the task's [umask], else BB_DEFAULT_UMASK.
    umask = d.getVarFlag(task, "umask") or d.getVar("BB_DEFAULT_UMASK")
    if umask:
        os.umask(int(umask, 8) if isinstance(umask, str) else umask)
    # The exported variables are the process environment (the sandbox's
    # environment already holds them, as the worker's os.environ does).
    try:
        for func in (d.getVarFlag(task, "prefuncs", expand=True) or "").split():
            bb.build.exec_func(func, d)
        bb.build.exec_func(task, d)
        for func in (d.getVarFlag(task, "postfuncs", expand=True) or "").split():
            bb.build.exec_func(func, d)
    except (Exception, SystemExit) as exc:
        # As bb.build._exec_task: a handled exception was logged already.
        if not isinstance(exc, bb.BBHandledException):
            logger.error(str(exc))
        files = {e.get("f", {}).get("filename") for e in spec["vars"].values()}
        where = failed_at(exc, files - {None})
        if where:
            logger.error("%s failed at %s:%d" % (task, where[0], where[1]))
        sys.stdout.flush()
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
