import os
import unittest

import bb.data
import bb.data_smart

HERE = os.path.dirname(__file__)


class Gaps(unittest.TestCase):
    def test_passes(self):
        d = bb.data.init()
        d.setVar("A", "1")
        self.assertEqual(d.getVar("A"), "1")

    def test_fails(self):
        self.assertEqual(bb.data.init().getVar("A"), "x")

    def test_reads_data_this_library_lacks(self):
        # Fails with any datastore: the file is not in this library.
        with open(os.path.join(HERE, "no-such-data", "x.conf")) as f:
            f.read()

    def test_fails_with_bitzel_only(self):
        # Reads a missing path too, but passes with this library's own
        # datastore: a failure with bitzel is bitzel's.
        if isinstance(bb.data.init(), bb.data_smart.DataSmart):
            return
        os.listdir(os.path.join(HERE, "no-such-dir"))
