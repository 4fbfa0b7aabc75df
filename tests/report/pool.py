"""A fork Pool of 4 workers under `forkshim --report DIR`: the parent
shares a 512-page numpy array (its own private mmap, so no other object
lives in its pages) and task t dirties pages [8t, 8t + t % 4 + 1) of it,
20 pages in all; `forkshim report DIR` then shows which worker copied how
many.  Prints the number of pages the tasks wrote."""
import mmap
import multiprocessing as mp
import os

import numpy as np

import forkshim

PAGE = os.sysconf("SC_PAGE_SIZE")
ROWS = PAGE // 8  # float64 values in a page
TASKS = 8
WORKERS = 4
# Each task waits until WORKERS tasks run at once: every worker takes
# exactly two tasks, so each one copies pages and leaves an audit file
# whatever the scheduling (inherited by the fork workers).
BARRIER = mp.get_context("fork").Barrier(WORKERS)


def dirty(arg):
    ref, task = arg
    a = forkshim.unwrap(ref)
    BARRIER.wait(timeout=30)
    pages = task % 4 + 1
    for p in range(pages):
        a[(task * 8 + p) * ROWS] += 1.0
    return pages


def main():
    buf = mmap.mmap(-1, 512 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    arr = np.frombuffer(buf, dtype=np.float64)
    arr[:] = 1.0
    forkshim.freeze(arr, name="matrix")
    ref = forkshim.share(arr, readonly=False)  # the workers write to it
    with mp.get_context("fork").Pool(WORKERS) as pool:
        written = pool.map(dirty, [(ref, t) for t in range(TASKS)],
                           chunksize=1)
        print(sum(written))


if __name__ == "__main__":
    main()
