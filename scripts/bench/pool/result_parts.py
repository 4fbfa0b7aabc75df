"""Where the time of one result coming back goes (shared_bench.py's
"results" case, one RES MiB float64 array per task), part by part.

pool: a fork-started worker sends each result over a multiprocessing
Pipe, as a pool does: by pickle (pickling; the pipe; unpickling; the
parent's sum of the fresh array) or by forkshim.share of an ordinary
array (the worker's share() and pickling of the token; the parent's
unpickling (import + ack); its first sum (fault-in); a second sum (the sum
alone)).  Each part reports wall and CPU milliseconds and minor faults of
the process doing it.

copy: the ways a process can put RES MiB it holds into a new memfd, each
in a fresh memfd, CPU ms: pwrite; fallocate then pwrite; mmap and memcpy
(first-touch faults); mmap, MADV_POPULATE_WRITE, memcpy; and memcpy into
fresh anonymous memory and into already-touched memory for scale.

read: a fresh read-only mapping of a filled memfd, read once: plain;
MAP_POPULATE; MADV_POPULATE_READ first.

    LD_PRELOAD=build/shim/libforkshim.so python3 result_parts.py \
        [--res-mib R] [--count N] [--parts pool,copy,read]
"""

import argparse
import mmap
import os
import pickle
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))

import numpy  # noqa: E402
import forkshim  # noqa: E402

MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23


def now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime, r.ru_minflt


def since(t):
    u = now()
    return ((u[0] - t[0]) * 1e3, (u[1] - t[1]) * 1e3, u[2] - t[2])


def worker(conn, way, n, count):
    from multiprocessing.reduction import ForkingPickler
    arrays = []
    for k in range(count):
        a = numpy.empty(n)
        a[:] = k
        arrays.append(a)
    conn.recv_bytes()  # go
    for a in arrays:
        t = now()
        if way == "pickle":
            data = bytes(ForkingPickler.dumps(a))
            parts = {"w:pickle": since(t)}
        else:
            ref = forkshim.share(a)
            parts = {"w:share()": since(t)}
            t = now()
            data = bytes(ForkingPickler.dumps(ref))
            parts["w:token pickle"] = since(t)
        conn.send_bytes(pickle.dumps(parts))  # ready
        t = now()
        conn.send_bytes(data)
        parts = {"w:send": since(t)}
        conn.send_bytes(pickle.dumps(parts))
        conn.recv_bytes()  # next
    conn.recv_bytes()  # the parent is done with every result


def pool_parts(res_mib, count):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    n = res_mib * (1 << 20) // 8
    table = {}
    for way in ("pickle", "share+copy"):
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=worker, args=(theirs, way, n, count))
        p.start()
        mine.send_bytes(b"go")
        for _ in range(count):
            parts = pickle.loads(mine.recv_bytes())
            t = now()
            data = mine.recv_bytes()
            parts["p:recv"] = since(t)
            parts.update(pickle.loads(mine.recv_bytes()))
            t = now()
            obj = pickle.loads(data)
            parts["p:unpickle"] = since(t)
            t = now()
            obj.sum()
            parts["p:first sum"] = since(t)
            t = now()
            obj.sum()
            parts["p:second sum"] = since(t)
            del obj, data
            for k, v in parts.items():
                table.setdefault((way, k), []).append(v)
            mine.send_bytes(b"next")
        mine.send_bytes(b"done")
        p.join()
    print("pool: %d results of %d MiB, fork worker; median per result"
          % (count, res_mib))
    print("| way | part | wall ms | CPU ms | faults |\n|---|---|---|---|---|")
    for (way, k), v in table.items():
        print("| %s | %s | %.1f | %.1f | %d |" % (
            way, k, statistics.median(x[0] for x in v),
            statistics.median(x[1] for x in v),
            statistics.median(x[2] for x in v)))
    print()


def print_ways(got):
    """One row per way: medians of its (wall ms, CPU ms, faults) samples."""
    print("| way | wall ms | CPU ms | faults |\n|---|---|---|---|")
    for name, v in got.items():
        print("| %s | %.1f | %.1f | %d |" % (
            name, statistics.median(x[0] for x in v),
            statistics.median(x[1] for x in v),
            statistics.median(x[2] for x in v)))
    print()


def copy_parts(res_mib, count):
    n = res_mib << 20
    src = numpy.empty(n, numpy.uint8)
    src[:] = 7
    srcb = memoryview(src)
    done = numpy.empty(n, numpy.uint8)
    done[:] = 1

    def pwrite(fd):
        os.ftruncate(fd, n)
        os.pwrite(fd, srcb, 0)

    def falloc_pwrite(fd):
        os.ftruncate(fd, n)
        os.posix_fallocate(fd, 0, n)
        os.pwrite(fd, srcb, 0)

    def chunked(fd):
        os.ftruncate(fd, n)
        step = 1 << 20
        for off in range(0, n, step):
            os.pwrite(fd, srcb[off:off + step], off)

    def mmap_copy(fd, populate=False):
        os.ftruncate(fd, n)
        m = mmap.mmap(fd, n)
        if populate:
            m.madvise(MADV_POPULATE_WRITE)
        numpy.copyto(numpy.frombuffer(m, numpy.uint8), src)
        m.close()

    ways = [("pwrite", pwrite), ("fallocate+pwrite", falloc_pwrite),
            ("pwrite 1 MiB chunks", chunked), ("mmap+memcpy", mmap_copy),
            ("mmap+POPULATE_WRITE+memcpy",
             lambda fd: mmap_copy(fd, True)),
            ("memcpy to fresh anon", None), ("memcpy to touched", None)]
    got = {}
    for r in range(count):
        for name, fn in (ways if r % 2 == 0 else ways[::-1]):
            if fn is None:
                t = now()
                if "fresh" in name:
                    numpy.empty(n, numpy.uint8)[:] = src
                else:
                    done[:] = src
                got.setdefault(name, []).append(since(t))
                continue
            fd = os.memfd_create("parts")
            try:
                t = now()
                fn(fd)
                got.setdefault(name, []).append(since(t))
            finally:
                os.close(fd)
    print("copy: %d MiB into a new memfd, median of %d" % (res_mib, count))
    print_ways(got)


def read_parts(res_mib, count):
    n = res_mib << 20
    got = {}
    ways = ("plain", "MAP_POPULATE", "MADV_POPULATE_READ")
    for r in range(count):
        for way in (ways if r % 2 == 0 else ways[::-1]):
            fd = os.memfd_create("parts")
            os.ftruncate(fd, n)
            os.pwrite(fd, b"\1" * n, 0)
            t = now()
            flags = mmap.MAP_SHARED | (
                mmap.MAP_POPULATE if way == "MAP_POPULATE" else 0)
            m = mmap.mmap(fd, n, flags=flags, prot=mmap.PROT_READ)
            if way == "MADV_POPULATE_READ":
                m.madvise(MADV_POPULATE_READ)
            numpy.frombuffer(m, numpy.uint64).sum()
            got.setdefault(way, []).append(since(t))
            m.close()
            os.close(fd)
    print("read: map + first read of %d MiB of a filled memfd, median of %d"
          % (res_mib, count))
    print_ways(got)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res-mib", type=int, default=16)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--parts", default="pool,copy,read")
    args = p.parse_args()
    print("shim %s, shmem_enabled: %s" % (
        forkshim.version() or "NOT LOADED",
        open("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read()
        .strip()))
    for part in args.parts.split(","):
        globals()[part + "_parts"](args.res_mib, args.count)


if __name__ == "__main__":
    main()
