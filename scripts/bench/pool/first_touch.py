"""What a worker pays to read MIB MiB it did not write, by how it got them.

The hand-off benchmark (shared_bench.py) compares a spawn or forkserver
worker reading a shared array (a memfd mapping, 4 KiB pages: shmem huge
pages are off unless /sys/kernel/mm/transparent_hugepage/shmem_enabled says
otherwise) with a fork child reading an inherited numpy array (anonymous
memory, which numpy asks to back with 2 MiB pages).  This separates the
parts: each way runs in a fresh process that reads the whole array once,
and reports its wall time, CPU time and minor faults (of the mapping step
and the read; for the memfd, also the read alone and a second read):

  memfd        map the memfd read-only, read (a fault per 16 pages)
  memfd+pop    map, madvise(MADV_POPULATE_READ), read (no faults in the read)
  fork-thp     fork child of a process holding a numpy array (2 MiB pages)
  fork-4k      the same with the array's pages kept small (MADV_NOHUGEPAGE)

Rounds alternate the order.  Run it under nothing (no shim needed):

    python3 scripts/bench/pool/first_touch.py [--mib M] [--repeat N]
"""

import argparse
import mmap
import os
import resource
import statistics
import sys
import time

import numpy

MADV_POPULATE_READ = 22  # Linux >= 5.14
WAYS = ("memfd", "memfd+pop", "fork-thp", "fork-4k")


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime, r.ru_minflt


def read_all(buf):
    """Reads every byte (a sum of uint64s); (wall s, CPU s, faults)."""
    t0, c0, f0 = usage()
    numpy.frombuffer(buf, numpy.uint64).sum()
    t1, c1, f1 = usage()
    return t1 - t0, c1 - c0, f1 - f0


def in_child(fn):
    """fn() in a forked child; what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, repr(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 4096)  # one short write, in the pipe's buffer
    os.close(r)
    return eval(out)  # our own child's tuple of numbers


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    n = args.mib << 20
    fd = os.memfd_create("first_touch")
    os.ftruncate(fd, n)
    with mmap.mmap(fd, n) as m:
        numpy.frombuffer(m, numpy.uint8)[:] = 1
    thp = numpy.ones(n, numpy.uint8)
    small = mmap.mmap(-1, n)
    small.madvise(mmap.MADV_NOHUGEPAGE)
    numpy.frombuffer(small, numpy.uint8)[:] = 1

    def memfd(populate):
        t0, c0, f0 = usage()
        m = mmap.mmap(fd, n, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        if populate:
            m.madvise(MADV_POPULATE_READ)
        t1, c1, f1 = usage()
        w, c, f = read_all(m)
        again = read_all(m)[0]
        return (t1 - t0 + w, c1 - c0 + c, f1 - f0 + f, w, again)

    run = {"memfd": lambda: memfd(False), "memfd+pop": lambda: memfd(True),
           "fork-thp": lambda: read_all(thp),
           "fork-4k": lambda: read_all(small)}
    got = {w: [] for w in WAYS}
    for rep in range(args.repeat):
        for way in (WAYS if rep % 2 == 0 else WAYS[::-1]):
            got[way].append(in_child(run[way]))
    print("first read of %d MiB in a fresh process, %d rounds: median "
          "(min-max)" % (args.mib, args.repeat))
    base = got["fork-thp"]
    for way in WAYS:
        v = got[way]
        col = [[x[i] for x in v] for i in range(3)]
        ratio = [x[1] / b[1] for x, b in zip(v, base) if b[1] > 0]
        print("  %-9s wall %.3f s (%.3f-%.3f)  CPU %.3f s (%.3f-%.3f)  "
              "faults %d  CPU vs fork-thp %s" % (
                  way, statistics.median(col[0]), min(col[0]), max(col[0]),
                  statistics.median(col[1]), min(col[1]), max(col[1]),
                  statistics.median(col[2]),
                  "%.1fx (%.1f-%.1f)" % (statistics.median(ratio),
                                         min(ratio), max(ratio))
                  if ratio else "-"))
        if len(v[0]) > 3:
            r1, r2 = [x[3] for x in v], [x[4] for x in v]
            print("  %-9s of which the read %.3f s (%.3f-%.3f); a second "
                  "read %.3f s (%.3f-%.3f)" % (
                      "", statistics.median(r1), min(r1), max(r1),
                      statistics.median(r2), min(r2), max(r2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
