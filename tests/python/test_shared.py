"""share() by token (shared frozen regions, SHARED.md): real pools of every
start method made before the data, ProcessPoolExecutor, results coming
back from workers, forkshim.empty(), forged and stale tokens, a worker
killed mid-task, and what is left after the program ends or is killed.

"Zero-copy" is checked where the bytes are: the worker's (or parent's)
array must lie in a mapping of a memfd (/proc/self/maps says
"/memfd:..."), not in its private memory."""

import array
import concurrent.futures
import errno
import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
import unittest
import warnings

import numpy

import workers
# ModeTest: imported to run here too (checks the shim's presence).
from support import (HERE, REPO, SHIM, ForgedToken, ModeTest, Recorder,
                     forkshim, needs_plain, needs_shim)

METHODS = ("fork", "forkserver", "spawn")
WAIT = 120


def ctx(method):
    return multiprocessing.get_context(method)


def is_memfd(path):
    return path is not None and path.startswith("/memfd:")


def objects():
    """Every kind of buffer object share() takes, and a dict."""
    a = numpy.arange(1 << 16, dtype=numpy.float64)
    m = numpy.arange(64 * 64, dtype=numpy.int32).reshape(64, 64)
    return {
        "ndarray": a,
        "non-contiguous view": m[::2, ::-3],
        "fortran": numpy.asfortranarray(m),
        "bytes": bytes(range(256)) * 64,
        "bytearray": bytearray(range(256)) * 64,
        "memoryview": memoryview(bytearray(b"xyz" * 5000)),
        "array.array": array.array("d", range(5000)),
        "dict": {"k": [1, 2, 3], "a": numpy.ones(50000)},
    }


def run_program(source):
    """Runs source %% {"here": HERE} with python3 -c, this tree's module on
    its path: (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "inject", "python"))
    p = subprocess.run([sys.executable, "-c", source % {"here": HERE}],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=WAIT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def checksum(obj):
    if isinstance(obj, dict):
        return float(obj["a"].sum())
    if isinstance(obj, numpy.ndarray):
        return float(obj.sum())
    return float(sum(memoryview(obj).cast("B")))


@needs_shim
class PoolMadeBeforeTheData(unittest.TestCase):
    """A pool of each start method exists before the objects are made and
    shared: every task gets them zero-copy, read-only, by token."""

    def check_method(self, method):
        with ctx(method).Pool(2) as pool:
            pool.map(workers.pid, range(2))  # the workers are running
            for name, obj in objects().items():
                with self.subTest(method=method, kind=name):
                    with Recorder() as rec:
                        ref = forkshim.share(obj)
                        got = pool.map(workers.received, [ref] * 4,
                                       chunksize=1)
                    self.assertEqual(rec.fallbacks, [])
                    self.assertLess(len(pickle.dumps(ref)), 1000)
                    for kind, where, writeable, total, extra in got:
                        self.assertTrue(is_memfd(where), (name, where))
                        self.assertFalse(writeable, name)
                        self.assertEqual(total, checksum(obj), name)
                    if name == "non-contiguous view":
                        self.assertEqual(got[0][4], obj.shape)
                    ref.release()

    def test_fork_pool(self):
        self.check_method("fork")

    def test_forkserver_pool(self):
        self.check_method("forkserver")

    def test_spawn_pool(self):
        self.check_method("spawn")

    def test_forkserver_executor(self):
        a = numpy.arange(1 << 18, dtype=numpy.float64)
        with concurrent.futures.ProcessPoolExecutor(
                2, mp_context=ctx("forkserver")) as ex:
            ex.submit(workers.pid, 0).result(WAIT)
            ref = forkshim.share(a)
            got = list(ex.map(workers.received, [ref] * 8))
            one = ex.submit(workers.received, ref).result(WAIT)
        for kind, where, writeable, total, _ in got + [one]:
            self.assertTrue(is_memfd(where), where)
            self.assertFalse(writeable)
            self.assertEqual(total, float(a.sum()))

    def test_an_object_is_pickled_once_and_tasks_carry_tokens(self):
        # Not a buffer: pickled once in the parent into shared memory, then
        # every task's pickle is the token alone, whatever the task count.
        for method in METHODS:
            with self.subTest(method=method):
                with ctx(method).Pool(2) as pool:
                    pool.map(workers.pid, range(2))
                    d = {"c": workers.Counted(5), "big": list(range(1 << 17))}
                    workers.Counted.pickled = 0
                    ref = forkshim.share(d)
                    got = pool.map(workers.counted, [ref] * 16, chunksize=1)
                    self.assertEqual(workers.Counted.pickled, 1)
                    self.assertLess(len(pickle.dumps(ref)), 1000)
                    self.assertEqual(workers.Counted.pickled, 1)
                self.assertEqual({g[1:] for g in got}, {(5, 1 << 17)})

    def test_fork_pool_made_after_share_gets_the_object_itself(self):
        a = numpy.arange(1 << 16, dtype=numpy.float64)
        ref = forkshim.share(a)
        with ctx("fork").Pool(2) as pool:
            got = pool.map(workers.describe, [(ref, i) for i in range(4)])
        self.assertEqual({g[1] for g in got}, {id(a)})
        self.assertEqual({g[2] for g in got}, {a.ctypes.data})


try:
    import pandas
except ImportError:  # scripts/setup installs python3-pandas
    pandas = None


@needs_shim
@unittest.skipIf(pandas is None, "no pandas (Debian: python3-pandas)")
class DataFrames(unittest.TestCase):
    """share(df, readonly=True) used to fail ("memoryview: a bytes-like
    object is required"); now the frame is pickled once into shared memory
    and its numpy columns arrive as read-only views of the shared pages."""

    def frame(self):
        n = 1 << 16
        return pandas.DataFrame({"x": numpy.arange(n, dtype=numpy.float64),
                                 "y": numpy.ones(n, dtype=numpy.int64)})

    def test_readonly_frame_reaches_every_start_method(self):
        df = self.frame()
        for method in METHODS:
            with self.subTest(method=method):
                with ctx(method).Pool(2) as pool:
                    ref = forkshim.share(df, readonly=True)
                    got = pool.map(workers.frame_info, [ref] * 4)
                for kind, cols in got:
                    self.assertEqual(kind, "DataFrame")
                    for name, total, writeable, where in cols:
                        self.assertEqual(total, float(df[name].sum()))
                        self.assertFalse(writeable)
                        self.assertTrue(is_memfd(where), where)

    def test_frame_shared_after_a_fork_pool_is_itself(self):
        df = self.frame()
        ref = forkshim.share(df)
        with ctx("fork").Pool(1) as pool:
            got = pool.apply(workers.frame_info, (ref,))
        self.assertEqual([c[1] for c in got[1]],
                         [float(df[c].sum()) for c in df.columns])


@needs_shim
class ParentArray(unittest.TestCase):
    def test_parent_write_raises_while_shared_and_works_after(self):
        a = numpy.zeros(100)
        ref = forkshim.share(a)
        with self.assertRaises(ValueError):
            a[0] = 1
        ref2 = forkshim.share(a)
        ref.release()
        with self.assertRaises(ValueError):  # ref2 still shares it
            a[0] = 1
        ref2.release()
        a[0] = 1
        self.assertEqual(a[0], 1)

    def test_workers_never_see_a_stale_copy(self):
        # The parent cannot change the bytes after share(): what a worker
        # of any start method reads is what was shared.
        a = numpy.zeros(1 << 16)
        ref = forkshim.share(a)
        with ctx("forkserver").Pool(1) as pool:
            with self.assertRaises(ValueError):
                a[:] = 5
            got = pool.apply(workers.received, (ref,))
        self.assertEqual(got[3], 0.0)


@needs_shim
class Empty(unittest.TestCase):
    def test_empty_is_writable_shared_memory_sealed_by_share(self):
        a = forkshim.empty((256, 1024), dtype=numpy.float32)
        self.assertTrue(a.flags.writeable)
        self.assertTrue(is_memfd(workers.mapping_of(a.ctypes.data)))
        a[:] = 3
        addr = a.ctypes.data
        ref = forkshim.share(a)
        self.assertFalse(a.flags.writeable)
        self.assertEqual(a.ctypes.data, addr)  # sealed in place, no copy
        with ctx("spawn").Pool(1) as pool:
            kind, where, writeable, total, shape = pool.apply(
                workers.received, (ref,))
        self.assertTrue(is_memfd(where))
        self.assertEqual((total, shape), (3.0 * a.size, (256, 1024)))
        ref.release()
        with self.assertRaises(ValueError):  # sealed for good
            a[0, 0] = 1
        self.assertEqual(float(a[0, 0]), 3.0)

    def test_zeros_are_zero(self):
        z = forkshim.zeros(1000, dtype=numpy.int64)
        self.assertEqual(int(z.sum()), 0)
        self.assertEqual(z.dtype, numpy.int64)


@needs_shim
class ResultsBack(unittest.TestCase):
    """A worker returns share(result): the parent gets a read-only array
    over the worker's shared memory, also after the worker exited."""

    def check(self, results, n=8, values=None):
        values = list(range(n)) if values is None else values
        self.assertEqual(sorted(float(r[0]) for r in results),
                         [float(v) for v in values])
        for r in results:
            self.assertIsInstance(r, numpy.ndarray)
            self.assertFalse(r.flags.writeable)
            self.assertTrue(is_memfd(workers.mapping_of(r.ctypes.data)))
            self.assertEqual(float(r[-1]), float(r[0]))

    def test_pool_map_imap_unordered_apply_async_every_method(self):
        for method in METHODS:
            with self.subTest(method=method):
                with ctx(method).Pool(2) as pool:
                    self.check(pool.map(workers.make_result, range(8)))
                    self.check(list(pool.imap_unordered(
                        workers.make_result, range(8))))
                    jobs = [pool.apply_async(workers.make_plain_result, (i,))
                            for i in range(4)]
                    self.check([j.get(WAIT) for j in jobs], 4)
                    self.check(pool.map(workers.decorated_result, range(3)),
                               3)

    def test_executor_submit_and_map(self):
        with concurrent.futures.ProcessPoolExecutor(
                2, mp_context=ctx("forkserver")) as ex:
            futs = [ex.submit(workers.make_result, i) for i in range(4)]
            self.check([f.result(WAIT) for f in futs], 4)
            self.check(list(ex.map(workers.make_plain_result, range(4))), 4)

    def test_worker_that_exits_right_after_its_result(self):
        # maxtasksperchild=1: each worker exits as soon as its result is
        # sent; the parent maps it afterwards.
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                with ctx(method).Pool(2, maxtasksperchild=1) as pool:
                    results = pool.map(workers.make_result, range(6),
                                       chunksize=1)
                    time.sleep(0.5)  # the workers are gone
                    self.check(results, 6)

    def test_worker_exits_once_its_result_is_mapped_and_dropped(self):
        # The parent maps the result, drops it, and only then lets the
        # worker exit: the worker must learn that the result was mapped
        # (an ack), not look for the mapping, gone by then, until its wait
        # ends (an hour here).  Before the ack it waited out the hour.
        c = ctx("spawn")
        queue, done = c.Queue(), c.Event()
        p = c.Process(target=workers.result_then_exit,
                      args=(queue, done, 1 << 16))
        p.start()
        got = queue.get(timeout=WAIT)
        self.assertTrue(is_memfd(workers.mapping_of(got.ctypes.data)))
        self.assertEqual(float(got.sum()), 3.0 * (1 << 16))
        del got
        done.set()
        p.join(WAIT)
        stuck = p.exitcode is None
        if stuck:
            p.kill()
        self.assertFalse(stuck, "the worker is still waiting")
        self.assertEqual(p.exitcode, 0)

    def test_process_that_returns_right_after_putting_its_result(self):
        # Queue.put pickles in a feeder thread, during the process's exit:
        # the result must still be kept until the parent maps it.
        c = ctx("spawn")
        queue = c.Queue()
        p = c.Process(target=workers.result_and_return,
                      args=(queue, 1 << 16))
        p.start()
        got = queue.get(timeout=WAIT)
        p.join(WAIT)
        self.assertEqual(p.exitcode, 0)
        self.assertTrue(is_memfd(workers.mapping_of(got.ctypes.data)))
        self.assertEqual(float(got.sum()), 5.0 * (1 << 16))

    def test_result_pickled_now_and_loaded_after_the_worker_exited(self):
        with ctx("forkserver").Pool(1, maxtasksperchild=1) as pool:
            blob = pool.apply(workers.token_of, (0,))
            time.sleep(0.5)
            got = pickle.loads(blob)
        self.assertIsInstance(got, numpy.ndarray)
        self.assertEqual(float(got.sum()), 7.0 * 4096)


RESULT_WARNING = textwrap.dedent("""
    import multiprocessing, sys
    sys.path.insert(0, %(here)r)
    import workers
    if __name__ == "__main__":
        for method in ("fork", "spawn"):
            with multiprocessing.get_context(method).Pool(1) as pool:
                got = pool.map(workers.decorated_sparse_result, [2])
            print(method, got[0].shape, float(got[0].sum()))
""")


@needs_shim
class ResultWarnings(unittest.TestCase):
    def test_a_decorated_functions_warning_points_at_it(self):
        # A worker shares the result after the user's function returned:
        # nothing of the user's is on the stack.  The warning used to name
        # the line that made the pool (fork) or "<string>:1" (spawn).
        code = workers.decorated_sparse_result.__wrapped__.__code__
        site = "%s:%d: SharedWarning: forkshim: share() of ndarray" % (
            os.path.basename(code.co_filename), code.co_firstlineno)
        rc, out, err = run_program(RESULT_WARNING)
        self.assertEqual((rc, out), (
            0, "fork (20, 20) 800.0\nspawn (20, 20) 800.0\n"), err)
        said = [line for line in err.splitlines()
                if "SharedWarning" in line]
        self.assertEqual(len(said), 2, err)
        for line in said:
            self.assertIn(site, line)


@needs_shim
class Tokens(unittest.TestCase):
    """Forged and stale tokens: an Unresolved whose first use raises a
    HandleError naming the errno; the advice fits the direction."""

    def fields(self, ref):
        fn, args = ref.__reduce__()
        self.assertIs(fn, forkshim._load_shared)
        return list(args)

    def loads_error(self, args):
        got = forkshim._load_shared(*args)
        self.assertIs(type(got), forkshim.Unresolved)
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.unwrap(got)
        return cm.exception

    def shared_for_spawn(self, obj):
        # A token is what a pool forked before share() receives.
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        self.addCleanup(lambda: (os.close(w), os.close(r),
                                 os.waitpid(pid, 0)))
        return forkshim.share(obj)

    def test_random_and_corrupted_tokens_fail_with_ebadf(self):
        ref = self.shared_for_spawn(numpy.arange(1000.0))
        args = self.fields(ref)
        rng = random.Random(16)
        for _ in range(300):
            forged = list(args)
            forged[1] = (bytes(rng.getrandbits(8) for _ in range(64)),)
            e = self.loads_error(forged)
            self.assertEqual(e.errno, errno.EBADF, str(e))
            self.assertIn("not of this process family", str(e))
        tok = args[1][0]
        for i in range(64):
            bad = bytearray(tok)
            bad[i] ^= 0x5A
            forged = list(args)
            forged[1] = (bytes(bad),)
            e = self.loads_error(forged)
            self.assertIn(e.errno, (errno.EBADF, errno.ENOENT, errno.ESTALE,
                                    errno.EACCES), (i, str(e)))
        for malformed in (b"short", "x" * 64, None, 64):
            forged = list(args)
            forged[1] = (malformed,)
            self.assertEqual(self.loads_error(forged).errno, errno.EBADF)
        # The true token still works.
        got = forkshim._load_shared(*args)
        self.assertEqual(float(got.sum()), float(numpy.arange(1000.0).sum()))

    def test_released_share_gives_estale_and_says_keep_a_reference(self):
        ref = self.shared_for_spawn(numpy.arange(1000.0))
        args = self.fields(ref)
        ref.release()
        e = self.loads_error(args)
        self.assertEqual(e.errno, errno.ESTALE)
        self.assertIn("ESTALE", str(e))
        self.assertIn("keep a reference", str(e))
        self.assertNotIn("before starting the pool", str(e))

    def test_handle_from_a_worker_gives_advice_for_results(self):
        with ctx("fork").Pool(1) as pool:
            fields = pool.apply(workers.raw_handle, (0,))
        got = forkshim._restore(*fields)
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.unwrap(got)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertIn("return forkshim.share(result)", str(cm.exception))

    def test_token_of_an_exited_worker_says_enoent_and_why(self):
        # The worker's wait for an ack ended: its family's regions are gone.
        c = ctx("spawn")
        queue = c.Queue()
        p = c.Process(target=workers.token_then_exit, args=(queue,))
        p.start()
        blob = queue.get(timeout=WAIT)
        p.join(WAIT)
        self.assertEqual(p.exitcode, 0)
        got = pickle.loads(blob)
        self.assertIs(type(got), forkshim.Unresolved)
        with self.assertRaises(forkshim.HandleError) as cm:
            forkshim.unwrap(got)
        e = cm.exception
        self.assertEqual(e.errno, errno.ENOENT, str(e))
        self.assertIn("the process that shared it and the family's root "
                      "process have both exited", str(e))
        self.assertNotIn("before starting the pool", str(e))

    def test_stale_and_forged_tokens_in_a_worker_fail_the_task_only(self):
        with ctx("spawn").Pool(1) as pool:
            ref = forkshim.share(numpy.arange(1000.0))
            args = self.fields(ref)
            forged = list(args)
            forged[1] = (bytes(range(64)),)
            ref.release()
            for fields, err in ((args, errno.ESTALE), (forged, errno.EBADF)):
                # The token itself goes to the worker (an Unresolved made
                # here would refuse to be pickled: the task would fail in
                # this process, and no worker would see the token).
                job = pool.apply_async(workers.received,
                                       (ForgedToken(*fields),))
                with self.assertRaises(forkshim.HandleError) as cm:
                    job.get(WAIT)
                self.assertEqual(cm.exception.errno, err)
                # Raised in the worker (its pid is named), which lives on.
                worker = pool.apply(workers.pid, (0,))
                self.assertIn("does not resolve in process %d:" % worker,
                              str(cm.exception))


HUGE_PAGES = textwrap.dedent("""
    import multiprocessing, sys
    sys.path.insert(0, %(here)r)
    import numpy, forkshim, workers
    if __name__ == "__main__":
        with multiprocessing.get_context("forkserver").Pool(2) as pool:
            pool.map(workers.pid, range(2))
            small = forkshim.share(numpy.ones(1 << 18))
            pool.map(workers.received, [small] * 2)
            big = forkshim.share(numpy.ones(1 << 20))
            pool.map(workers.received, [big] * 2)
            again = forkshim.share(numpy.ones(1 << 21))
            pool.map(workers.received, [again] * 2)
            print("done")
""")


@needs_shim
class HugePages(unittest.TestCase):
    """Where the kernel gives shared memory no huge pages (shmem_enabled
    never or deny), the first share() of 4 MiB or more sent to a pool
    by token says so once, at the user's line, with the command that
    allows them; not for a small object, not again, and not where huge
    pages are allowed."""

    def test_said_once_at_the_first_big_share(self):
        setting = forkshim._shmem_huge_setting()
        rc, out, err = run_program(HUGE_PAGES)
        self.assertEqual((rc, out), (0, "done\n"), err)
        said = [line for line in err.splitlines()
                if "HugePagesWarning" in line]
        if setting in ("never", "deny"):
            self.assertEqual(len(said), 1, err)
            self.assertIn("<string>:10: HugePagesWarning: forkshim: share() "
                          "of ndarray of 8.0 MiB: ", said[0])
            self.assertIn("(shmem_enabled is %s)" % setting, said[0])
            self.assertTrue(said[0].endswith(
                "as root: echo advise > /sys/kernel/mm/"
                "transparent_hugepage/shmem_enabled"), said[0])
        else:
            self.assertEqual(said, [], err)


@needs_shim
class KilledWorker(unittest.TestCase):
    def test_worker_killed_mid_task_breaks_only_that_executor(self):
        a = numpy.arange(1 << 16, dtype=numpy.float64)
        with concurrent.futures.ProcessPoolExecutor(
                2, mp_context=ctx("forkserver")) as ex:
            ref = forkshim.share(a)
            ok = ex.submit(workers.received, ref).result(WAIT)
            bad = ex.submit(workers.die, 0)
            with self.assertRaises(
                    concurrent.futures.process.BrokenProcessPool):
                bad.result(WAIT)
        self.assertEqual(ok[3], float(a.sum()))
        # The data stays shared: a new pool gets it from the same token.
        with ctx("forkserver").Pool(1) as pool:
            got = pool.apply(workers.received, (ref,))
        self.assertTrue(is_memfd(got[1]))
        self.assertEqual(got[3], float(a.sum()))


LIFETIME = textwrap.dedent("""
    import multiprocessing as mp, numpy as np, os, sys, time
    sys.path.insert(0, %(here)r)
    import forkshim, workers
    mode = sys.argv[1]
    if __name__ == "__main__":
        a = forkshim.empty(%(n)d // 8)
        a[:] = 1.0
        with mp.get_context("forkserver").Pool(2) as pool:
            ref = forkshim.share(a)
            sums = pool.map(workers.received, [ref] * 4)
            results = pool.map(workers.make_result, range(4))
            print("ready", flush=True)  # the test reads Shmem now
            sys.stdin.readline()
            if mode == "raise":
                pool.map(workers.make_result, ["not a number"])
            if mode == "terminate":
                pool.terminate()
            if mode in ("kill", "kill-parent"):
                time.sleep(600)
        print("done", sums[0][3], flush=True)
""")


@needs_shim
class Lifetimes(unittest.TestCase):
    """Nothing left after the program: no resource_tracker warnings, no
    shared memory (Shmem in /proc/meminfo back where it was)."""

    N = 128 << 20

    def shmem(self):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Shmem:"):
                    return int(line.split()[1]) << 10

    @staticmethod
    def kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run_script(self, mode):
        """Runs the program; Shmem must fall by at least half the shared
        data between its peak (everything shared, results back) and the
        end.  Judged by that fall, not against a baseline: the machine's
        other processes (and parallel tests) move Shmem too."""
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "inject",
                                                       "python"))
        p = subprocess.Popen(
            [sys.executable, "-c", LIFETIME % {"here": HERE, "n": self.N},
             mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.addCleanup(self.kill_group, p.pid)  # whatever is left of it
        line = p.stdout.readline()
        self.assertEqual(line.strip(), b"ready")
        peak = self.shmem()
        if mode == "kill":
            os.killpg(p.pid, signal.SIGKILL)
        elif mode == "kill-parent":
            os.kill(p.pid, signal.SIGKILL)
        else:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        out, err = p.communicate(timeout=WAIT)
        deadline = time.monotonic() + 30
        while peak - self.shmem() < self.N // 2:
            if time.monotonic() > deadline:
                self.fail("Shmem fell by %d MiB after the program, not by "
                          "half its %d MiB" % ((peak - self.shmem()) >> 20,
                                               self.N >> 20))
            time.sleep(0.2)
        return p.returncode, line.decode() + out.decode(), err.decode()

    def test_normal_exit(self):
        rc, out, err = self.run_script("normal")
        self.assertEqual(rc, 0, err)
        self.assertIn("done %s" % float(self.N // 8), out)
        self.assertNotIn("resource_tracker", err)
        self.assertNotIn("leaked", err)

    def test_exception_in_a_task(self):
        rc, out, err = self.run_script("raise")
        self.assertEqual(rc, 1)
        self.assertIn("ValueError", err)
        self.assertNotIn("resource_tracker", err)

    def test_terminate(self):
        rc, out, err = self.run_script("terminate")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("resource_tracker", err)

    def test_kill_9_of_the_whole_family(self):
        rc, out, err = self.run_script("kill")
        self.assertEqual(rc, -signal.SIGKILL)

    def test_kill_9_of_the_parent_alone(self):
        # The forkserver, the workers and the resource tracker live on
        # after the parent and go as they find it gone.  The tracker then
        # warns of the pool's own semaphores (Python does that for any
        # pool whose parent was killed, forkshim or not), of nothing else.
        rc, out, err = self.run_script("kill-parent")
        self.assertEqual(rc, -signal.SIGKILL)
        for line in err.splitlines():
            if "resource_tracker" in line and "leaked" in line:
                self.assertIn("leaked semaphore objects", line)


@needs_plain
class WithoutTheShim(unittest.TestCase):
    def test_share_warns_once_at_the_call_and_sends_values(self):
        a = numpy.arange(1000.0)
        with Recorder() as rec:
            ref = forkshim.share(a)  # the warning points here
            line = sys._getframe().f_lineno - 1
            with ctx("forkserver").Pool(2) as pool:
                got = pool.map(workers.received, [ref] * 4)
        self.assertEqual(len(rec.fallbacks), 1)
        w = rec.fallbacks[0]
        self.assertEqual((w.filename, w.lineno), (__file__, line))
        self.assertIn("python3 -m forkshim", str(w.message))
        self.assertEqual({g[3] for g in got}, {float(a.sum())})

    def test_empty_is_numpy_empty(self):
        a = forkshim.empty((3, 4), dtype=numpy.int8)
        self.assertEqual(a.shape, (3, 4))
        self.assertTrue(a.flags.writeable)

    def test_results_come_back_by_value(self):
        with ctx("forkserver").Pool(1) as pool:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = pool.map(workers.make_plain_result, range(3))
        self.assertEqual([float(r[0]) for r in got], [0.0, 1.0, 2.0])


if __name__ == "__main__":
    unittest.main()
