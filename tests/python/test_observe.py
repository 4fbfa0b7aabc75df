"""observe() and object_ranges(): what a whole object holds, as ranges."""

import ctypes
import errno
import os
import unittest

import numpy

from support import ModeTest, forkshim, in_child, needs_plain, needs_shim
from forkshim.objects import FORKSHIM_OBSERVE, object_ranges

PAGE = os.sysconf("SC_PAGE_SIZE")


def covered(ranges, addr):
    return any(s <= addr < e for s, e in ranges)


def dict_table(d):
    """ma_keys of a CPython dict: its separately allocated table."""
    return ctypes.c_void_p.from_address(id(d) + 4 * ctypes.sizeof(
        ctypes.c_void_p)).value


class Ranges(unittest.TestCase):
    def test_a_dict_covers_its_table_keys_and_values(self):
        d = {"key%d" % i: (i, "value%d" % i) for i in range(20000)}
        ranges, count = object_ranges(d)
        # the dict, its keys, tuples and strings; small ints are shared
        self.assertGreaterEqual(count, 1 + 20000 * 3 - 257)
        for s, e in ranges:
            self.assertEqual(s % PAGE, 0)
            self.assertEqual(e % PAGE, 0)
        self.assertTrue(covered(ranges, id(d)))
        self.assertTrue(covered(ranges, dict_table(d)))
        for k in list(d)[::6666]:  # the dict's own key objects
            self.assertTrue(covered(ranges, id(k)), k)
            self.assertTrue(covered(ranges, id(d[k])), k)
            self.assertTrue(covered(ranges, id(d[k][1])), k)
        # The table (20,000 entries) and the objects: more than a getsizeof
        total = sum(e - s for s, e in ranges)
        self.assertGreater(total, 20000 * 100)

    def test_a_dataframe_covers_its_numpy_columns(self):
        import pandas
        df = pandas.DataFrame({"a": numpy.arange(300000, dtype=float),
                               "b": numpy.arange(300000)})
        ranges, _ = object_ranges(df)
        for col in ("a", "b"):
            data = df[col].values.ctypes.data
            self.assertTrue(covered(ranges, data), col)
            self.assertTrue(covered(ranges, data + 300000 * 8 - 1), col)

    def test_types_and_modules_are_left_out(self):
        ranges, count = object_ranges([os, int, len, covered])
        self.assertEqual(count, 1)  # the list alone
        self.assertFalse(covered(ranges, id(int)))


@needs_shim
class Observe(unittest.TestCase):
    def test_observed_ranges_are_frozen_for_reports_under_the_name(self):
        d = {"k%d" % i: ("v%d" % i, float(i)) for i in range(30000)}
        with forkshim.observe(d, "users") as o:
            self.assertGreater(len(o.handles), 0)
            for h in o.handles:
                i = forkshim.info(h)
                self.assertEqual(i.name, "users")
                self.assertEqual(i.flags, FORKSHIM_OBSERVE)
            self.assertEqual(o.sharing().pages * PAGE, o.bytes)
            self.assertEqual(o.skipped, 0)
            handles = list(o.handles)
        for h in handles:  # released
            with self.assertRaises(forkshim.HandleError):
                forkshim.info(h)

    def test_a_forked_reader_copies_the_pages_it_reads(self):
        d = {"k%d" % i: ("v%d" % i, float(i)) for i in range(30000)}
        with forkshim.observe(d, "users") as o:
            def read():
                before = o.sharing().exclusive
                total = sum(v[1] for v in d.values())
                return before, o.sharing().exclusive, total
            before, after, total = in_child(read)
        self.assertEqual(total, sum(range(30000)))
        # Reading wrote every entry's reference count.
        self.assertGreater(after - before, o.sharing().pages // 2
                           if o.handles else 1)

    def test_a_region_frozen_already_inside_is_cut_around(self):
        d = {"k%d" % i: i for i in range(5000)}
        h = forkshim.freeze(d)  # the dict's header
        try:
            with forkshim.observe(d, "d") as o:
                self.assertGreater(len(o.handles), 0)
                self.assertEqual(o.skipped, PAGE)  # the header's page
                self.assertEqual(forkshim.info(h).name, "dict")
        finally:
            forkshim.thaw(h)


@needs_plain
class WithoutShim(unittest.TestCase):
    def test_observe_raises_enosys(self):
        with self.assertRaises(forkshim.HandleError) as e:
            forkshim.observe({"a": 1})
        self.assertEqual(e.exception.errno, errno.ENOSYS)


if __name__ == "__main__":
    unittest.main()
