"""freeze, thaw, frozen, info, sharing, visible, resolve, prepare_fork."""

import array
import ctypes
import errno
import gc
import mmap
import os
import sys
import unittest
import weakref

import numpy

# ModeTest: imported to run here too (checks the shim's presence).
from support import (ModeTest, forkshim, in_child, needs_plain, needs_shim,
                     raw_abi)

PAGE = os.sysconf("SC_PAGE_SIZE")


class Thing(object):
    """A weakly referenceable object with nothing special about it."""


def buffer_handle(addr, n):
    """The handle of the frozen region wholly containing [addr, addr+n)."""
    return raw_abi().forkshim_find(addr, n)


@needs_shim
class Freeze(unittest.TestCase):
    def test_freeze_names_the_object_itself(self):
        t = Thing()
        h = forkshim.freeze(t)
        try:
            i = forkshim.info(h)
            self.assertNotEqual(h, 0)
            self.assertEqual(i.addr, id(t))
            self.assertGreaterEqual(i.len, 16)
            self.assertLessEqual(i.len, type(t).__basicsize__)
            self.assertEqual(i.owner, os.getpid())
            self.assertEqual(i.freezes, 1)
            self.assertEqual(i.name, "Thing")
        finally:
            forkshim.thaw(h)

    def test_name_is_kept_and_cut_to_63_bytes(self):
        d = {}
        with forkshim.frozen(d, name="x" * 100) as (h,):
            self.assertEqual(forkshim.info(h).name, "x" * 63)
        with forkshim.frozen(d, name="lookup") as (h,):
            self.assertEqual(forkshim.info(d).name, "lookup")

    def test_same_object_twice_gives_one_handle_and_two_freezes(self):
        t = Thing()
        h1 = forkshim.freeze(t)
        h2 = forkshim.freeze(t)
        self.assertEqual(h1, h2)
        self.assertEqual(forkshim.info(h1).freezes, 2)
        forkshim.thaw(t)
        self.assertEqual(forkshim.info(h1).freezes, 1)
        self.assertIs(forkshim.resolve(h1), t)
        forkshim.thaw(h1)
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.info(h1)
        self.assertEqual(cm.exception.errno, errno.ESTALE)

    def test_frozen_object_stays_alive_until_thawed(self):
        t = Thing()
        alive = weakref.ref(t)
        h = forkshim.freeze(t)
        del t
        gc.collect()
        self.assertIsNotNone(alive())
        forkshim.thaw(h)
        gc.collect()
        self.assertIsNone(alive())

    def test_bytes_struct_and_data_are_two_adjacent_regions(self):
        b = bytes(range(256)) * 64
        data = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value
        with forkshim.frozen(b) as (h,):
            self.assertEqual(forkshim.info(h).len, data - id(b))
            d = buffer_handle(data, len(b))
            self.assertNotEqual(d, 0)
            self.assertNotEqual(d, h)
            self.assertEqual(forkshim.info(d).len, len(b))
            self.assertEqual(forkshim.sharing(b).pages,
                             (data + len(b) - 1) // PAGE - data // PAGE + 1)
        self.assertEqual(buffer_handle(data, len(b)), 0)

    def test_numpy_array_data_buffer_is_frozen(self):
        a = numpy.arange(100000, dtype=numpy.float64)
        addr = a.__array_interface__["data"][0]
        with forkshim.frozen(a):
            d = buffer_handle(addr, a.nbytes)
            self.assertNotEqual(d, 0)
            i = forkshim.info(d)
            self.assertEqual((i.addr, i.len), (addr, a.nbytes))

    def test_read_only_array_and_array_module_buffers_are_frozen(self):
        ro = numpy.ones(1000)
        ro.flags.writeable = False
        arr = array.array("d", range(1000))
        with forkshim.frozen(ro, arr):
            self.assertNotEqual(
                buffer_handle(ro.__array_interface__["data"][0], ro.nbytes),
                0)
            addr, n = arr.buffer_info()
            self.assertNotEqual(buffer_handle(addr, n * arr.itemsize), 0)

    def test_non_contiguous_array_freezes_its_struct_only(self):
        a = numpy.zeros((100, 100))[:, ::2]
        with forkshim.frozen(a) as (h,):
            self.assertEqual(forkshim.info(h).addr, id(a))
            self.assertEqual(
                buffer_handle(a.__array_interface__["data"][0], 8), 0)

    def test_bytearray_cannot_be_resized_while_frozen(self):
        ba = bytearray(b"abc" * 1000)
        h = forkshim.freeze(ba)
        with self.assertRaises(BufferError):
            ba.extend(b"more")
        forkshim.thaw(h)
        ba.extend(b"more")
        self.assertEqual(len(ba), 3004)

    def test_view_of_a_frozen_array_takes_a_freeze_of_its_buffer(self):
        base = numpy.arange(10000, dtype=numpy.int64)
        addr = base.__array_interface__["data"][0]
        view = base[100:200]
        with forkshim.frozen(base):
            d = buffer_handle(addr, base.nbytes)
            with forkshim.frozen(view) as (hv,):
                self.assertEqual(forkshim.info(d).freezes, 2)
                self.assertEqual(forkshim.info(hv).addr, id(view))
            self.assertEqual(forkshim.info(d).freezes, 1)

    def test_memoryview_of_frozen_bytes_shares_its_data_region(self):
        b = b"z" * 10000
        mv = memoryview(b)
        with forkshim.frozen(b, mv) as (hb, hm):
            self.assertNotEqual(hb, hm)
            data = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value
            self.assertEqual(forkshim.info(buffer_handle(data, 10000)).freezes,
                             2)

    def test_many_neighbouring_small_objects_freeze_without_overlap(self):
        # Regions sized by sys.getsizeof would run into the next object.
        # (sys.getsizeof counts a list's items array, a dict's table.)
        objs = [[i] * 10 for i in range(500)] + [{i: i} for i in range(500)] \
            + ["s%d" % i for i in range(500)] + [(i, i) for i in range(500)] \
            + [float(i) for i in range(500)]
        with forkshim.frozen(*objs) as hs:
            self.assertEqual(len(set(hs)), len(objs))
            for o, h in zip(objs, hs):
                self.assertIs(forkshim.resolve(h), o)

    def test_thaw_of_an_object_that_is_not_frozen_raises_value_error(self):
        with self.assertRaises(ValueError):
            forkshim.thaw(Thing())

    def test_thaw_of_a_junk_handle_raises_handle_error(self):
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.thaw(1)
        self.assertIn(cm.exception.errno, {errno.EBADF, errno.ENOENT,
                                           errno.ESTALE})

    def test_thaw_of_a_region_frozen_by_other_code_raises_value_error(self):
        buf = ctypes.create_string_buffer(64)
        lib = raw_abi()
        h = lib.forkshim_freeze(ctypes.addressof(buf), 64, None, 0)
        self.assertNotEqual(h, 0)
        try:
            with self.assertRaises(ValueError):
                forkshim.thaw(h)
            with self.assertRaises(forkshim.HandleError) as cm:
                forkshim.resolve(h)
            self.assertEqual(cm.exception.errno, errno.EBADF)
        finally:
            lib.forkshim_thaw(h)

    def test_frozen_thaws_on_exception(self):
        t = Thing()
        with self.assertRaises(KeyError):
            with forkshim.frozen(t) as (h,):
                raise KeyError("x")
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.resolve(h)
        self.assertEqual(cm.exception.errno, errno.ESTALE)

    def test_resolve_in_a_child_gives_the_inherited_object(self):
        t = Thing()
        t.payload = list(range(10))
        with forkshim.frozen(t) as (h,):
            same, payload = in_child(
                lambda: (id(forkshim.resolve(h)) == id(t),
                         forkshim.resolve(h).payload))
        self.assertTrue(same)
        self.assertEqual(payload, list(range(10)))

    def test_child_sees_enoent_for_an_object_frozen_after_its_birth(self):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            raw = os.read(r, 8)
            h = int.from_bytes(raw, sys.byteorder)
            try:
                forkshim.resolve(h)
                os._exit(1)
            except forkshim.HandleError as e:
                os._exit(0 if e.errno == errno.ENOENT
                         and "ENOENT" in str(e) else 2)
            except BaseException:
                os._exit(3)
        os.close(r)
        late = Thing()
        try:
            h = forkshim.freeze(late)
            self.assertFalse(forkshim.visible(late, pid))
            self.assertFalse(forkshim.visible(late))
            os.write(w, h.to_bytes(8, sys.byteorder))
        finally:
            os.close(w)
            _, status = os.waitpid(pid, 0)
        forkshim.thaw(h)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_visible_is_true_for_children_born_after_the_freeze(self):
        t = Thing()
        with forkshim.frozen(t):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            try:
                self.assertTrue(forkshim.visible(t, pid))
                self.assertTrue(forkshim.visible(t))
            finally:
                os.close(w)
                os.close(r)
                os.waitpid(pid, 0)
            with self.assertRaises(ProcessLookupError):
                forkshim.visible(t, pid)

    def test_sharing_counts_pages_a_live_child_still_maps(self):
        # A mapping of its own: a heap buffer shares its first and last
        # pages with other objects, which the parent may write after the
        # fork (that page is then copied, and rightly counts exclusive).
        buf = mmap.mmap(-1, 64 * PAGE,
                        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        a = numpy.frombuffer(buf, dtype=numpy.float64)
        a[:] = 1.0
        with forkshim.frozen(a):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
            try:
                s = forkshim.sharing(a)
            finally:
                os.close(w)
                os.close(r)
                os.waitpid(pid, 0)
        self.assertEqual(s.pages, 64)
        self.assertEqual(s.resident, 64)
        self.assertEqual(s.shared, 64)
        self.assertEqual(s.exclusive, 0)

    def test_prepare_fork_moves_objects_to_the_permanent_generation(self):
        gc.unfreeze()
        try:
            forkshim.prepare_fork()
            self.assertGreater(gc.get_freeze_count(), 0)
        finally:
            gc.unfreeze()


@needs_plain
class WithoutShim(unittest.TestCase):
    def test_nothing_is_available(self):
        self.assertFalse(forkshim.available())
        self.assertIsNone(forkshim.version())

    def test_freeze_returns_zero_and_thaw_does_nothing(self):
        t = Thing()
        self.assertEqual(forkshim.freeze(t), 0)
        forkshim.thaw(t)
        forkshim.thaw(12345)
        with forkshim.frozen(t, [1]) as hs:
            self.assertEqual(hs, (0, 0))

    def test_resolve_and_info_raise_enosys(self):
        for call in (lambda: forkshim.resolve(5),
                     lambda: forkshim.info(5),
                     lambda: forkshim.unwrap(
                         forkshim._restore(5, "dict", 1, 48, False))):
            with self.assertRaises(forkshim.HandleError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.ENOSYS)
            self.assertIn("LD_PRELOAD", str(cm.exception))


@needs_shim
class WithShim(unittest.TestCase):
    def test_version_is_the_shims(self):
        self.assertEqual(forkshim.version(), "0.1.0")


if __name__ == "__main__":
    unittest.main()
