"""Pool benchmark: four ways to hand one big object to multiprocessing workers.

Two objects: a 256 MiB float64 numpy array, and a dict of 1 million small
objects ({i: (i, i / 2)}).  A fork-started Pool(2) runs 16 tasks; each
receives the whole object and reduces its own sixteenth of it (a slice sum;
a sum over its range of keys).  The object travels:

  (a) by value: the task arguments are pickled, as multiprocessing does;
  (b) forkshim.share(obj): pickled as a handle, resolved to the object the
      worker inherited at fork;
  (c) multiprocessing.shared_memory: the array is copied into a shared
      block and viewed there; the dict, which has no flat form, is pickled
      into a block once and unpickled from it by every task;
  (d) a module global set before the pool is forked (the hand-written trick).

Measured, for each: hand-off wall time (preparing the hand-off, plus
pool.map; the pool's start and shutdown are left out, as they are the same
for all four, and shown apart), the parent's CPU time (all its threads, less
the sampler's), and the peak over time of the summed PSS of the parent and
all its descendants (/proc/PID/smaps_rollup, sampled every 20 ms by a
thread).  Each measurement runs in a fresh process.  Run it under the shim:
scripts/bench/pool/run does.

    pool_bench.py [--repeat N] [--cases array,dict] [--methods a,b,c,d]
                  [--png FILE] [--json F]

--methods b,d repeats only the two the time target compares, cheaply
((a) takes minutes), in that order in each round (d,b for the other);
ratios to a method left out are not printed.
"""

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))

import forkshim  # noqa: E402

TASKS = 16
WORKERS = 2
METHODS = ["a", "b", "c", "d"]
LABELS = {"a": "(a) pickle", "b": "(b) forkshim.share",
          "c": "(c) shared_memory", "d": "(d) fork global"}
CASES = ["array", "dict"]

# ------------------------------------------------------------ the objects


def make_array(mib):
    import numpy
    return numpy.arange(mib * (1 << 20) // 8, dtype=numpy.float64)


def make_dict(n):
    return {i: (i, i / 2) for i in range(n)}


def part_sum(obj, i):
    """Reduces the i-th sixteenth of the object."""
    if isinstance(obj, dict):
        n = len(obj) // TASKS
        return sum(obj[k][1] for k in range(i * n, (i + 1) * n))
    n = len(obj) // TASKS
    return float(obj[i * n:(i + 1) * n].sum())


def expected(obj):
    return sum(part_sum(obj, i) for i in range(TASKS))

# ------------------------------------------------ the tasks, per method

_GLOBAL = None  # (d)


def task_object(arg):  # (a) and (b): the object itself arrives
    obj, i = arg
    return part_sum(obj, i)


def task_global(i):  # (d)
    return part_sum(_GLOBAL, i)


def _attach(name):
    # Fork-started workers share the parent's resource tracker, so this
    # registration is the creator's again, undone by its unlink().
    from multiprocessing import shared_memory
    return shared_memory.SharedMemory(name)


def task_shm_array(arg):  # (c), array
    import numpy
    name, shape, dtype, i = arg
    shm = _attach(name)
    try:
        a = numpy.ndarray(shape, dtype=dtype, buffer=shm.buf)
        s = part_sum(a, i)
        del a
        return s
    finally:
        shm.close()


def task_shm_pickle(arg):  # (c), dict
    name, size, i = arg
    shm = _attach(name)
    try:
        obj = pickle.loads(shm.buf[:size])
        return part_sum(obj, i)
    finally:
        shm.close()

# ------------------------------------------------------- PSS sampling


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def family_pids(root):
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def release_all(keep):
    """Ends what a hand-off kept: SharedRefs released, shared_memory
    blocks closed and unlinked."""
    for k in keep:
        if isinstance(k, forkshim.SharedRef):
            k.release()
        else:
            k.close()
            k.unlink()


class Sampler(threading.Thread):
    """Peak of the summed PSS of this process and its descendants."""

    def __init__(self, interval=0.02):
        threading.Thread.__init__(self, daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self.cpu = 0.0
        self._stop_event = threading.Event()

    def sample(self):
        total = sum(pss_kib(p) for p in family_pids(os.getpid()))
        self.samples += 1
        self.peak_kib = max(self.peak_kib, total)

    def run(self):
        t0 = time.thread_time()
        self.sample()
        while not self._stop_event.wait(self.interval):
            self.sample()
        self.sample()
        self.cpu = time.thread_time() - t0

    def stop(self):
        self._stop_event.set()
        self.join()

# ---------------------------------------------------- one measurement


def measure(case, method, mib, nobjects):
    """Builds the object, hands it to a fresh Pool(2) the given way, and
    returns the measurements as a dict."""
    global _GLOBAL
    import multiprocessing
    from multiprocessing import shared_memory
    ctx = multiprocessing.get_context("fork")

    obj = make_array(mib) if case == "array" else make_dict(nobjects)
    want = expected(obj)
    forkshim.prepare_fork()
    baseline = pss_kib(os.getpid())

    sampler = Sampler()
    sampler.start()
    keep = []  # what must outlive the pool: a SharedRef, a shm block
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    # Preparing the hand-off: what must happen before the pool is forked.
    if method == "b":
        ref = forkshim.share(obj)
        keep.append(ref)
        args = [(ref, i) for i in range(TASKS)]
        fn = task_object
    elif method == "a":
        args = [(obj, i) for i in range(TASKS)]
        fn = task_object
    elif method == "d":
        _GLOBAL = obj
        args = list(range(TASKS))
        fn = task_global
    elif case == "array":
        shm = shared_memory.SharedMemory(create=True, size=obj.nbytes)
        keep.append(shm)
        import numpy
        numpy.copyto(numpy.ndarray(obj.shape, obj.dtype, buffer=shm.buf),
                     obj)
        args = [(shm.name, obj.shape, obj.dtype.str, i)
                for i in range(TASKS)]
        fn = task_shm_array
    else:
        blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        shm = shared_memory.SharedMemory(create=True, size=len(blob))
        keep.append(shm)
        shm.buf[:len(blob)] = blob
        args = [(shm.name, len(blob), i) for i in range(TASKS)]
        del blob
        fn = task_shm_pickle
    t1 = time.perf_counter()
    pool = ctx.Pool(WORKERS)
    t2 = time.perf_counter()
    results = pool.map(fn, args, chunksize=1)
    t3 = time.perf_counter()
    pool.close()
    pool.join()
    t4 = time.perf_counter()
    cpu = time.process_time() - cpu0
    sampler.stop()
    release_all(keep)
    got = sum(results)
    return {
        "case": case, "method": method,
        "handoff_s": (t1 - t0) + (t3 - t2),
        "prep_s": t1 - t0,
        "pool_s": (t2 - t1) + (t4 - t3),
        "total_s": t4 - t0,
        "cpu_s": max(cpu - sampler.cpu, 0.0),
        "sampler_cpu_s": sampler.cpu,
        "peak_pss_mib": sampler.peak_kib / 1024.0,
        "baseline_pss_mib": baseline / 1024.0,
        "samples": sampler.samples,
        "correct": abs(got - want) <= 1e-9 * max(1.0, abs(want)),
        "shim": forkshim.available(),
    }

# ----------------------------------------------------------- the driver


def run_one(case, method, args):
    cmd = [sys.executable, "-B", os.path.abspath(__file__), "--one", case,
           method, "--mib", str(args.mib), "--objects", str(args.objects)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def fmt_ratio(x):
    if x >= 100:
        return "%.0fx" % x
    if x >= 10:
        return "%.1fx" % x
    return "%.2fx" % x


def summarize(rows, repeat):
    """One row per (case, method): medians, plus min-max across repeats."""
    out = []
    for case in CASES:
        for m in METHODS:
            rs = [r for r in rows if r["case"] == case and r["method"] == m]
            if not rs:
                continue
            s = {"case": case, "method": m, "n": len(rs),
                 "correct": all(r["correct"] for r in rs)}
            for k in ("handoff_s", "pool_s", "total_s", "cpu_s",
                      "peak_pss_mib", "baseline_pss_mib"):
                vals = [r[k] for r in rs]
                s[k] = statistics.median(vals)
                s[k + "_min"] = min(vals)
                s[k + "_max"] = max(vals)
            out.append(s)
    return out


def table(summary):
    lines = []
    head = ("| case | method | hand-off wall | vs (a) | vs (d) | parent CPU "
            "| vs (a) | vs (d) | peak PSS, all processes | vs (a) | vs (d) "
            "| pool start+stop |")
    lines.append(head)
    lines.append("|" + "---|" * 12)

    def ratios(s, base, key):
        return [fmt_ratio(s[key] / b[key]) if b else "-" for b in base]

    for case in CASES:
        rows = {s["method"]: s for s in summary if s["case"] == case}
        base = (rows.get("a"), rows.get("d"))
        for m in METHODS:
            if m not in rows:
                continue
            s = rows[m]
            lines.append(
                "| %s | %s | %.3f s | %s | %s | %.3f s | %s | %s | %.0f MiB "
                "| %s | %s | %.3f s |%s" % tuple(
                    [case, LABELS[m], s["handoff_s"]]
                    + ratios(s, base, "handoff_s") + [s["cpu_s"]]
                    + ratios(s, base, "cpu_s") + [s["peak_pss_mib"]]
                    + ratios(s, base, "peak_pss_mib")
                    + [s["pool_s"], "" if s["correct"] else " WRONG RESULT"]))
    return "\n".join(lines)


def spread(summary):
    lines = ["min-max over %d runs:" % summary[0]["n"]]
    for s in summary:
        lines.append("  %-5s %-20s hand-off %.3f-%.3f s  CPU %.3f-%.3f s  "
                     "PSS %.0f-%.0f MiB" % (
                         s["case"], LABELS[s["method"]], s["handoff_s_min"],
                         s["handoff_s_max"], s["cpu_s_min"], s["cpu_s_max"],
                         s["peak_pss_mib_min"], s["peak_pss_mib_max"]))
    return "\n".join(lines)


def paired(rows, case, m, base):
    """Median and range of this method's hand-off / the base method's, run
    by run: the two ran side by side, so load that changes between runs
    (other jobs on the machine) cancels out better than in the medians."""
    by = {(r["rep"], r["method"]): r["handoff_s"]
          for r in rows if r["case"] == case}
    q = [by[k, m] / by[k, base] for k, mm in by if mm == m and (k, base) in by]
    if len(q) < 2:
        return ""
    return " (run by run: median %.2fx, %.2f-%.2fx over %d runs)" % (
        statistics.median(q), min(q), max(q), len(q))


def targets(summary, rows):
    by = {(s["case"], s["method"]): s for s in summary}
    out = []
    if ("array", "a") in by and ("array", "b") in by:
        a, b = by["array", "a"], by["array", "b"]
        speed = a["handoff_s"] / b["handoff_s"]
        out.append(("array: (b) at least 100x faster than (a)",
                    speed >= 100, "%.0fx (%.0fx with pool start+stop)"
                    % (speed, a["total_s"] / b["total_s"])))
    if ("array", "b") in by and ("array", "d") in by:
        b, d = by["array", "b"], by["array", "d"]
        r = b["handoff_s"] / d["handoff_s"]
        out.append(("array: (b) within 1.2x of (d) in time", r <= 1.2,
                    "%.2fx (%.2fx with pool start+stop)%s"
                    % (r, b["total_s"] / d["total_s"],
                       paired(rows, "array", "b", "d"))))
    for case in CASES:
        if (case, "b") in by and (case, "d") in by:
            r = by[case, "b"]["peak_pss_mib"] / by[case, "d"]["peak_pss_mib"]
            out.append(("%s: (b) summed PSS within 1.2x of (d)" % case,
                        r <= 1.2, "%.2fx" % r))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=2, metavar=("CASE", "METHOD"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--cases", default="array,dict")
    p.add_argument("--methods", default="a,b,c,d")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--objects", type=int, default=1000000)
    p.add_argument("--png", help="draw the results to this PNG file")
    p.add_argument("--json", help="write every measurement to this file")
    args = p.parse_args()

    if args.one:
        case, method = args.one
        print(json.dumps(measure(case, method, args.mib, args.objects)))
        return 0

    cases = [c for c in args.cases.split(",") if c]
    # In the order given: "d,b" runs (d) first in each round.
    methods = [m for m in args.methods.split(",") if m in METHODS]
    print("forkshim pool benchmark: python %s, numpy %s, shim %s, %d cores"
          % (sys.version.split()[0], __import__("numpy").__version__,
             forkshim.version() or "NOT LOADED (every (b) goes by value)",
             os.cpu_count()))
    print("array: %d MiB float64; dict: %d entries {i: (i, i / 2)}; "
          "Pool(%d), fork, %d tasks, chunksize 1"
          % (args.mib, args.objects, WORKERS, TASKS))
    rows = []
    for rep in range(args.repeat):
        for case in cases:
            for m in methods:
                r = run_one(case, m, args)
                r["rep"] = rep
                rows.append(r)
                print("  run %d %-5s %-20s hand-off %7.3f s (prep %.3f)  CPU "
                      "%7.3f s  peak PSS %6.0f MiB  pool %5.3f s%s" % (
                          rep + 1, case, LABELS[m], r["handoff_s"],
                          r["prep_s"], r["cpu_s"], r["peak_pss_mib"],
                          r["pool_s"],
                          "" if r["correct"] else "  WRONG RESULT"),
                      flush=True)
    summary = summarize(rows, args.repeat)
    print()
    print(("median of %d runs; " % args.repeat if args.repeat > 1 else "")
          + "ratios are this row / row (a) and this row / row (d)")
    print(table(summary))
    if args.repeat > 1:
        print(spread(summary))
    print()
    ok = True
    for what, passed, value in targets(summary, rows):
        ok = ok and passed
        print("target %-45s %-4s %s" % (what, "met" if passed else "MISSED",
                                         value))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summary}, f, indent=1)
    if args.png:
        import chart
        how = chart.draw(summary, LABELS, args.png)
        print("chart: %s (%s)" % (args.png, how))
    return 0 if all(s["correct"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
