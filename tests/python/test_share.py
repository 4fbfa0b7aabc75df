"""share(): what a proxy pickles as, and what unpickling it gives, in this
process and in os.fork children; forged and stale handles in pickle
streams; the fallback to values."""

import copy
import errno
import os
import pickle
import random
import unittest

import numpy

# ModeTest: imported to run here too (checks the shim's presence).
from support import (HANDLE_ERRNOS, Forged, ModeTest, Recorder, forkshim,
                     in_child, needs_plain, needs_shim, raw_abi)


class Model(object):
    def __init__(self, n):
        self.weights = list(range(n))

    def predict(self, i):
        return self.weights[i] * 2


def handle_pickle_size_limit():
    return 200


@needs_shim
class ByHandle(unittest.TestCase):
    def test_proxy_pickles_as_a_small_handle(self):
        a = numpy.zeros(1 << 20)
        with Recorder() as rec:
            data = pickle.dumps(forkshim.share(a))
        self.assertLess(len(data), handle_pickle_size_limit())
        self.assertEqual(rec.fallbacks, [])

    def test_unpickling_in_the_same_process_gives_the_object_itself(self):
        m = Model(10)
        ref = forkshim.share(m)
        self.assertIs(pickle.loads(pickle.dumps(ref)), m)

    def test_fork_child_unpickles_the_inherited_object(self):
        m = Model(1000)
        ref = forkshim.share(m)  # alive until the child is forked
        data = pickle.dumps(ref)
        same, answer = in_child(
            lambda: (lambda o: (id(o) == id(m), o.predict(7)))(
                pickle.loads(data)))
        self.assertTrue(same)
        self.assertEqual(answer, 14)

    def test_numpy_array_arrives_zero_copy(self):
        a = numpy.arange(1 << 20, dtype=numpy.float64)
        addr = a.__array_interface__["data"][0]
        ref = forkshim.share(a)
        data = pickle.dumps(ref)
        self.assertLess(len(data), handle_pickle_size_limit())
        got = in_child(lambda: (lambda x: (
            x.__array_interface__["data"][0], float(x[12345]),
            x.flags.writeable, id(x) == id(a)))(pickle.loads(data)))
        # By default the array is shared read-only: the same object, made
        # non-writeable in the parent too while it is shared.
        self.assertEqual(got, (addr, 12345.0, False, True))
        self.assertFalse(a.flags.writeable)
        with self.assertRaises(ValueError):
            a[0] = 1
        ref.release()
        self.assertTrue(a.flags.writeable)

    def test_readonly_false_keeps_the_array_writeable(self):
        a = numpy.arange(1 << 10, dtype=numpy.float64)
        ref = forkshim.share(a, readonly=False)
        data = pickle.dumps(ref)
        self.assertTrue(a.flags.writeable)
        got = in_child(lambda: (lambda x: (id(x) == id(a),
                                           x.flags.writeable))(
            pickle.loads(data)))
        self.assertEqual(got, (True, True))

    def test_readonly_share_gives_a_read_only_view_of_the_same_data(self):
        a = numpy.arange(1000, dtype=numpy.int32)
        ref = forkshim.share(a, readonly=True)
        data = pickle.dumps(ref)

        def child():
            x = pickle.loads(data)
            try:
                x[0] = 5
                wrote = True
            except ValueError:
                wrote = False
            return (x.__array_interface__["data"][0], x.flags.writeable,
                    wrote, int(x.sum()))
        got = in_child(child)
        self.assertEqual(got, (a.__array_interface__["data"][0], False,
                               False, int(a.sum())))

    def test_readonly_share_of_a_bytearray_gives_a_read_only_memoryview(self):
        ba = bytearray(b"abcdef")
        ref = forkshim.share(ba, readonly=True)
        v = pickle.loads(pickle.dumps(ref))
        self.assertIsInstance(v, memoryview)
        self.assertTrue(v.readonly)
        self.assertEqual(bytes(v), b"abcdef")

    def test_readonly_share_of_a_non_buffer_is_rebuilt_from_shared_memory(
            self):
        # It used to raise TypeError (no memoryview of a dict); now every
        # receiver rebuilds it from one pickle in shared memory, its arrays
        # read-only views of the shared pages.
        d = {"k": [1, 2], "a": numpy.arange(4096.0)}
        ref = forkshim.share(d, readonly=True)
        got = in_child(lambda: (lambda x: (
            x is d, x["k"], x["a"].flags.writeable, float(x["a"].sum())))(
            pickle.loads(pickle.dumps(ref))))
        self.assertEqual(got, (False, [1, 2], False, float(d["a"].sum())))

    def test_nested_proxies_in_lists_and_dicts_resolve_to_the_objects(self):
        a = numpy.ones(10)
        m = Model(3)
        ra, rm = forkshim.share(a), forkshim.share(m)
        data = pickle.dumps({"a": ra, "both": [rm, ra], "t": (rm, 1)})

        def child():
            d = pickle.loads(data)
            return (id(d["a"]) == id(a), d["both"][1] is d["a"],
                    id(d["both"][0]) == id(m), d["t"][0] is d["both"][0])
        self.assertEqual(in_child(child), (True, True, True, True))

    def test_unpicklable_object_travels_by_handle(self):
        fn = lambda x: x + 1  # noqa: E731 (pickle cannot send a lambda)
        ref = forkshim.share(fn)
        data = pickle.dumps(ref)
        self.assertEqual(in_child(lambda: pickle.loads(data)(41)), 42)

    def test_object_shared_after_a_live_child_was_forked_goes_by_token(self):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        try:
            m = Model(5)
            ref = forkshim.share(m)
            with Recorder() as rec:
                first = pickle.dumps(ref)
                second = pickle.dumps([ref, ref, {"k": ref}])
        finally:
            os.close(w)
            os.close(r)
            os.waitpid(pid, 0)
        # Pickled once into shared memory: each pickle is a small token.
        self.assertLess(len(first), 1000)
        self.assertIsNot(pickle.loads(first), m)
        self.assertEqual(pickle.loads(first).weights, m.weights)
        self.assertEqual(rec.fallbacks, [])
        # The child is reaped: every live child can now resolve it.
        self.assertIs(pickle.loads(pickle.dumps(ref)), m)
        del second

    def test_released_proxy_goes_by_value_with_one_warning(self):
        m = Model(4)
        ref = forkshim.share(m)
        h = ref.handle
        ref.release()
        with self.assertRaises(forkshim.HandleError):
            forkshim.resolve(h)
        with Recorder() as rec:
            for _ in range(5):
                got = pickle.loads(pickle.dumps(ref))
        self.assertIsNot(got, m)
        self.assertEqual(got.weights, m.weights)
        self.assertEqual(len(rec.fallbacks), 1)

    def test_handle_of_a_collected_proxy_names_the_cause(self):
        data = pickle.dumps(forkshim.share(Model(2)))  # proxy dies here
        got = pickle.loads(data)
        with self.assertRaises(forkshim.HandleError) as cm:
            got.weights
        self.assertEqual(cm.exception.errno, errno.ESTALE)
        self.assertIn("SharedRef", str(cm.exception))

    def test_proxy_is_thawed_when_collected(self):
        m = Model(2)
        ref = forkshim.share(m)
        h = ref.handle
        self.assertEqual(forkshim.info(h).freezes, 1)
        del ref
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.info(h)
        self.assertEqual(cm.exception.errno, errno.ESTALE)

    def test_stand_in_passes_through_where_nothing_is_pickled(self):
        a = numpy.arange(10)
        ref = forkshim.share(a)
        self.assertEqual(len(ref), 10)
        self.assertEqual(ref[3], 3)
        self.assertEqual(ref.sum(), 45)
        self.assertEqual(list(ref)[-1], 9)
        self.assertIn(4, ref)
        self.assertIs(forkshim.unwrap(ref), a)
        self.assertIs(numpy.asarray(ref), a)
        self.assertIs(copy.copy(ref), ref)
        self.assertIs(copy.deepcopy([ref])[0], ref)


@needs_shim
class Forgeries(unittest.TestCase):
    """Unpickling never crashes nor raises: every bad stream gives an
    Unresolved whose first use raises HandleError."""

    def loads_error(self, *fields):
        got = pickle.loads(pickle.dumps(Forged(*fields)))
        self.assertIs(type(got), forkshim.Unresolved)
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.unwrap(got)
        self.assertIs(got.error, cm.exception)
        return cm.exception

    def test_every_use_of_an_unresolved_raises_its_handle_error(self):
        got = pickle.loads(pickle.dumps(Forged(1, "ndarray", 1, 96, False)))
        uses = {
            "attribute": lambda: got.sum, "len": lambda: len(got),
            "item": lambda: got[0], "slice": lambda: got[1:3],
            "iteration": lambda: list(got), "in": lambda: 1 in got,
            "call": lambda: got(), "bool": lambda: bool(got),
            "==": lambda: got == 1, "hash": lambda: hash(got),
            "+": lambda: got + 1, "radd": lambda: 1 + got,
            "float": lambda: float(got), "index": lambda: [0][got],
            "isinstance": lambda: isinstance(got, numpy.ndarray),
            "numpy.asarray": lambda: numpy.asarray(got),
            "numpy.sum": lambda: numpy.sum(got),
            "setattr": lambda: setattr(got, "x", 1),
            "pickle": lambda: pickle.dumps(got),
            "copy": lambda: copy.copy(got),
        }
        for what, use in uses.items():
            with self.assertRaises(forkshim.HandleError, msg=what) as cm:
                use()
            self.assertIs(cm.exception, got.error, what)
        self.assertIsInstance(got, forkshim.Unresolved)
        self.assertIn("does not resolve", repr(got))

    def test_random_handles_fail_with_a_handle_errno(self):
        rng = random.Random(6)
        for _ in range(2000):
            h = rng.getrandbits(64) or 1
            e = self.loads_error(h, "dict", rng.getrandbits(47), 48, False)
            self.assertIn(e.errno, HANDLE_ERRNOS)

    def test_malformed_fields_fail_with_ebadf(self):
        for fields in ((0, "dict", 1, 48, False), (-1, "dict", 1, 48, False),
                       (1 << 64, "dict", 1, 48, False),
                       ("12", "dict", 1, 48, False)):
            self.assertEqual(self.loads_error(*fields).errno, errno.EBADF)

    def test_real_handle_with_another_address_or_length_fails(self):
        m = Model(1)
        ref = forkshim.share(m)
        i = forkshim.info(ref.handle)
        for addr, n in ((i.addr + 16, i.len), (i.addr, i.len + 8),
                        (0, i.len)):
            e = self.loads_error(ref.handle, "Model", addr, n, False)
            self.assertEqual(e.errno, errno.EBADF)
        e = self.loads_error(ref.handle, "ndarray", i.addr, i.len, False)
        self.assertEqual(e.errno, errno.EBADF)
        self.assertIs(pickle.loads(pickle.dumps(Forged(
            ref.handle, "Model", i.addr, i.len, False))), m)

    def test_region_frozen_by_other_code_is_not_taken_for_an_object(self):
        # 64 bytes of non-object data, frozen through the raw ABI: a stream
        # naming it with the right address and length must not cast it.
        import ctypes
        buf = ctypes.create_string_buffer(b"\xff" * 64, 64)
        lib = raw_abi()
        addr = ctypes.addressof(buf)
        h = lib.forkshim_freeze(addr, 64, b"raw", 0)
        self.assertNotEqual(h, 0)
        try:
            e = self.loads_error(h, "dict", addr, 64, False)
            self.assertEqual(e.errno, errno.EBADF)
            self.assertIn("not name an object frozen by forkshim", str(e))
        finally:
            lib.forkshim_thaw(h)

    def test_thawed_handle_fails_with_estale_in_a_child(self):
        m = Model(1)
        ref = forkshim.share(m)
        i = forkshim.info(ref.handle)
        fields = (ref.handle, "Model", i.addr, i.len, False)
        ref.release()

        def child():
            got = pickle.loads(pickle.dumps(Forged(*fields)))
            try:
                forkshim.unwrap(got)
            except forkshim.HandleError as e:
                return e.errno, str(e)
        err, text = in_child(child)
        self.assertEqual(err, errno.ESTALE)
        self.assertIn("ESTALE", text)
        self.assertIn("thawed", text)

    def test_handle_frozen_after_the_childs_birth_fails_with_enoent(self):
        r, w = os.pipe()
        rr, ww = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.close(rr)
            chunks = []
            while True:
                c = os.read(r, 65536)
                if not c:
                    break
                chunks.append(c)
            try:
                forkshim.unwrap(pickle.loads(b"".join(chunks)))
                msg = b"resolved"
            except forkshim.HandleError as e:
                msg = ("%d %s" % (e.errno, e)).encode()
            except BaseException as e:
                msg = repr(e).encode()
            os.write(ww, msg)
            os._exit(0)
        os.close(r)
        os.close(ww)
        m = Model(3)
        try:
            h = forkshim.freeze(m)
            i = forkshim.info(h)
            os.write(w, pickle.dumps(Forged(h, "Model", i.addr, i.len,
                                            False)))
        finally:
            os.close(w)
            with os.fdopen(rr, "rb") as f:
                msg = f.read().decode()
            _, status = os.waitpid(pid, 0)
        forkshim.thaw(h)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(msg.startswith("%d " % errno.ENOENT), msg)
        self.assertIn("ENOENT", msg)
        self.assertIn("frozen after this process was forked", msg)

    def test_handle_error_survives_pickling(self):
        e = self.loads_error(1, "dict", 1, 48, False)
        back = pickle.loads(pickle.dumps(e))
        self.assertIsInstance(back, forkshim.HandleError)
        self.assertIsInstance(back, OSError)
        self.assertEqual((back.errno, str(back)), (e.errno, str(e)))


@needs_plain
class ByValue(unittest.TestCase):
    def test_proxy_pickles_as_the_value_with_one_warning(self):
        a = numpy.arange(1 << 16, dtype=numpy.float64)
        with Recorder() as rec:
            ref = forkshim.share(a)
            blobs = [pickle.dumps(ref) for _ in range(4)]
        self.assertEqual(ref.handle, 0)
        self.assertGreater(len(blobs[0]), a.nbytes)
        self.assertTrue(numpy.array_equal(pickle.loads(blobs[0]), a))
        self.assertEqual(len(rec.fallbacks), 1)
        w = rec.fallbacks[0]
        self.assertIn("not loaded", str(w.message))
        self.assertIn("python3 -m forkshim", str(w.message))
        # Raised at share(), pointing at this file's line.
        self.assertEqual(w.filename, __file__)

    def test_value_pickle_needs_no_forkshim_to_load(self):
        data = pickle.dumps(forkshim.share({"k": [1, 2]}))
        self.assertNotIn(b"forkshim", data)
        self.assertEqual(pickle.loads(data), {"k": [1, 2]})

    def test_readonly_value_arrives_read_only(self):
        a = numpy.arange(10)
        got = pickle.loads(pickle.dumps(forkshim.share(a, readonly=True)))
        self.assertFalse(got.flags.writeable)
        self.assertTrue(numpy.array_equal(got, a))

    def test_nested_proxies_arrive_as_values_in_a_fork_child(self):
        m = Model(3)
        r = forkshim.share(m)
        data = pickle.dumps({"a": r, "b": [r]})

        def child():
            d = pickle.loads(data)
            return d["a"].weights, d["b"][0] is d["a"]
        self.assertEqual(in_child(child), ([0, 1, 2], True))


if __name__ == "__main__":
    unittest.main()
