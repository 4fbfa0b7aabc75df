"""Dict and DataFrame pool benchmark: memory of workers that read a big
object, and what a lookup costs.

dict: a str -> tuple dict of N entries ({"user:%08d" % i: (i, i * 0.5,
"name%d" % i)}, 3 million by default) read by a pool of W workers (2 and
4) doing L random lookups each (200,000).  Ways:
  dict    the dict as a module global, the pool forked after it (with
          forkshim.prepare_fork()): today's way, every page a worker reads
          is copied by reference-count writes
  frozen  forkshim.FrozenMapping(dict) built in the parent, which then
          drops the dict; each worker receives the mapping as its task's
          argument (a token; start method --methods: fork, forkserver,
          spawn)
  frozen-keep  the same, the parent keeping its dict (not by default)
Measured, per W: the summed PSS of the parent and all its descendants once
every worker has done its lookups (they wait until it is read), against
the baseline "interpreters + the parent's own dict": the summed PSS of the
same family with an idle pool of W workers before any data existed, plus
what building the dict added to the parent's PSS.  The FrozenMapping's
parent reads one byte per page of the region after the build, so the whole
region is in the PSS figures (pages of the sealed memfd that no process
maps would count nowhere).  Lookup cost: CPU time per lookup in a worker,
less a loop that makes the same keys without looking them up; "local" is
that cost on the plain dict in the parent, before any fork (no page
copies), and FrozenMapping against dict in the parent after the build,
alternated.  Build: the FrozenMapping's construction from the dict (wall and
CPU), next to the dict's own.

frame: a numpy-backed pandas DataFrame of C float64 columns, MIB MiB in
all, made of forkshim.empty() arrays (DataFrame(..., copy=False)); W
workers each compute mean, std and a dot product on every column.  Ways:
  global  a module global, the fork pool forked after it
  share   forkshim.share(df, readonly=True) to a pool made before the data
          (--methods: fork, forkserver, spawn): pickled once into shared
          memory, its columns sealed in place (no copy), read-only views
  pickle  the frame in each task's arguments (fork pool made before it;
          not by default: minutes)
Measured: hand-off + compute wall time (share() + pool.map), and the
summed PSS once every worker is done, against interpreters + the frame.

Each measurement runs in a fresh process under the shim; rounds alternate
the order of the ways.

    dict_bench.py [--cases dict,frame] [--ways dict,frozen,frozen-keep]
                  [--frame-ways global,share,pickle]
                  [--methods fork,forkserver,spawn]
                  [--workers 2,4] [--entries N] [--lookups L]
                  [--frame-mib M] [--repeat R] [--json FILE]
"""

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))
sys.path.insert(0, HERE)

import forkshim  # noqa: E402
import numpy  # noqa: E402,F401  (in every worker before the baseline)
if os.environ.get("DICT_BENCH_PANDAS"):  # frame runs: the same for pandas
    import pandas  # noqa: E402,F401
from pool_bench import family_pids, pss_kib  # noqa: E402

_OBJ = None  # the fork-inherited object (ways dict and global)
_DONE = None  # workers report on it, then wait for _QUIT
_QUIT = None
MIB = 1024.0

# ------------------------------------------------------------ workers


def init(done, quit_event):
    global _DONE, _QUIT
    _DONE, _QUIT = done, quit_event


def noop(_):
    return os.getpid()


def family_mib():
    return sum(pss_kib(p) for p in family_pids(os.getpid())) / MIB


def lookup_loop(obj, n, count, seed, look):
    rng = random.Random(seed)
    ri = rng.randrange
    bad = 0
    c0 = time.process_time()
    if look:
        for _ in range(count):
            i = ri(n)
            if obj["user:%08d" % i][0] != i:
                bad += 1
    else:
        for _ in range(count):
            i = ri(n)
            if len("user:%08d" % i) != 13:
                bad += 1
    return time.process_time() - c0, bad


def lookups(arg):
    """count random lookups; reports (cpu, base cpu, minor faults, wrong
    values), then waits until the parent has read the PSS."""
    obj, n, count, seed = arg
    obj = _OBJ if obj is None else forkshim.unwrap(obj)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu, bad = lookup_loop(obj, n, count, seed, True)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    base, _ = lookup_loop(obj, n, count, seed, False)
    out = (os.getpid(), cpu, base, faults, bad)
    _DONE.put(out)
    _QUIT.wait()
    return out


def frame_work(arg):
    """Mean, std and a dot product with the previous column of every
    column; reports, then waits."""
    obj, _ = arg
    df = _OBJ if obj is None else forkshim.unwrap(obj)
    out = []
    prev = None
    for c in df.columns:
        col = df[c]
        out.append((float(col.mean()), float(col.std())))
        if prev is not None:
            out.append(float(numpy.dot(col.values, prev)))
        prev = col.values
    del df, col, prev
    _DONE.put(os.getpid())
    _QUIT.wait()
    return out


def make_dict(n):
    return {"user:%08d" % i: (i, i * 0.5, "name%d" % i) for i in range(n)}


def idle_family(ctx, workers):
    """Summed PSS of this process's family with an idle pool of workers."""
    gc.collect()
    with ctx.Pool(workers) as pool:
        pool.map(noop, range(4 * workers), chunksize=1)
        time.sleep(0.2)
        mib = family_mib()
    return mib


def run_pool(ctx, workers, fn, args, sample=True):
    """Runs one task per worker (each holds until the PSS is read): (wall
    of the map, summed PSS with every worker done, results)."""
    done, quit_event = ctx.SimpleQueue(), ctx.Event()
    with ctx.Pool(workers, initializer=init,
                  initargs=(done, quit_event)) as pool:
        pool.map(noop, range(2 * workers))  # started
        t0 = time.perf_counter()
        res = pool.map_async(fn, args, chunksize=1)
        for _ in args:
            done.get()
        wall = time.perf_counter() - t0
        mib = family_mib() if sample else 0.0
        quit_event.set()
        out = res.get()
    return wall, mib, out


def parent_mib():
    return pss_kib(os.getpid()) / MIB


def measure_dict(way, method, workers_list, n, count):
    global _OBJ
    import multiprocessing as mp
    ctx = mp.get_context(method)
    row = {"case": "dict", "way": way, "method": method, "entries": n,
           "lookups": count, "shim": forkshim.available()}
    interp = {w: idle_family(ctx, w) for w in workers_list}
    p0 = parent_mib()
    t0 = time.perf_counter()
    d = make_dict(n)
    row["dict_build_s"] = time.perf_counter() - t0
    row["dict_mib"] = parent_mib() - p0
    cpu, bad = lookup_loop(d, n, count, 7, True)
    base, _ = lookup_loop(d, n, count, 7, False)
    row["local_us"] = (cpu - base) / count * 1e6
    if way in ("frozen", "frozen-keep"):
        c0 = time.process_time()
        t0 = time.perf_counter()
        obj = forkshim.FrozenMapping(d)
        row["build_s"] = time.perf_counter() - t0
        row["build_cpu_s"] = time.process_time() - c0
        row["region_mib"] = obj.nbytes / MIB / MIB
        row["parent_peak_mib"] = resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / MIB
        sum(obj._region[::4096])  # maps every page here (see above)
        # Lookup CPU here, FrozenMapping and dict alternated (A B A B).
        pairs = []
        for r in range(2):
            a, _ = lookup_loop(obj, n, count, 8 + r, True)
            b, _ = lookup_loop(d, n, count, 8 + r, True)
            c, _ = lookup_loop(d, n, count, 8 + r, False)
            pairs.append(((a - c) / count * 1e6, (b - c) / count * 1e6))
        row["local_pairs_us"] = pairs
        if way == "frozen":
            del d
            gc.collect()
        else:
            _OBJ = d  # the parent keeps its dict
            del d
            forkshim.prepare_fork()
        send = obj
    else:
        _OBJ = d
        del d
        forkshim.prepare_fork()
        send = None
    row["parent_mib"] = parent_mib()
    for w in workers_list:
        args = [(send, n, count, 1000 + i) for i in range(w)]
        _, mib, out = run_pool(ctx, w, lookups, args)
        base_mib = interp[w] + row["dict_mib"]
        row["w%d" % w] = {
            "interp_mib": interp[w], "family_mib": mib,
            "baseline_mib": base_mib, "ratio": mib / base_mib,
            "lookup_us": statistics.mean((o[1] - o[2]) / count * 1e6
                                         for o in out),
            "faults": sum(o[3] for o in out) // w,
            "wrong": sum(o[4] for o in out)}
    return row


def make_frame(mib, cols, shared):
    import numpy
    import pandas
    rows = int(mib * (1 << 20) // (8 * cols))
    data = {}
    for c in range(cols):
        a = forkshim.empty(rows) if shared else numpy.empty(rows)
        a[:] = numpy.random.default_rng(c).random(rows)
        data["c%d" % c] = a
    return pandas.DataFrame(data, copy=False)


def measure_frame(way, method, workers_list, mib, cols):
    global _OBJ
    import multiprocessing as mp
    ctx = mp.get_context(method)
    row = {"case": "frame", "way": way, "method": method, "mib": mib,
           "shim": forkshim.available()}
    interp = {w: idle_family(ctx, w) for w in workers_list}
    for w in workers_list:
        if way == "global":
            p0 = parent_mib()
            _OBJ = make_frame(mib, cols, False)
            frame_mib = parent_mib() - p0
            wall, fam, out = run_pool(ctx, w, frame_work,
                                      [(None, i) for i in range(w)])
            _OBJ = None
        else:
            # The pool exists before the frame is made and handed over.
            done, quit_event = ctx.SimpleQueue(), ctx.Event()
            with ctx.Pool(w, initializer=init,
                          initargs=(done, quit_event)) as pool:
                pool.map(noop, range(2 * w))
                p0 = parent_mib()
                df = make_frame(mib, cols, way == "share")
                frame_mib = parent_mib() - p0
                t0 = time.perf_counter()
                ref = forkshim.share(df, readonly=True) \
                    if way == "share" else df
                res = pool.map_async(frame_work,
                                     [(ref, i) for i in range(w)],
                                     chunksize=1)
                for _ in range(w):
                    done.get()
                wall = time.perf_counter() - t0
                fam = family_mib()
                quit_event.set()
                out = res.get()
            if way == "share":
                ref.release()
            del df, ref
        gc.collect()
        base_mib = interp[w] + frame_mib
        row["w%d" % w] = {"interp_mib": interp[w], "family_mib": fam,
                          "baseline_mib": base_mib, "ratio": fam / base_mib,
                          "wall_s": wall, "frame_mib": frame_mib,
                          "same": all(o == out[0] for o in out)}
    return row

# ------------------------------------------------------------- driver


def run_one(spec, args):
    cmd = [sys.executable, "-B", os.path.abspath(__file__), "--one",
           json.dumps(spec)]
    env = dict(os.environ)
    env.pop("DICT_BENCH_PANDAS", None)
    if spec["case"] == "frame":
        env["DICT_BENCH_PANDAS"] = "1"
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, env=env)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def spread(values):
    if len(values) < 2:
        return ""
    return " (%s .. %s)" % (_num(min(values)), _num(max(values)))


def _num(x):
    return "%.2f" % x if abs(x) < 100 else "%.0f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="dict,frame")
    ap.add_argument("--ways", default="dict,frozen")
    ap.add_argument("--frame-ways", default="global,share")
    ap.add_argument("--methods", default="fork")
    ap.add_argument("--workers", default="2,4")
    ap.add_argument("--entries", type=int, default=3000000)
    ap.add_argument("--lookups", type=int, default=200000)
    ap.add_argument("--frame-mib", type=int, default=256)
    ap.add_argument("--columns", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.one:
        spec = json.loads(args.one)
        if spec["case"] == "dict":
            row = measure_dict(spec["way"], spec["method"], spec["workers"],
                               spec["entries"], spec["lookups"])
        else:
            row = measure_frame(spec["way"], spec["method"], spec["workers"],
                                spec["mib"], spec["columns"])
        print(json.dumps(row))
        return
    if not forkshim.available():
        sys.exit("dict_bench.py: run it under the shim "
                 "(scripts/bench/pool/run --dict)")
    workers = [int(w) for w in args.workers.split(",")]
    methods = args.methods.split(",")
    cases = args.cases.split(",")
    specs = []
    if "dict" in cases:
        for way in args.ways.split(","):
            for m in (methods if way.startswith("frozen") else ["fork"]):
                specs.append({"case": "dict", "way": way, "method": m,
                              "workers": workers, "entries": args.entries,
                              "lookups": args.lookups})
    if "frame" in cases:
        for way in args.frame_ways.split(","):
            for m in (methods if way == "share" else ["fork"]):
                specs.append({"case": "frame", "way": way, "method": m,
                              "workers": workers, "mib": args.frame_mib,
                              "columns": args.columns})
    rows = []
    for r in range(args.repeat):
        order = specs if r % 2 == 0 else specs[::-1]
        for spec in order:
            t0 = time.perf_counter()
            row = run_one(spec, args)
            row["round"] = r
            rows.append(row)
            print("# round %d %s %s %s: %.0f s" % (
                r, spec["case"], spec["way"], spec["method"],
                time.perf_counter() - t0), file=sys.stderr)
    report(rows, workers)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def report(rows, workers):
    def group(case):
        out = {}
        for r in rows:
            if r["case"] == case:
                out.setdefault((r["way"], r["method"]), []).append(r)
        return out

    def med(rs, key, w=None):
        vals = [(r["w%d" % w] if w else r)[key] for r in rs]
        return statistics.median(vals), vals

    g = group("dict")
    if g:
        first = next(iter(g.values()))[0]
        print("dict: %d entries, %d random lookups per worker; median of "
              "%d run(s), (min .. max)" % (first["entries"],
                                           first["lookups"],
                                           len(next(iter(g.values())))))
        print("| way | workers | summed PSS | interpreters + dict | ratio |"
              " lookup CPU in a worker | faults per worker |")
        print("|---|---|---|---|---|---|---|")
        for (way, m), rs in g.items():
            for w in workers:
                fam, _ = med(rs, "family_mib", w)
                base, _ = med(rs, "baseline_mib", w)
                ratio, rv = med(rs, "ratio", w)
                us, uv = med(rs, "lookup_us", w)
                flt, _ = med(rs, "faults", w)
                wrong = sum(r["w%d" % w]["wrong"] for r in rs)
                print("| %s (%s) | %d | %.0f MiB | %.0f MiB | %.2fx%s | "
                      "%.2f us%s | %d |%s" % (
                          way, m, w, fam, base, ratio, spread(rv), us,
                          spread(uv), flt,
                          " WRONG VALUES: %d" % wrong if wrong else ""))
        local = [r["local_us"] for rs in g.values() for r in rs]
        print("plain dict lookup in the parent (no fork): %.2f us%s; dict "
              "in the parent: %.0f MiB, built in %.1f s" % (
                  statistics.median(local), spread(local),
                  statistics.median(r["dict_mib"] for rs in g.values()
                                    for r in rs),
                  statistics.median(r["dict_build_s"] for rs in g.values()
                                    for r in rs)))
        fz = [r for (way, _), rs in g.items() if way.startswith("frozen")
              for r in rs]
        if fz:
            b = [r["build_s"] for r in fz]
            print("FrozenMapping: %.0f MiB region, built in %.1f s%s wall, "
                  "%.1f s CPU; parent's peak RSS while building %.0f MiB" % (
                      fz[0]["region_mib"], statistics.median(b), spread(b),
                      statistics.median(r["build_cpu_s"] for r in fz),
                      max(r["parent_peak_mib"] for r in fz)))
        lp = [p for rs in g.values() for r in rs
              for p in r.get("local_pairs_us", ())]
        if lp:
            ratios = [a / b for a, b in lp]
            print("lookup CPU in the parent, FrozenMapping / dict, "
                  "alternated: %.2f us / %.2f us = %.2fx%s" % (
                      statistics.median(a for a, _ in lp),
                      statistics.median(b for _, b in lp),
                      statistics.median(ratios), spread(ratios)))
        for (way, m), rs in g.items():
            if way.startswith("frozen") and ("dict", "fork") in g:
                for w in workers:
                    a = [r["w%d" % w]["lookup_us"] for r in rs]
                    d = [r["w%d" % w]["lookup_us"] for r in g[("dict",
                                                                "fork")]]
                    pairs = [x / y for x, y in zip(a, d)]
                    print("lookup CPU in a worker, %s (%s) / inherited "
                          "dict, %d workers: %.2fx%s" % (way, m, w,
                                                statistics.median(pairs),
                                                spread(pairs)))
    g = group("frame")
    if g:
        first = next(iter(g.values()))[0]
        print("\nframe: %d MiB DataFrame; median of %d run(s)" % (
            first["mib"], len(next(iter(g.values())))))
        print("| way | workers | hand-off + compute | summed PSS | "
              "interpreters + frame | ratio |")
        print("|---|---|---|---|---|---|")
        for (way, m), rs in g.items():
            for w in workers:
                wall, wv = med(rs, "wall_s", w)
                fam, _ = med(rs, "family_mib", w)
                base, _ = med(rs, "baseline_mib", w)
                ratio, rv = med(rs, "ratio", w)
                same = all(r["w%d" % w]["same"] for r in rs)
                print("| %s (%s) | %d | %.2f s%s | %.0f MiB | %.0f MiB | "
                      "%.2fx%s |%s" % (way, m, w, wall, spread(wv), fam, base,
                                       ratio, spread(rv),
                                       "" if same else " RESULTS DIFFER"))


if __name__ == "__main__":
    main()
