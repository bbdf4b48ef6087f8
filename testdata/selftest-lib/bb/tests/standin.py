import os
import subprocess
import tempfile
import unittest

import bb

LIB = os.path.dirname(os.path.dirname(os.path.abspath(bb.__file__)))


class StandIn(unittest.TestCase):
    """The `bitbake` the runner puts first on PATH (the Rust test gives it
    a `show` command that echoes what it is given)."""

    def test_bitbake_e_runs_show_on_the_current_directory(self):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.check_output(["bitbake", "-e", "foo"], cwd=d,
                                          universal_newlines=True).split()
            self.assertEqual(out[:2], ["shown", LIB])
            self.assertEqual(out[2], "--cache-dir")
            self.assertEqual(out[-2:], [os.path.realpath(d), "foo"])

    def test_other_commands_are_refused(self):
        r = subprocess.run(["bitbake", "-g", "foo"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("runs only 'bitbake -e [recipe]'", r.stderr)
