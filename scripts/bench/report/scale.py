#!/usr/bin/env python3
"""Times `forkshim report DIR` on runs of N distinct regions.

Each run directory holds an owner's report and one child's, both naming
the same N regions (the child copied i % 5 pages of region i), as the
shim writes them.  The small and the large run are timed alternately,
--rounds times each; the table shows each one's median and spread
(min..max) and the ratio of the medians, large over small: a linear reader
gives about large/small (10), a quadratic one its square.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def write_run(path, n):
    os.makedirs(path)
    for pid in (100, 101):
        with open(os.path.join(path, "report-%d.jsonl" % pid), "w") as f:
            f.write('{"type":"process","format":1,"pid":%d,"ppid":1,'
                    '"exe":"/h","page_size":4096}\n' % pid)
            for i in range(n):
                ex = i % 5 if pid == 101 else 0
                f.write('{"type":"region","name":"r%d","handle":"0x%x",'
                        '"addr":"0x%x000","size":32768,"owner":100,'
                        '"pages":8,"resident":8,"shared":%d,'
                        '"exclusive":%d,"swapped":0}\n'
                        % (i, i + 1, i + 1, 8 - ex, ex))
            f.write('{"type":"end","how":"exit","status":0,"signal":0}\n')
    return sum(os.path.getsize(os.path.join(path, x))
               for x in os.listdir(path))


def once(launcher, path):
    start = time.perf_counter()
    subprocess.run([launcher, "report", path], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--launcher", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--large", type=int, default=100000)
    a = ap.parse_args()

    top = tempfile.mkdtemp(prefix="forkshim-bench-report-")
    try:
        runs = []
        for n in (a.small, a.large):
            path = os.path.join(top, "run-%d" % n)
            size = write_run(path, n)
            runs.append((n, path, size, []))
        once(a.launcher, runs[0][1])  # warm the page cache and the binary
        for _ in range(a.rounds):
            for n, path, size, times in runs:
                times.append(once(a.launcher, path))
        print("forkshim report on 2 reports of N distinct regions, %d "
              "rounds, alternating" % a.rounds)
        print("%10s %10s %10s %18s" % ("regions", "bytes", "median s",
                                      "spread s"))
        for n, path, size, times in runs:
            print("%10d %10d %10.3f %8.3f..%-8.3f" % (
                n, size, statistics.median(times), min(times), max(times)))
        small, large = (statistics.median(r[3]) for r in runs)
        print("ratio large/small: %.1f (regions x%.0f; linear ~%.0f, "
              "quadratic ~%.0f)" % (large / small, a.large / a.small,
                                    a.large / a.small,
                                    (a.large / a.small) ** 2))
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    main()
