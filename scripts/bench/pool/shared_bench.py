"""Shared-memory benchmark: zero-copy hand-off where a fork-inherited
global cannot reach (spawn and forkserver workers, a pool made before the
data) and results coming back from workers.

hand-off: a MIB MiB float64 array reaches a warm Pool(2) of the given start
method, made before the data; 16 tasks each sum their sixteenth of it.
Timed: preparing the hand-off + pool.map (the pool's start and the data's
creation are left out).  Ways:
  pickle   each task's sixteenth (a slice) in its arguments: the array
           goes down the pipes once, as a user would send it
  pickle-whole  the whole array in every task's arguments (16 times the
           bytes: minutes here; not run unless named in --ways)
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
pickle) in the first PSS_ROUNDS rounds (1 by default: memory does not
move with the machine's load as time does); "interp" is that sum with the
warm pool before the data exists.

results: a warm Pool(2) runs 16 tasks, each returning a RES MiB array the
worker made beforehand (one per task in each worker, made in the pool's
initializer, outside the timing); the parent sums each result.  Ways:
pickle (the array returned), share (forkshim.share of a forkshim.empty
array), share+copy (forkshim.share of an ordinary array: one copy into
shared memory in the worker), shm (a block per result, created and filled
by the task; the parent attaches, sums, unlinks).

CPU: the parent's and the workers' CPU seconds over the timed part (each
worker reports its own before and after), steadier than wall time on a
loaded machine.

The header says which transparent huge page settings the figures were
taken under: with shmem_enabled "never" (Debian's default) shared memory
is mapped in 4 KiB pages while numpy's arrays, hence fork + global, get
2 MiB anonymous pages (see first_touch.py and README's "Huge pages").

Each measurement runs in a fresh process under the shim; each round runs
every (start method, way) pair, odd rounds in the reverse order, so that
the ways compared alternate.

    shared_bench.py [--repeat N] [--methods fork,forkserver,spawn]
                    [--ways pickle,share,share+copy,shm,global]
                    [--cases handoff,results] [--mib M] [--res-mib R]
                    [--pss-rounds PSS_ROUNDS]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))
sys.path.insert(0, HERE)

import forkshim  # noqa: E402
# The header states the huge page setting: not again in every run.
warnings.simplefilter("ignore", forkshim.HugePagesWarning)
# Workers import this module when they start: numpy too, before the timing
# (the first task would otherwise pay for importing it).
import numpy  # noqa: E402,F401
from pool_bench import family_pids, pss_kib, release_all  # noqa: E402


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


def cpu_now():
    """(pid, CPU seconds of this process so far, its minor faults)."""
    t = os.times()
    return (os.getpid(), t.user + t.system,
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def part(obj, i):
    n = len(obj) // TASKS
    return float(obj[i * n:(i + 1) * n].sum())


def task_object(arg):
    obj, i = arg
    return part(obj, i)


def task_slice(arg):
    return float(arg.sum())


def task_global(i):
    return part(_GLOBAL, i)


def worker_cost(before, after):
    """Summed CPU seconds and minor faults of the workers between two
    lists of cpu_now() tuples (a worker's last one counts)."""
    first, last = {}, {}
    for pid, cpu, flt in before:
        first[pid] = (cpu, flt)
    for pid, cpu, flt in after:
        if pid not in last or cpu > last[pid][0]:
            last[pid] = (cpu, flt)
    cpu = sum(c - first.get(pid, (0.0, 0))[0]
              for pid, (c, f) in last.items())
    flt = sum(f - first.get(pid, (0.0, 0))[1]
              for pid, (c, f) in last.items())
    return cpu, flt


_OWN_TRACKER = None


def attach_shm(name):
    """The parent's block, attached.  A worker forked before the parent's
    resource tracker started gets a tracker of its own at its first attach,
    which would unlink the block when the worker exits (CPython gh-82300):
    such a worker unregisters each attach.  One that shares the parent's
    tracker (spawn, forkserver, a later fork) must not: that would drop
    the parent's own registration (a KeyError in the tracker at unlink)."""
    global _OWN_TRACKER
    from multiprocessing import resource_tracker, shared_memory
    if _OWN_TRACKER is None:
        _OWN_TRACKER = resource_tracker._resource_tracker._fd is None
    shm = shared_memory.SharedMemory(name)
    if _OWN_TRACKER:
        resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def task_shm(arg):
    import numpy
    name, shape, i = arg
    shm = attach_shm(name)
    try:
        a = numpy.ndarray(shape, numpy.float64, buffer=shm.buf)
        s = part(a, i)
        del a  # shm.close() refuses while a view exists
        return s
    finally:
        shm.close()


def noop(_):
    time.sleep(0.02)  # so that every worker takes some
    return cpu_now()


def workers_now(pool):
    """cpu_now() of every worker (tasks again until each answered)."""
    seen = {}
    for _ in range(50):
        for r in pool.map(noop, range(WORKERS * 4), chunksize=1):
            seen[r[0]] = r
        if len(seen) >= WORKERS:
            break
    return list(seen.values())


def init_results(way, mib):
    """The results this worker may return, one per task, made before the
    timing (so that no way pays for making them)."""
    import numpy
    n = mib * (1 << 20) // 8
    for k in range(TASKS):
        a = forkshim.empty(n) if way == "share" else numpy.empty(n)
        a[:] = k
        _RESULTS.append(a)


def result_task(arg):
    way, i = arg
    a = _RESULTS[i]
    if way == "pickle":
        return a
    if way in ("share", "share+copy"):
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
        workers_now(pool)
    interp = sum(pss_kib(p) for p in family_pids(os.getpid())) / 1024.0
    obj = forkshim.empty(n) if way == "share" else numpy.empty(n)
    obj[:] = numpy.arange(n, dtype=numpy.float64)
    want = float(obj.sum())
    if way == "global":
        _GLOBAL = obj
        pool = ctx.Pool(WORKERS)
    before = workers_now(pool)
    sampler = Sampler() if sample else None
    if sampler:
        sampler.start()
    keep = []
    c0 = cpu_now()
    t0 = time.perf_counter()
    if way in ("share", "share+copy"):
        ref = forkshim.share(obj)
        keep.append(ref)
        args, fn = [(ref, i) for i in range(TASKS)], task_object
    elif way == "pickle":
        k = n // TASKS
        args, fn = [obj[i * k:(i + 1) * k] for i in range(TASKS)], task_slice
    elif way == "pickle-whole":
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
    c1 = cpu_now()
    if sampler:
        sampler.stop()
    wcpu, wflt = worker_cost(before, workers_now(pool))
    pool.close()
    pool.join()
    release_all(keep)
    return {"s": t1 - t0, "cpu": c1[1] - c0[1] + wcpu, "wflt": wflt,
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
    before = workers_now(pool)
    total = 0.0
    c0 = cpu_now()
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
    c1 = cpu_now()
    wcpu, wflt = worker_cost(before, workers_now(pool))
    pool.close()
    pool.join()
    n = mib * (1 << 20) // 8
    want = float(sum(i * n for i in range(TASKS)))
    return {"s": t1 - t0, "cpu": c1[1] - c0[1] + wcpu, "wflt": wflt,
            "pflt": c1[2] - c0[2], "ok": total == want}

# ----------------------------------------------------------- driver


def thp_setting(name):
    """The selected value of /sys/kernel/mm/transparent_hugepage/NAME."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/" + name) as f:
            words = f.read().split()
    except OSError:
        return "unknown"
    return next((w[1:-1] for w in words if w.startswith("[")), "unknown")


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
    p.add_argument("--pss-rounds", type=int, default=1)
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
    print("transparent huge pages: shmem_enabled %s, enabled %s"
          % (thp_setting("shmem_enabled"), thp_setting("enabled")))
    rows = []
    for rep in range(args.repeat):
        for case in args.cases.split(","):
            pairs = [(m, w) for m in methods for w in ways
                     if (w != "global" or (case, m) == ("handoff", "fork"))
                     and (w != "pickle-whole" or case == "handoff")]
            for m, way in (pairs if rep % 2 == 0 else pairs[::-1]):
                r = run_one(case, m, way, args)
                if (case == "handoff" and not way.startswith("pickle")
                        and rep < args.pss_rounds):
                    # PSS in a run of its own: the sampler's /proc walks
                    # would slow the timed run.
                    q = run_one(case, m, way, args, pss=True)
                    r["pss"] = q["pss"] / (q["interp"] + q["data"])
                    r["ok"] = r["ok"] and q["ok"]
                r.update(case=case, method=m, way=way, rep=rep)
                rows.append(r)
                extra = ("  peak PSS %.2fx (interp + data)" % r["pss"]
                         if r.get("pss") else "")
                print("  run %d %-8s %-10s %-10s %8.3f s  CPU %6.2f s%s%s"
                      % (rep + 1, case, m, way, r["s"], r["cpu"], extra,
                         "" if r["ok"] else "  WRONG RESULT"), flush=True)

    def get(case, method, way, key="s"):
        return {r["rep"]: r[key] for r in rows
                if (r["case"], r["method"], r["way"]) == (case, method, way)}

    def spread(v, fmt):
        v = list(v)
        if not v:
            return "-"
        return (fmt + " (" + fmt + "-" + fmt + ")") % (
            statistics.median(v), min(v), max(v))

    def ratio(num, den, fmt="%.1fx"):
        # One ratio a round (the two runs of a round are neighbours).
        return spread((num[k] / den[k] for k in num if k in den), fmt)

    print("median (min-max) of %d rounds; ratios are taken in each round"
          % args.repeat)
    print()
    for case in args.cases.split(","):
        hand = case == "handoff"
        print("| %s | start method | way | wall s | CPU s | wall vs pickle | "
              "CPU vs pickle |%s" % (case, " wall vs fork+global | CPU vs "
                                     "fork+global | peak PSS / (interp + "
                                     "data) |" if hand else ""))
        print("|---" * (10 if hand else 7) + "|")
        for method in methods:
            for way in ways:
                w, c = get(case, method, way), get(case, method, way, "cpu")
                if not w:
                    continue
                pw = get(case, method, "pickle")
                pc = get(case, method, "pickle", "cpu")
                line = "| %s | %s | %s | %s | %s | %s | %s |" % (
                    case, method, way, spread(w.values(), "%.3f"),
                    spread(c.values(), "%.2f"),
                    ratio(pw, w) if way != "pickle" else "-",
                    ratio(pc, c) if way != "pickle" else "-")
                if hand:
                    gw = get(case, "fork", "global")
                    gc = get(case, "fork", "global", "cpu")
                    pss = [v for v in get(case, method, way, "pss").values()
                           if v is not None]
                    line += " %s | %s | %s |" % (
                        ratio(w, gw, "%.2fx"), ratio(c, gc, "%.2fx"),
                        spread(pss, "%.2fx"))
                print(line)
        print()
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
