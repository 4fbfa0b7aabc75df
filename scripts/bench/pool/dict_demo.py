"""A dict read by a fork Pool, the way most programs hand data to
workers: a module global the workers inherit.  Reading an entry writes its
reference count, so the workers copy the pages the entries lie on.
forkshim.observe() freezes those pages for reports, named "users", so
`forkshim report DIR` shows what each worker copied of the dict, and
under --guard audit the line that did.  Prints the workers' sum and the
pages observed.  scripts/demo runs it with 200,000 entries (the default is
50,000; tests/report/report_python.c runs that):

    forkshim --guard audit --report DIR python3 dict_demo.py [ENTRIES]
    forkshim report DIR
"""
import multiprocessing as mp
import sys

import forkshim

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
WORKERS = 2
users = {"user%07d" % i: (i, "name%d" % i, float(i)) for i in range(N)}
# Both workers take a task: each reads every entry.
BARRIER = mp.get_context("fork").Barrier(WORKERS)


def score(task):
    BARRIER.wait(timeout=30)
    total = 0.0
    for i in range(N):
        total += users["user%07d" % i][2]  # reads: refcounts written
    return total


def main():
    observed = forkshim.observe(users, "users")
    with mp.get_context("fork").Pool(WORKERS) as pool:
        print(int(sum(pool.map(score, range(WORKERS), chunksize=1))))
    print("observed %d pages" % observed.sharing().pages)


if __name__ == "__main__":
    main()
