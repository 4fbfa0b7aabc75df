"""forkshim.FrozenMapping: a read-only mapping in one shared frozen region.

Lookups must equal the dict's (every key, missing keys, keys equal across
types); real pools of every start method, made before the mapping, and a
ProcessPoolExecutor get it by token and read it without copying a page
(the region's pages are shared and none is private in the workers, where
the same lookups on a fork-inherited dict dirty megabytes); errors are
clear (key types, values that cannot be pickled, a mapping too big for the
memory allowed, stale and forged tokens)."""

import collections.abc
import concurrent.futures
import errno
import multiprocessing
import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

import workers
# ModeTest: imported to run here too (checks the shim's presence).
from support import (REPO, SHIM, ModeTest, Recorder, forkshim, in_child,
                     needs_shim)

FrozenMapping = forkshim.FrozenMapping
METHODS = ("fork", "forkserver", "spawn")
WAIT = 120
MISSING = "<missing>"


class StrKey(str):
    """A str subclass that compares and hashes like str."""


class OddKey(str):
    def __eq__(self, other):
        return False

    __hash__ = str.__hash__


def mixed():
    """A dict with every kind of key and a few kinds of value."""
    d = {"user:%06d" % i: (i, i * 0.5, "name%d" % i) for i in range(3000)}
    d.update({
        "": "empty str", "user:1": "prefix of user:10...",
        "\u00e9t\u00e9 \U0001f600": "unicode", "\udcff": "lone surrogate",
        b"": "empty bytes", b"\x00\xff": [1, 2], b"ba": 3,
        0: "zero", 1: "one", -1: "minus one", 2 ** 70: "big",
        -(2 ** 64): "big negative", 255: 255, 256: 256, -129: -129,
        2.5: "float", float("inf"): "inf", -0.5: "neg float",
        None: None, (): "empty tuple", (1, "a"): {"nested": [1]},
        ((1, 2), (b"x", None), 3.25): "deep", StrKey("sub"): "subclass",
        "big value": b"x" * 300000, "list": list(range(100)),
        "set": frozenset({1, 2}), "nan value": float("nan"),
    })
    return d


def equal(a, b):
    """== that treats NaN as equal to NaN (a fresh copy is not `is`)."""
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return a == b


def absent():
    """Keys the mapping does not hold, near to ones it does."""
    return ["user:", "user:0000000", "user:003000", "user:1 ", "USER:000001",
            b"user:000001", 2, -2, 2 ** 70 + 1, 2.25, ("a", 1), (1,),
            (1, "a", None), "None", b"\x00", "nope" * 1000]


# ------------------------------------------------------------ workers

def look(arg):
    """Looks up keys in the mapping a task received: (values or MISSING,
    where the region is mapped, its sharing figures, pid)."""
    fm, keys = arg
    fm = forkshim.unwrap(fm)
    out = [fm.get(k, MISSING) for k in keys]
    contains = [k in fm for k in keys]
    return (out, contains, len(fm), where(fm), tuple(fm.sharing()),
            os.getpid())


def where(fm):
    return workers.mapping_of(forkshim._address(fm._region))


def iterate(fm):
    fm = forkshim.unwrap(fm)
    return list(fm.items())


def unpickle_and_use(blob):
    """(errno, message) of the HandleError the unpickled mapping raises at
    its first use, or "resolved"."""
    fm = pickle.loads(blob)
    try:
        len(fm)
        return "resolved", None
    except forkshim.HandleError as e:
        return e.errno, str(e)


_HOLD = []
_INHERITED = None  # the control's fork-inherited dict


def hold_init(started, release):
    _HOLD[:] = [started, release]


def look_and_hold(arg):
    """Looks up every key (None: in the fork-inherited dict), tells the
    parent where the region is mapped here, waits until the parent has
    read every process's figures; returns (hits, KiB of private dirty
    memory grown during the lookups)."""
    fm, keys = arg
    fm = _INHERITED if fm is None else forkshim.unwrap(fm)
    before = private_dirty_kib()
    n = 0
    for k in keys:
        if fm[k] is not None:
            n += 1
    grown = private_dirty_kib() - before
    addr = None
    if isinstance(fm, FrozenMapping):
        addr = forkshim._address(fm._region)
    started, release = _HOLD
    started.put((os.getpid(), addr))
    release.wait(WAIT)
    return n, grown


def private_dirty_kib():
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


def region_smaps(addr, nbytes, pid="self"):
    """Rss, Pss, Shared_*, Private_*, Anonymous (KiB) of the mappings
    holding [addr, addr + nbytes) in process pid."""
    end = addr + nbytes
    out = collections.Counter()
    inside = False
    with open("/proc/%s/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < end and hi > addr
            elif inside and line.split()[-1] == "kB":
                out[head[:-1]] += int(line.split()[1])
    return dict(out)


# -------------------------------------------------------------- tests

class Lookups(unittest.TestCase):
    """In one process: the Mapping interface, answered as the dict does."""

    @classmethod
    def setUpClass(cls):
        cls.d = mixed()
        cls.fm = FrozenMapping(cls.d)

    def test_every_key_and_value(self):
        fm, d = self.fm, self.d
        self.assertIsInstance(fm, collections.abc.Mapping)
        self.assertEqual(len(fm), len(d))
        for k, v in d.items():
            self.assertTrue(equal(fm[k], v), k)
            self.assertTrue(equal(fm.get(k), v), k)
            self.assertIn(k, fm)

    def test_missing_keys(self):
        for k in absent():
            self.assertNotIn(k, self.d)
            self.assertNotIn(k, self.fm)
            self.assertIsNone(self.fm.get(k))
            self.assertEqual(self.fm.get(k, 7), 7)
            with self.assertRaises(KeyError) as cm:
                self.fm[k]
            self.assertEqual(cm.exception.args, (k,))

    def test_keys_equal_across_types_as_in_a_dict(self):
        fm = FrozenMapping({1: "one", 2.0: "two", 3: "three"})
        for k in (1, 1.0, True, 2, 2.0, 3, 3.0):
            self.assertIn(k, fm)
        self.assertEqual(fm[True], "one")
        self.assertEqual(fm[2], "two")
        self.assertEqual(self.fm[StrKey("user:000005")], self.d["user:000005"])
        self.assertEqual(self.fm["sub"], "subclass")
        self.assertEqual(self.fm[((1.0, 2), (b"x", None), 3.25)], "deep")

    def test_iteration_order_and_views(self):
        fm, d = self.fm, self.d
        self.assertEqual(list(fm), list(d))
        self.assertEqual(list(fm.keys()), list(d.keys()))
        self.assertEqual(list(reversed(fm)), list(reversed(d)))
        for (k1, v1), (k2, v2) in zip(fm.items(), d.items()):
            self.assertEqual(k1, k2)
            self.assertIs(type(k1), type(k2))
            self.assertTrue(equal(v1, v2), k1)
        self.assertEqual(len(list(fm.values())), len(d))
        self.assertEqual(fm.keys() & {"", 0, "absent"}, {"", 0})
        self.assertIn(("user:000007", d["user:000007"]), fm.items())
        self.assertIn(d["user:000007"], fm.values())

    def test_original_key_types_come_back(self):
        src = {True: 1, 2.0: 2, -0.0: 3, StrKey("s"): 4, (1.0, False): 5}
        got = list(FrozenMapping(src))
        self.assertEqual(got, list(src))
        self.assertEqual([type(k) for k in got], [type(k) for k in src])
        self.assertEqual(str(got[2]), "-0.0")

    def test_equality(self):
        d = {k: v for k, v in self.d.items() if k != "nan value"}
        fm = FrozenMapping(d)
        self.assertEqual(fm, d)
        self.assertEqual(d, fm)
        self.assertEqual(fm, FrozenMapping(d))
        self.assertEqual(fm, fm)
        changed = dict(d)
        changed["user:000001"] = "other"
        self.assertNotEqual(fm, changed)
        self.assertNotEqual(fm, dict(list(d.items())[:-1]))
        self.assertNotEqual(fm, [1, 2])
        with self.assertRaises(TypeError):
            hash(fm)

    def test_sources_and_empty(self):
        pairs = [("a", 1), ("b", 2), ("a", 3)]
        self.assertEqual(dict(FrozenMapping(pairs)), dict(pairs))
        no_nan = FrozenMapping({"a": (1, 2.5), 3: None})
        self.assertEqual(FrozenMapping(no_nan), no_nan)
        self.assertEqual(len(FrozenMapping(self.fm)), len(self.fm))
        empty = FrozenMapping({})
        self.assertEqual(len(empty), 0)
        self.assertEqual(list(empty), [])
        self.assertNotIn("x", empty)
        self.assertEqual(empty, {})

    def test_a_value_is_a_copy(self):
        fm = FrozenMapping({"k": [1, 2]})
        fm["k"].append(3)
        self.assertEqual(fm["k"], [1, 2])

    def test_pickles_small_with_the_shim_else_by_value(self):
        with Recorder() as rec:
            blob = pickle.dumps(self.fm)
        back = pickle.loads(blob)
        self.assertEqual(list(back), list(self.fm))
        self.assertEqual(back["user:000042"], self.d["user:000042"])
        if SHIM:
            self.assertLess(len(blob), 200)
            self.assertIs(back, self.fm)  # the same token, this process
            self.assertEqual(rec.fallbacks, [])
            self.assertTrue(where(self.fm).startswith("/memfd:"))
        else:
            self.assertGreater(len(blob), self.fm.nbytes)
            self.assertEqual(len(rec.fallbacks), 1)
            self.assertIn("not loaded", str(rec.fallbacks[0].message))

    def test_the_region_is_read_only(self):
        with self.assertRaises(TypeError):
            self.fm._region[0] = 1
        if SHIM:
            h = forkshim._api.find(forkshim._address(self.fm._region), 1)
            self.assertTrue(forkshim.info(h).flags & forkshim._FORKSHIM_SHARED)


class Errors(unittest.TestCase):
    def test_unhashable_key(self):
        for key in ([1], {}, {1}, (1, [2])):
            with self.assertRaises(TypeError) as cm:
                FrozenMapping([(key, 1)])
            self.assertIn("unhashable", str(cm.exception))
        fm = FrozenMapping({"a": 1})
        with self.assertRaisesRegex(TypeError, "unhashable"):
            fm[[1]]
        with self.assertRaisesRegex(TypeError, "unhashable"):
            [1] in fm

    def test_unsupported_key_types(self):
        for key in (frozenset({1}), object(), 1j, OddKey("x"),
                    (1, frozenset())):
            with self.assertRaises(TypeError) as cm:
                FrozenMapping({key: 1})
            self.assertIn("str, bytes, int, float", str(cm.exception))
        with self.assertRaisesRegex(TypeError, "NaN"):
            FrozenMapping({float("nan"): 1})
        with self.assertRaisesRegex(TypeError, "str, bytes"):
            FrozenMapping({"a": 1})[object()]

    def test_values_that_cannot_be_pickled(self):
        for value in (lambda: 1, threading.Lock(), [1, (lambda: 2)]):
            with self.assertRaises(TypeError) as cm:
                FrozenMapping({"ok": 1, "bad key": value})
            self.assertIn("'bad key' cannot be pickled", str(cm.exception))

    def test_keys_a_dict_would_take_for_one(self):
        class Pairs(collections.abc.Mapping):
            """A mapping that tells 1 from 1.0 (a dict would not)."""

            def __init__(self, pairs):
                self.pairs = pairs

            def __getitem__(self, key):
                for k, v in self.pairs:
                    if type(k) is type(key) and k == key:
                        return v
                raise KeyError(key)

            def __iter__(self):
                return iter([k for k, _ in self.pairs])

            def __len__(self):
                return len(self.pairs)

        with self.assertRaisesRegex(ValueError, "two keys .* equal"):
            FrozenMapping(Pairs([(1, "a"), ("x", "b"), (1.0, "c")]))

    def test_key_too_long(self):
        with self.assertRaisesRegex(ValueError, "limit is"):
            FrozenMapping({"k" * (1 << 20): 1})

    @needs_shim
    def test_too_big_for_the_memory_allowed(self):
        def build():
            # Shared memory is a file: RLIMIT_FSIZE caps it (EFBIG).
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
            try:
                FrozenMapping({i: b"v" * 100 for i in range(20000)})
            except MemoryError as e:
                return str(e)
            return "built"
        msg = in_child(build)
        self.assertRegex(msg, r"FrozenMapping of 20000 entries needs "
                         r"[0-9.]+ MiB of shared memory: "
                         r"forkshim_alloc\([0-9]+\) failed: E[A-Z]+")

    @needs_shim
    def test_fork_while_another_thread_unpickles(self):
        fm = FrozenMapping({"a": 1})
        blob = pickle.dumps(fm)

        def child():
            signal.alarm(20)  # a deadlock kills the child: a failure
            return pickle.loads(blob)["a"]
        mapping = sys.modules["forkshim.mapping"]
        with mapping._lock:  # as a thread inside a mapping's unpickling
            self.assertEqual(in_child(child), 1)

    def test_use_after_release(self):
        fm = FrozenMapping({"a": 1})
        fm.release()
        for use in (len, list, lambda m: m["a"], lambda m: "a" in m,
                    pickle.dumps):
            with self.assertRaisesRegex(ValueError, "released"):
                use(fm)
        self.assertIn("released", repr(fm))

    @needs_shim
    def test_stale_token(self):
        fm = FrozenMapping({"a": 1})
        blob = pickle.dumps(fm)
        fm.release()
        del fm
        self.assertEqual(unpickle_and_use(blob)[0], errno.ESTALE)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            err, msg = pool.apply(unpickle_and_use, (blob,))
        self.assertEqual(err, errno.ESTALE)
        self.assertIn("ESTALE", msg)
        self.assertIn("FrozenMapping", msg)

    @needs_shim
    def test_forged_token(self):
        fm = FrozenMapping({"a": 1})
        good = pickle.dumps(fm)
        tok = fm._token
        forged = good.replace(tok, bytes(b ^ 0x5A for b in tok))
        self.assertNotEqual(forged, good)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            err, msg = pool.apply(unpickle_and_use, (forged,))
            self.assertEqual(pool.apply(unpickle_and_use, (good,)),
                             ("resolved", None))
        self.assertEqual(err, errno.EBADF, msg)


class Pools(unittest.TestCase):
    """Real pools, made before the mapping, of every start method."""

    @classmethod
    def setUpClass(cls):
        cls.d = mixed()
        del cls.d["nan value"]  # NaN != NaN: compared apart above
        cls.keys = list(cls.d) + absent()

    def check(self, got, fm):
        values, contains, n, mapped, sharing, _ = got
        self.assertEqual(n, len(self.d))
        for k, v, c in zip(self.keys, values, contains):
            self.assertEqual(v, self.d.get(k, MISSING), k)
            self.assertEqual(c, k in self.d, k)
        if SHIM:
            self.assertTrue(mapped.startswith("/memfd:"), mapped)
            self.assertEqual(sharing[3], 0, sharing)  # nothing exclusive

    def check_method(self, method):
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(2) as pool:
            pool.map(workers.pid, range(4))  # started before the mapping
            with Recorder() as rec:
                fm = FrozenMapping(self.d)
                half = len(self.keys) // 2
                got = pool.map(look, [(fm, self.keys[:half]),
                                      (fm, self.keys[half:])] * 2,
                               chunksize=1)
                items = pool.apply(iterate, (fm,))
        merged = (got[0][0] + got[1][0], got[0][1] + got[1][1]) + got[0][2:]
        self.check(merged, fm)
        self.assertEqual(items, list(self.d.items()))
        if SHIM:
            self.assertEqual(rec.fallbacks, [])
        else:  # by value, said once per mapping
            self.assertEqual(len(rec.fallbacks), 1)

    def test_pools_of_every_start_method(self):
        for method in METHODS:
            with self.subTest(method=method):
                self.check_method(method)

    def test_executors(self):
        fm = FrozenMapping(self.d)
        for method in METHODS:
            with self.subTest(method=method):
                with concurrent.futures.ProcessPoolExecutor(
                        2, mp_context=multiprocessing.get_context(
                            method)) as ex:
                    got = ex.submit(look, (fm, self.keys)).result(WAIT)
                self.check(got, fm)

    @needs_shim
    def test_fork_pool_made_after_gets_the_same_object(self):
        fm = FrozenMapping(self.d)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            ids = pool.map(id_of, [fm] * 4)
        self.assertEqual(set(ids), {id(fm)})

    def test_share_of_a_mapping(self):
        fm = FrozenMapping(self.d)
        ref = forkshim.share(fm)
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                with multiprocessing.get_context(method).Pool(1) as pool:
                    got = pool.apply(look, ((ref, self.keys),))
                self.check(got, fm)
        ref.release()


def id_of(fm):
    return id(forkshim.unwrap(fm))


@needs_shim
class PagesStayShared(unittest.TestCase):
    """Workers that read every entry leave the region's pages shared: no
    private page of it in any of them, summed PSS of the region no more
    than its size.  The same lookups on a fork-inherited dict dirty
    megabytes in each worker (the control: the measure can fail)."""

    N = 100000

    @classmethod
    def setUpClass(cls):
        cls.d = {"user:%08d" % i: (i, i * 0.5, "name%d" % i)
                 for i in range(cls.N)}

    def run_workers(self, method, obj, send):
        ctx = multiprocessing.get_context(method)
        started, release = ctx.Queue(), ctx.Event()
        keys = list(self.d)
        with ctx.Pool(2, initializer=hold_init,
                      initargs=(started, release)) as pool:
            res = pool.map_async(look_and_hold,
                                 [(send, keys), (send, keys)], chunksize=1)
            # A worker that died fails the test (queue.Empty), not hangs it.
            there = [started.get(timeout=WAIT), started.get(timeout=WAIT)]
            seen = {}
            if isinstance(obj, FrozenMapping):
                seen["sharing"] = obj.sharing()
                seen[os.getpid()] = region_smaps(
                    forkshim._address(obj._region), obj.nbytes)
                for pid, addr in there:
                    seen[pid] = region_smaps(addr, obj.nbytes, pid)
            release.set()
            out = res.get(WAIT)
        return out, seen

    def test_every_start_method(self):
        fm = FrozenMapping(self.d)
        sum(fm._region[::4096])  # the parent maps every page too
        for method in METHODS:
            with self.subTest(method=method):
                out, seen = self.run_workers(method, fm, fm)
                sharing = seen.pop("sharing")
                for n, grown in out:
                    self.assertEqual(n, self.N)
                    self.assertLess(grown, 4096, "KiB of private dirty "
                                    "memory grown during the lookups")
                for pid, fig in seen.items():
                    self.assertGreater(fig.get("Rss", 0), 0, (pid, fig))
                    for private in ("Private_Dirty", "Private_Clean",
                                    "Anonymous"):
                        self.assertEqual(fig.get(private, 0), 0, (pid, fig))
                rss = seen[os.getpid()]["Rss"]
                self.assertEqual(rss, (fm.nbytes + 4095) // 4096 * 4)
                pss = sum(f["Pss"] for f in seen.values())
                self.assertLessEqual(pss, rss + 8, seen)
                here = seen[os.getpid()]
                self.assertEqual(here["Shared_Clean"] + here["Shared_Dirty"],
                                 rss, here)
                self.assertEqual(sharing.shared, sharing.pages, sharing)
                self.assertEqual(sharing.exclusive, 0, sharing)

    # A control of CPython, not of the shim: under the ASan runtime
    # (tests/sanitize.sh preloads it first) the inherited dict's workers
    # grew 88 KiB of private dirty memory in CI, against 13-19 MiB in the
    # plain run; the cause is not known yet.
    @unittest.skipIf("asan" in os.environ.get("LD_PRELOAD", ""),
                     "a CPython control; under the ASan runtime its "
                     "copies do not show (88 KiB, not 13+ MiB)")
    def test_control_an_inherited_dict_is_copied(self):
        global _INHERITED
        _INHERITED = self.d
        try:
            out, _ = self.run_workers("fork", self.d, None)
        finally:
            _INHERITED = None
        for n, grown in out:
            self.assertEqual(n, self.N)
            self.assertGreater(grown, 4096, "KiB of private dirty memory")


class ReadmeExample(unittest.TestCase):
    """README's FrozenMapping example runs as printed, but for its size."""

    def test_example(self):
        with open(os.path.join(REPO, "README.md")) as f:
            text = f.read()
        start = text.index("### `forkshim.FrozenMapping`")
        code = re.search(r"```py\n(.*?)```", text[start:], re.S).group(1)
        self.assertIn("3_000_000", code)
        code = code.replace("3_000_000", "30_000")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "example.py")
            with open(path, "w") as f:
                f.write(code)
            env = dict(os.environ, PYTHONPATH=os.path.join(
                REPO, "inject", "python"))
            run = subprocess.run([sys.executable, path], env=env,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=WAIT)
        err = run.stderr.decode()
        self.assertEqual(run.returncode, 0, err)
        if SHIM:
            self.assertNotIn("Warning", err)
        sums = eval(run.stdout.decode())
        self.assertEqual(len(sums), 4)
        self.assertEqual(sum(sums), sum(range(0, 30000, 1000)))


if __name__ == "__main__":
    unittest.main()
