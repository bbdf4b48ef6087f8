#!/usr/bin/env python3
"""Checks scripts/poky-runnable's classifier on the failed tasks of
failed-tasks.jsonl (each line: the task, bitzel's task_failed event, and
the class expected, and where given the detail): a failure is classified from what the task said,
never from its name (a do_fetch that raised a Python exception is not a
source that is unavailable offline), and that --conf lines are written
into the project's local.conf."""
import importlib.machinery
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(HERE, "../../scripts/poky-runnable")
loader = importlib.machinery.SourceFileLoader("poky_runnable", script)
spec = importlib.util.spec_from_loader("poky_runnable", loader)
mod = importlib.util.module_from_spec(spec)
loader.exec_module(mod)

bad = 0
with open(os.path.join(HERE, "failed-tasks.jsonl")) as f:
    for n, line in enumerate(f, 1):
        case = json.loads(line)
        got, detail = mod.classify(case["task"], case["event"], None)
        if got != case["expect"] or case.get("detail", detail) != detail:
            bad += 1
            print("line %d: %s: expected %s (%s), got %s (%s)"
                  % (n, case["task"], case["expect"], case.get("detail"), got, detail))
# --conf lines land in local.conf after BB_NO_NETWORK and DL_DIR, in order.
import tempfile
with tempfile.TemporaryDirectory() as work:
    with open(mod.write_project("/poky", work, "/dl", ['PATCHTOOL = "patch"', 'INHERIT:remove = "x"'])) as f:
        text = f.read()
    want = '    DL_DIR = "/dl"\n    PATCHTOOL = "patch"\n    INHERIT:remove = "x"\nbitzel:\n'
    if want not in text:
        bad += 1
        print("write_project: --conf lines not written into local_conf_header:\n%s" % text)
print("%d cases, %d wrong" % (n, bad))
sys.exit(1 if bad else 0)
