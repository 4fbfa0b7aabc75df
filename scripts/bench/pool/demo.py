"""forkshim's Python pool demo: a fork-started Pool(2) gets a numpy array
by pickle, then by forkshim.share, and the two are compared.

    forkshim /usr/bin/python3 scripts/bench/pool/demo.py [--mib 32]
    LD_PRELOAD=build/shim/libforkshim.so /usr/bin/python3 .../demo.py
"""

import argparse
import multiprocessing
import os
import pickle
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "inject", "python"))

import numpy  # noqa: E402

import forkshim  # noqa: E402

TASKS = 8


def work(arg):
    """Sums the task's eighth; says where the array's data lives."""
    arr, i = arg
    n = len(arr) // TASKS
    return float(arr[i * n:(i + 1) * n].sum()), arr.__array_interface__[
        "data"][0]


def run(pool, args):
    t = time.perf_counter()
    out = pool.map(work, args, chunksize=1)
    return time.perf_counter() - t, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=32)
    mib = p.parse_args().mib
    arr = numpy.arange(mib * (1 << 20) // 8, dtype=numpy.float64)
    addr = arr.__array_interface__["data"][0]
    print("forkshim Python pool demo: shim %s" % (
        forkshim.version() + " loaded" if forkshim.available()
        else "NOT loaded, so share() falls back to pickling (start this "
        "with the forkshim launcher or LD_PRELOAD)"))
    print("a %d MiB numpy array; Pool(2) with fork; %d tasks each receive the"
          " whole array and sum their eighth\n" % (mib, TASKS))

    forkshim.prepare_fork()
    ref = forkshim.share(arr)  # before the pool is forked
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        t_value, by_value = run(pool, [(arr, i) for i in range(TASKS)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", forkshim.FallbackWarning)
            t_share, by_share = run(pool, [(ref, i) for i in range(TASKS)])
            shared_pages = (forkshim.sharing(arr) if forkshim.available()
                            else None)
    value_bytes = len(pickle.dumps((arr, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", forkshim.FallbackWarning)
        share_bytes = len(pickle.dumps((ref, 0)))

    def where(out):
        return ("the parent's buffer, zero-copy" if all(a == addr
                                                       for _, a in out)
                else "a private copy")
    print("  %-22s %8.3f s   %11s pickled per task   workers read %s"
          % ("by value (pickle)", t_value, _size(value_bytes),
             where(by_value)))
    print("  %-22s %8.3f s   %11s pickled per task   workers read %s"
          % ("forkshim.share(arr)", t_share, _size(share_bytes),
             where(by_share)))
    same = [s for s, _ in by_value] == [s for s, _ in by_share]
    if forkshim.available():
        print("\n  share() was %.0fx faster; the sums are %s"
              % (t_value / t_share, "the same" if same else "DIFFERENT"))
    else:
        print("\n  without the shim both went by value; the sums are %s"
              % ("the same" if same else "DIFFERENT"))
    if shared_pages is not None:
        print("  while the pool lived, %d of the array's %d pages were "
              "shared with the workers (forkshim.sharing)"
              % (shared_pages.shared, shared_pages.pages))

    # A pool forked before share() cannot see the object: by value, warned.
    with ctx.Pool(2) as late_pool:
        late = forkshim.share(numpy.ones(1000))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            late_pool.map(work, [(late, i) for i in range(TASKS)])
    if w:
        print("  a pool forked before share(): sent by value, with one "
              "warning:\n    %s" % w[0].message)
    return 0 if same else 1


def _size(n):
    return "%d bytes" % n if n < 1 << 20 else "%.1f MiB" % (n / 1048576.0)


if __name__ == "__main__":
    sys.exit(main())
