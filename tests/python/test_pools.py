"""share() with multiprocessing pools, processes and executors in every
start method: fork-started workers get the object itself, the others its
value; a bad handle raises HandleError in the worker and the worker lives
on; a task whose handle does not resolve fails with HandleError in the
parent, and no pool ever hangs on one."""

import concurrent.futures
import errno
import multiprocessing
import pickle
import unittest

import numpy

import workers
# ModeTest: imported to run here too (checks the shim's presence).
from support import (HANDLE_ERRNOS, SHIM, Forged, ModeTest, Recorder,
                     forkshim, needs_plain, needs_shim)

TASKS = 16


def ctx(method):
    return multiprocessing.get_context(method)


def tasks(ref):
    return [(ref, i) for i in range(TASKS)]


class Model(object):
    pass


class Pools(unittest.TestCase):
    def setUp(self):
        self.a = numpy.arange(1 << 18, dtype=numpy.float64)
        self.addr = self.a.__array_interface__["data"][0]

    def run_pool(self, method, fn, args):
        with ctx(method).Pool(2) as pool:
            return pool.map(fn, args, chunksize=1)

    def assert_values(self, got):
        self.assertEqual([g[4] for g in got], [float(i) for i in range(TASKS)])

    def assert_by_value(self, got, rec, reason):
        self.assert_values(got)
        self.assertTrue(all(g[1] != id(self.a) for g in got))
        self.assertEqual(len(rec.fallbacks), 1, [str(w.message)
                                                 for w in rec.fallbacks])
        self.assertIn(reason, str(rec.fallbacks[0].message))

    # --- fork-started workers: the object itself

    @needs_shim
    def test_fork_pool_tasks_receive_the_shared_array_itself(self):
        ref = forkshim.share(self.a)
        with Recorder() as rec:
            got = self.run_pool("fork", workers.describe, tasks(ref))
        self.assert_values(got)
        self.assertEqual({g[1] for g in got}, {id(self.a)})
        self.assertEqual({g[2] for g in got}, {self.addr})
        self.assertEqual({g[3] for g in got}, {"ndarray"})
        self.assertEqual(rec.fallbacks, [])

    @needs_shim
    def test_fork_pool_reduces_every_sixteenth(self):
        ref = forkshim.share(self.a)
        sums = self.run_pool("fork", workers.sixteenth_sum, tasks(ref))
        self.assertEqual(sum(sums), float(self.a.sum()))

    @needs_shim
    def test_fork_pool_readonly_share_refuses_writes(self):
        ref = forkshim.share(self.a, readonly=True)
        got = self.run_pool("fork", workers.try_write, tasks(ref))
        self.assertEqual(set(got), {"read-only"})
        self.assertEqual(self.a[0], 0.0)

    @needs_shim
    def test_nested_proxies_reach_workers_as_the_objects(self):
        m = [1, 2, 3]
        ra, rm = forkshim.share(self.a), forkshim.share(m)
        arg = {"a": ra, "m": rm, "pair": [ra, rm]}
        got = self.run_pool("fork", workers.nested, [arg] * 4)
        self.assertEqual(set(got), {(id(self.a), id(m), True, True, 3)})

    @needs_shim
    def test_fork_executor_tasks_receive_the_array_itself(self):
        ref = forkshim.share(self.a)
        with concurrent.futures.ProcessPoolExecutor(
                2, mp_context=ctx("fork")) as ex:
            got = list(ex.map(workers.describe, tasks(ref)))
        self.assert_values(got)
        self.assertEqual({g[1] for g in got}, {id(self.a)})
        self.assertEqual({g[2] for g in got}, {self.addr})

    @needs_shim
    def test_fork_process_gets_the_array_itself(self):
        ref = forkshim.share(self.a)
        q = ctx("fork").Queue()
        p = ctx("fork").Process(target=workers.process_main,
                                args=((ref, 5), q))
        p.start()
        got = q.get(timeout=30)
        p.join()
        self.assertEqual(got[1:5], (id(self.a), self.addr, "ndarray", 5.0))

    @needs_shim
    def test_object_shared_after_the_pool_started_goes_by_token(self):
        with ctx("fork").Pool(2) as pool:
            with Recorder() as rec:
                ref = forkshim.share(self.a)
                got = pool.map(workers.describe, tasks(ref), chunksize=1)
        self.assert_by_token(got, rec)
        # A pool started after share() gets it by handle.
        got = self.run_pool("fork", workers.describe, tasks(ref))
        self.assertEqual({g[1] for g in got}, {id(self.a)})

    @needs_shim
    def test_bad_handles_raise_in_the_worker_which_lives_on(self):
        stale = Model()
        ref = forkshim.share(stale)
        i = forkshim.info(ref.handle)
        stale_fields = (ref.handle, "Model", i.addr, i.len, False)
        ref.release()
        with ctx("fork").Pool(1) as pool:
            late = Model()
            h = forkshim.freeze(late)
            j = forkshim.info(h)
            blobs = [
                pickle.dumps(Forged(h, "Model", j.addr, j.len, False)),
                pickle.dumps(Forged(*stale_fields)),
                pickle.dumps(Forged(0x1234567, "Model", j.addr, 32, False)),
            ]
            got = [pool.apply(workers.unpickle, (b,)) for b in blobs]
            forkshim.thaw(h)
        (e1, m1, p1), (e2, m2, p2), (e3, _, p3) = got
        self.assertEqual(e1, 2)  # ENOENT
        self.assertIn("frozen after this process was forked", m1)
        self.assertEqual(e2, 116)  # ESTALE
        self.assertIn("thawed", m2)
        self.assertIn(e3, HANDLE_ERRNOS)
        self.assertEqual(p1, p2)
        self.assertEqual(p2, p3)

    # --- spawn and forkserver workers: by token with the shim (a
    # read-only array over the shared pages), else the value with one
    # warning at share()

    def assert_by_token(self, got, rec):
        self.assert_values(got)
        self.assertTrue(all(g[1] != id(self.a) for g in got))
        self.assertTrue(all(g[2] != self.addr for g in got))
        self.assertEqual({g[3] for g in got}, {"ndarray"})
        self.assertEqual({g[5] for g in got}, {False})  # read-only
        self.assertEqual(rec.fallbacks, [])

    def assert_shared(self, got, rec):
        if forkshim.available():
            self.assert_by_token(got, rec)
        else:
            self.assert_by_value(got, rec, "not loaded")

    def test_spawn_pool_tasks_receive_the_array(self):
        with Recorder() as rec:
            ref = forkshim.share(self.a)
            got = self.run_pool("spawn", workers.describe, tasks(ref))
        self.assert_shared(got, rec)

    def test_forkserver_pool_tasks_receive_the_array(self):
        with Recorder() as rec:
            ref = forkshim.share(self.a)
            got = self.run_pool("forkserver", workers.describe, tasks(ref))
        self.assert_shared(got, rec)

    def test_spawn_process_receives_the_array(self):
        with Recorder() as rec:
            ref = forkshim.share(self.a)
            q = ctx("spawn").Queue()
            p = ctx("spawn").Process(target=workers.process_main,
                                     args=((ref, 7), q))
            p.start()
        got = q.get(timeout=60)
        p.join()
        self.assertEqual(got[3:5], ("ndarray", 7.0))
        if forkshim.available():
            self.assertEqual(rec.fallbacks, [])
            self.assertNotEqual(got[2], self.addr)
        else:
            self.assertEqual(len(rec.fallbacks), 1)
            self.assertIn("not loaded", str(rec.fallbacks[0].message))

    def test_spawn_executor_tasks_receive_the_array(self):
        with Recorder() as rec:
            ref = forkshim.share(self.a)
            with concurrent.futures.ProcessPoolExecutor(
                    2, mp_context=ctx("spawn")) as ex:
                got = list(ex.map(workers.describe, tasks(ref)))
        self.assert_shared(got, rec)

    # --- without the shim, fork pools work by value too

    @needs_plain
    def test_fork_pool_without_the_shim_gets_values_with_one_warning(self):
        with Recorder() as rec:
            ref = forkshim.share(self.a)
            got = self.run_pool("fork", workers.describe, tasks(ref))
        self.assert_by_value(got, rec, "not loaded")
        sums = self.run_pool("fork", workers.sixteenth_sum, tasks(ref))
        self.assertEqual(sum(sums), float(self.a.sum()))

    @needs_plain
    def test_nested_proxies_without_the_shim_arrive_as_values(self):
        m = [1, 2, 3]
        with Recorder() as rec:
            ra, rm = forkshim.share(self.a), forkshim.share(m)
            got = self.run_pool("fork", workers.nested,
                                [{"a": ra, "m": rm, "pair": [ra, rm]}] * 2)
        self.assertEqual(len(rec.fallbacks), 2)  # one per object
        for ida, idm, same_a, same_m, n in got:
            self.assertNotEqual(ida, id(self.a))
            self.assertTrue(same_a and same_m)
            self.assertEqual(n, 3)


class BadHandlesInTasks(unittest.TestCase):
    """Regression: a HandleError (an OSError) raised while a Pool worker
    unpickled its task made the worker exit (pool.worker takes an OSError
    from its queue for a closed pipe), the task was lost and map() waited
    forever; an executor's worker died and the pool broke.  Unpickling now
    gives a forkshim.Unresolved whose first use raises the HandleError
    inside the task, so the parent gets it as the task's exception.
    Without the shim the same stream fails with ENOSYS."""

    WAIT = 60  # seconds: far more than the tasks take; a hang fails here

    def setUp(self):
        self.values = numpy.arange(64, dtype=numpy.float64)

    def forged(self):
        return Forged(0x1234567, "ndarray", self.values.ctypes.data, 96,
                      False)

    def assert_names_the_reason(self, e, errnos=None):
        if errnos is None:
            errnos = HANDLE_ERRNOS if SHIM else {errno.ENOSYS}
        self.assertIsInstance(e, forkshim.HandleError)
        self.assertIn(e.errno, errnos, str(e))
        self.assertIn(errno.errorcode[e.errno], str(e))
        self.assertIn("does not resolve" if SHIM else "not loaded", str(e))

    def good_tasks(self, n):
        return [(self.values, i) for i in range(n)]

    def test_pool_map_raises_the_handle_error_instead_of_hanging(self):
        with ctx("fork").Pool(2) as pool:
            args = self.good_tasks(3) + [(self.forged(), 0)] + \
                self.good_tasks(3)
            job = pool.map_async(workers.sixteenth_sum, args, chunksize=1)
            with self.assertRaises(forkshim.HandleError) as cm:
                job.get(timeout=self.WAIT)
            self.assert_names_the_reason(cm.exception)
            # Both workers still serve tasks.
            got = pool.map_async(workers.sixteenth_sum, self.good_tasks(16),
                                 chunksize=1).get(timeout=self.WAIT)
            self.assertEqual(sum(got), float(self.values.sum()))

    def test_pool_apply_raises_for_every_bad_task(self):
        with ctx("fork").Pool(1) as pool:
            for _ in range(3):  # one worker: it would die at the first
                job = pool.apply_async(workers.sixteenth_sum,
                                       ((self.forged(), 0),))
                with self.assertRaises(forkshim.HandleError) as cm:
                    job.get(timeout=self.WAIT)
                self.assert_names_the_reason(cm.exception)

    @needs_shim
    def test_object_frozen_after_the_pool_started_names_enoent(self):
        # share() sends such an object by value; a stream made anyway (or
        # a worker forked in a race) must fail with ENOENT, not hang.
        with ctx("fork").Pool(2) as pool:
            late = numpy.arange(32, dtype=numpy.float64)
            h = forkshim.freeze(late)
            try:
                i = forkshim.info(h)
                job = pool.map_async(
                    workers.sixteenth_sum,
                    [(Forged(h, "ndarray", i.addr, i.len, False), 0)] * 4,
                    chunksize=1)
                with self.assertRaises(forkshim.HandleError) as cm:
                    job.get(timeout=self.WAIT)
            finally:
                forkshim.thaw(h)
        self.assert_names_the_reason(cm.exception, {errno.ENOENT})
        self.assertIn("frozen after this process was forked",
                      str(cm.exception))

    def test_executor_future_raises_the_handle_error(self):
        with concurrent.futures.ProcessPoolExecutor(
                2, mp_context=ctx("fork")) as ex:
            bad = ex.submit(workers.sixteenth_sum, (self.forged(), 0))
            with self.assertRaises(forkshim.HandleError) as cm:
                bad.result(timeout=self.WAIT)
            self.assert_names_the_reason(cm.exception)
            good = ex.submit(workers.sixteenth_sum, (self.values, 1))
            self.assertEqual(good.result(timeout=self.WAIT),
                             float(self.values[4:8].sum()))

    def test_spawn_process_target_gets_the_handle_error(self):
        # The arguments of a spawn Process are unpickled before its target
        # runs: that must not kill the child.
        q = ctx("spawn").Queue()
        p = ctx("spawn").Process(target=workers.process_sum,
                                 args=((self.forged(), 0), q))
        p.start()
        p.join(self.WAIT)
        if p.exitcode is None:
            p.kill()
            p.join()
            self.fail("the spawn child hung")
        self.assertEqual(p.exitcode, 0, "the spawn child died")
        err, text = q.get(timeout=self.WAIT)
        self.assert_names_the_reason(forkshim.HandleError(err, text))


if __name__ == "__main__":
    unittest.main()
