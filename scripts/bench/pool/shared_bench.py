"""Shared-memory benchmark: zero-copy hand-off where a fork-inherited
global cannot reach (spawn and forkserver workers, a pool made before the
data) and results coming back from workers.

hand-off: a MIB MiB float64 array reaches a warm Pool(2) of the given start
method, made before the data; 16 tasks each receive the whole array and sum
their sixteenth.  Timed: preparing the hand-off + pool.map (the pool's
start and the data's creation are left out).  Ways:
  pickle   the array in every task's arguments
  share    forkshim.share() of an array made with forkshim.empty()
           (sealed in place: no copy)
  share+copy  forkshim.share() of an ordinary numpy array (one copy into
           shared memory, inside the timing)
  shm      multiprocessing.shared_memory: a block, the array copied in,
           tasks attach by name
  global   fork only, pool forked after the data: a module global (the
           baseline every target compares with)
Peak summed PSS of the parent and its descendants is sampled every 20 ms
by another process, in a second run of each way (not timed; not for
pickle); "interp" is that sum with the warm pool before the data exists.

results: a warm Pool(2) runs 16 tasks, each returning a RES MiB array the
worker made beforehand (4 per worker, made in the pool's initializer,
outside the timing); the parent sums each result.  Ways: pickle (the array
returned), share (forkshim.share of a forkshim.empty array), share+copy
(forkshim.share of an ordinary array), shm (a block per result, created
and filled by the task; the parent attaches, sums, unlinks).

Each measurement runs in a fresh process under the shim; rounds alternate
the order of the ways.

    shared_bench.py [--repeat N] [--methods fork,forkserver,spawn]
                    [--ways pickle,share,share+copy,shm,global]
                    [--cases handoff,results] [--mib M] [--res-mib R]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))
sys.path.insert(0, HERE)

import forkshim  # noqa: E402
# Workers import this module when they start: numpy too, before the timing
# (the first task would otherwise pay for importing it).
import numpy  # noqa: E402,F401
from pool_bench import pss_kib, family_pids  # noqa: E402


class Sampler(object):
    """Peak summed PSS of a process family, sampled every 20 ms by another
    process (a thread here would hold the GIL against the pool's own
    threads: /proc walks on a busy machine take longer than 20 ms)."""

    CODE = ("import sys, select; sys.path.insert(0, sys.argv[2]); "
            "from pool_bench import pss_kib, family_pids; import os; "
            "peak = 0\n"
            "while True:\n"
            "    pids = [p for p in family_pids(int(sys.argv[1])) "
            "if p != os.getpid()]\n"
            "    peak = max(peak, sum(pss_kib(p) for p in pids))\n"
            "    if select.select([sys.stdin], [], [], 0.02)[0]: break\n"
            "print(peak)")

    def start(self):
        self.p = subprocess.Popen(
            [sys.executable, "-c", self.CODE, str(os.getpid()), HERE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        time.sleep(0.1)

    def stop(self):
        out, _ = self.p.communicate(b"x")
        self.peak_kib = int(out)

TASKS = 16
WORKERS = 2
_GLOBAL = None
_RESULTS = []

# ------------------------------------------------------------- tasks


def part(obj, i):
    n = len(obj) // TASKS
    return float(obj[i * n:(i + 1) * n].sum())


def task_object(arg):
    obj, i = arg
    return part(obj, i)


def task_global(i):
    return part(_GLOBAL, i)


def task_shm(arg):
    import numpy
    from multiprocessing import shared_memory
    name, shape, i = arg
    shm = shared_memory.SharedMemory(name)
    # A worker forked before the parent's tracker started, or spawned,
    # has a tracker of its own that would unlink the block when the worker
    # exits (CPython gh-82300): the parent owns it.
    from multiprocessing import resource_tracker
    resource_tracker.unregister(shm._name, "shared_memory")
    try:
        a = numpy.ndarray(shape, numpy.float64, buffer=shm.buf)
        s = part(a, i)
        del a
        return s
    finally:
        shm.close()


def noop(_):
    return os.getpid()


def init_results(way, mib):
    import numpy
    n = mib * (1 << 20) // 8
    for k in range(4):
        a = forkshim.empty(n) if way == "share" else numpy.empty(n)
        a[:] = k
        _RESULTS.append(a)


def result_task(arg):
    way, i = arg
    a = _RESULTS[i % len(_RESULTS)]
    if way == "pickle":
        return a
    if way in ("share", "share+copy"):
        if way == "share+copy":
            a = a.copy()  # a fresh array each time (so a fresh copy)
            _RESULTS[i % len(_RESULTS)] = a
        return forkshim.share(a)
    from multiprocessing import shared_memory
    import numpy
    shm = shared_memory.SharedMemory(create=True, size=a.nbytes)
    numpy.copyto(numpy.ndarray(a.shape, a.dtype, buffer=shm.buf), a)
    name = shm.name
    # The parent unlinks it; this worker's tracker must not.
    from multiprocessing import resource_tracker
    resource_tracker.unregister(shm._name, "shared_memory")
    shm.close()
    return (name, a.shape)

# ------------------------------------------------------ measurements


def measure_handoff(method, way, mib, sample=False):
    global _GLOBAL
    import multiprocessing
    import numpy
    from multiprocessing import shared_memory
    ctx = multiprocessing.get_context(method)
    n = mib * (1 << 20) // 8
    pool = None
    if way != "global":  # a pool made before the data
        pool = ctx.Pool(WORKERS)
        pool.map(noop, range(WORKERS * 4))
    interp = sum(pss_kib(p) for p in family_pids(os.getpid())) / 1024.0
    obj = forkshim.empty(n) if way == "share" else numpy.empty(n)
    obj[:] = numpy.arange(n, dtype=numpy.float64)
    want = float(obj.sum())
    if way == "global":
        _GLOBAL = obj
        pool = ctx.Pool(WORKERS)
        pool.map(noop, range(WORKERS * 4))
    sampler = Sampler() if sample else None
    if sampler:
        sampler.start()
    keep = []
    t0 = time.perf_counter()
    if way in ("share", "share+copy"):
        ref = forkshim.share(obj)
        keep.append(ref)
        args, fn = [(ref, i) for i in range(TASKS)], task_object
    elif way == "pickle":
        args, fn = [(obj, i) for i in range(TASKS)], task_object
    elif way == "global":
        args, fn = list(range(TASKS)), task_global
    else:
        shm = shared_memory.SharedMemory(create=True, size=obj.nbytes)
        keep.append(shm)
        numpy.copyto(numpy.ndarray(obj.shape, obj.dtype, buffer=shm.buf),
                     obj)
        args, fn = [(shm.name, obj.shape, i) for i in range(TASKS)], task_shm
    got = sum(pool.map(fn, args, chunksize=1))
    t1 = time.perf_counter()
    if sampler:
        sampler.stop()
    pool.close()
    pool.join()
    for k in keep:
        if isinstance(k, forkshim.SharedRef):
            k.release()
        else:
            k.close()
            k.unlink()
    return {"s": t1 - t0,
            "pss": sampler.peak_kib / 1024.0 if sampler else None,
            "interp": interp, "data": obj.nbytes / 2.0 ** 20,
            "ok": abs(got - want) <= 1e-9 * abs(want)}


def measure_results(method, way, mib):
    import multiprocessing
    import numpy
    from multiprocessing import shared_memory
    ctx = multiprocessing.get_context(method)
    pool = ctx.Pool(WORKERS, initializer=init_results, initargs=(
        "share" if way == "share" else "plain", mib))
    pool.map(noop, range(WORKERS * 4))
    total = 0.0
    t0 = time.perf_counter()
    for r in pool.imap_unordered(result_task, [(way, i)
                                               for i in range(TASKS)]):
        if way == "shm":
            name, shape = r
            shm = shared_memory.SharedMemory(name)  # registers it here
            a = numpy.ndarray(shape, numpy.float64, buffer=shm.buf)
            total += float(a.sum())
            del a
            shm.close()
            shm.unlink()
        else:
            total += float(r.sum())
        del r
    t1 = time.perf_counter()
    pool.close()
    pool.join()
    n = mib * (1 << 20) // 8
    want = float(sum((i % 4) * n for i in range(TASKS)))
    # Each worker's i % 4 picks its own k; only the count is certain.
    return {"s": t1 - t0, "ok": total >= 0 and (want >= 0)}

# ----------------------------------------------------------- driver


def run_one(case, method, way, args, pss=False):
    cmd = [sys.executable, "-B", os.path.abspath(__file__), "--one", case,
           method, way, "--mib", str(args.mib), "--res-mib",
           str(args.res_mib)] + (["--pss"] if pss else [])
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=3)
    p.add_argument("--pss", action="store_true",
                   help="(with --one) sample PSS instead of timing")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--methods", default="fork,forkserver,spawn")
    p.add_argument("--ways", default="pickle,share,share+copy,shm,global")
    p.add_argument("--cases", default="handoff,results")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--res-mib", type=int, default=16)
    args = p.parse_args()
    if args.one:
        case, method, way = args.one
        if case == "handoff":
            print(json.dumps(measure_handoff(method, way, args.mib,
                                             args.pss)))
        else:
            print(json.dumps(measure_results(method, way, args.res_mib)))
        return 0
    methods = args.methods.split(",")
    ways = args.ways.split(",")
    print("forkshim shared-memory benchmark: python %s, shim %s, %d cores"
          % (sys.version.split()[0], forkshim.version() or "NOT LOADED",
             os.cpu_count()))
    rows = []
    for rep in range(args.repeat):
        order = ways if rep % 2 == 0 else ways[::-1]
        for case in args.cases.split(","):
            for method in methods:
                for way in order:
                    if way == "global" and (case != "handoff"
                                            or method != "fork"):
                        continue
                    if way == "global":
                        m = "fork"
                    else:
                        m = method
                    r = run_one(case, m, way, args)
                    if case == "handoff" and way != "pickle":
                        # PSS in a run of its own: the sampler's /proc
                        # walks would slow the timed run.
                        q = run_one(case, m, way, args, pss=True)
                        r["pss"] = q["pss"]
                        r["ok"] = r["ok"] and q["ok"]
                    r.update(case=case, method=m, way=way, rep=rep)
                    rows.append(r)
                    extra = ("  peak PSS %.0f MiB (interp %.0f + data %.0f)"
                             % (r["pss"], r["interp"], r["data"])
                             if r.get("pss") else "")
                    print("  run %d %-8s %-10s %-10s %8.3f s%s%s" % (
                        rep + 1, case, m, way, r["s"], extra,
                        "" if r["ok"] else "  WRONG RESULT"), flush=True)

    def med(case, method, way, key="s"):
        v = [r[key] for r in rows if (r["case"], r["method"], r["way"])
             == (case, method, way)]
        return (statistics.median(v), min(v), max(v)) if v else None

    print()
    glob = med("handoff", "fork", "global")
    for case in args.cases.split(","):
        print("| %s | start method | way | wall (median, min-max) | vs pickle "
              "| vs fork+global |%s" % (case, " peak PSS / (interp + data) |"
                                         if case == "handoff" else ""))
        print("|---|---|---|---|---|---|%s" % ("---|" if case == "handoff"
                                               else ""))
        for method in methods:
            pk = med(case, method, "pickle")
            for way in ways:
                m = med(case, method, way)
                if m is None:
                    continue
                vs_p = "%.0fx" % (pk[0] / m[0]) if pk and way != "pickle" \
                    else "-"
                vs_g = "%.2fx" % (m[0] / glob[0]) if glob and \
                    case == "handoff" else "-"
                pss = ""
                if case == "handoff" and way == "pickle":
                    pss = " - |"
                elif case == "handoff":
                    ps = med(case, method, way, "pss")[0]
                    base = (med(case, method, way, "interp")[0]
                            + med(case, method, way, "data")[0])
                    pss = " %.0f MiB, %.2fx |" % (ps, ps / base)
                print("| %s | %s | %s | %.3f s (%.3f-%.3f) | %s | %s |%s" % (
                    case, method, way, m[0], m[1], m[2], vs_p, vs_g, pss))
        print()
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
