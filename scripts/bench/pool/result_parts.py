"""Where the time of one result coming back goes (shared_bench.py's
"results" case, one RES MiB float64 array per task), part by part.

pool: a fork-started worker sends each result over a multiprocessing
Pipe, as a pool does: by pickle (pickling; the pipe; unpickling; the
parent's sum of the fresh array) or by forkshim.share of an ordinary
array (the worker's share() and pickling of the token; the parent's
unpickling (import + ack); its first sum (fault-in); a second sum (the sum
alone)).  Each part reports wall and CPU milliseconds and minor faults of
the process doing it.

copy: the ways a process can put RES MiB it has just written (a fresh
mapping, as a result is) into a new memfd: pwrite (and pwrite of a source
the kernel has read before); vmsplice into a pipe and splice into the
memfd (shim/shared.c's fill_data); both from a source written long
before (many MiB written since); mmap and memcpy (first-touch faults);
mmap, MADV_POPULATE_WRITE, memcpy; the same three after making the pages
huge through an advised mapping (shmem_enabled "advise"; the shim's way
is the splice); and memcpy into fresh anonymous memory and into
already-touched memory for scale.

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


def vmsplice_fn():
    """libc's vmsplice(fd, iov, 1, 0) for one (address, length), or None."""
    import ctypes

    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    try:
        fn = ctypes.CDLL(None, use_errno=True).vmsplice
    except AttributeError:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(Iovec), ctypes.c_ulong,
                   ctypes.c_uint]
    fn.restype = ctypes.c_ssize_t

    def vmsplice(fd, addr, n):
        got = fn(fd, ctypes.byref(Iovec(addr, n)), 1, 0)
        if got < 0:
            raise OSError(ctypes.get_errno(), "vmsplice")
        return got
    return vmsplice


def splice_in(fd, src, n, vmsplice):
    """shim/shared.c's fill_data: src's pages into a 1 MiB pipe by
    reference, spliced into fd (the kernel copies them through its own
    mapping)."""
    import fcntl
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ
        base = src.__array_interface__["data"][0]
        off = 0
        while off < n:
            got = vmsplice(w, base + off, min(1 << 20, n - off))
            while got:
                m = os.splice(r, fd, got, offset_dst=off)
                got -= m
                off += m
    finally:
        os.close(r)
        os.close(w)


def fresh_source(n):
    """n bytes written by this process just now, as a worker's result is:
    a new private anonymous mapping (advised huge, as numpy's memory),
    never read by the kernel.  (The mapping, to keep it alive; the array.)"""
    m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_HUGEPAGE)
    a = numpy.frombuffer(m, numpy.uint8)
    a[:] = 7
    return m, a


def copy_parts(res_mib, count):
    n = res_mib << 20
    hot = numpy.empty(n, numpy.uint8)
    hot[:] = 7
    done = numpy.empty(n, numpy.uint8)
    done[:] = 1
    vmsplice = vmsplice_fn()
    # Sources written before all the others (as shared_bench's workers
    # make their results in the pool's initializer): by the time one is
    # copied, 2 * count * RES MiB more have been written.
    early = [fresh_source(n) for _ in range(2 * count)]

    def pwrite(fd, src):
        os.ftruncate(fd, n)
        os.pwrite(fd, memoryview(src), 0)

    def mmap_copy(fd, src, populate=False, huge=False):
        os.ftruncate(fd, n)
        m = mmap.mmap(fd, n)
        if huge:
            m.madvise(mmap.MADV_HUGEPAGE)
        if populate:
            m.madvise(MADV_POPULATE_WRITE)
        v = numpy.frombuffer(m, numpy.uint8)
        numpy.copyto(v, src)
        del v
        m.close()

    def huge_then(fd, src, how):
        # shim/shared.c's copy under shmem_enabled "advise": the pages
        # made huge through an advised mapping, then filled.
        os.ftruncate(fd, n)
        m = mmap.mmap(fd, n)
        m.madvise(mmap.MADV_HUGEPAGE)
        m.madvise(MADV_POPULATE_WRITE)
        m.close()
        if how == "pwrite":
            os.pwrite(fd, memoryview(src), 0)
        else:
            splice_in(fd, src, n, vmsplice)

    ways = [("pwrite", pwrite),
            ("pwrite, a source the kernel read before",
             lambda fd, src: pwrite(fd, hot)),
            ("vmsplice+splice", lambda fd, src: splice_in(fd, src, n,
                                                          vmsplice)),
            ("pwrite, a source written long before",
             lambda fd, src: pwrite(fd, early.pop()[1])),
            ("vmsplice+splice, a source written long before",
             lambda fd, src: splice_in(fd, early.pop()[1], n, vmsplice)),
            ("mmap+memcpy", mmap_copy),
            ("mmap+POPULATE_WRITE+memcpy",
             lambda fd, src: mmap_copy(fd, src, True)),
            ("HUGEPAGE+POPULATE_WRITE, pwrite",
             lambda fd, src: huge_then(fd, src, "pwrite")),
            ("HUGEPAGE+POPULATE_WRITE, vmsplice+splice",
             lambda fd, src: huge_then(fd, src, "splice")),
            ("HUGEPAGE+POPULATE_WRITE+memcpy",
             lambda fd, src: mmap_copy(fd, src, True, True)),
            ("memcpy to fresh anon", None), ("memcpy to touched", None)]
    if vmsplice is None:
        ways = [w for w in ways if "splice" not in w[0]]
    got = {}
    for r in range(count):
        for name, fn in (ways if r % 2 == 0 else ways[::-1]):
            keep, src = fresh_source(n)
            if fn is None:
                t = now()
                if "fresh" in name:
                    numpy.empty(n, numpy.uint8)[:] = src
                else:
                    done[:] = src
                got.setdefault(name, []).append(since(t))
            else:
                fd = os.memfd_create("parts")
                try:
                    t = now()
                    fn(fd, src)
                    got.setdefault(name, []).append(since(t))
                finally:
                    os.close(fd)
            del src
            keep.close()
    print("copy: %d MiB into a new memfd from a source written just before "
          "(unless said), median of %d" % (res_mib, count))
    print_ways(got)


def read_parts(res_mib, count):
    n = res_mib << 20
    got = {}
    ways = ("plain", "MAP_POPULATE", "MADV_POPULATE_READ", "HUGEPAGE",
            "HUGEPAGE+POPULATE_READ")
    for r in range(count):
        for way in (ways if r % 2 == 0 else ways[::-1]):
            fd = os.memfd_create("parts")
            os.ftruncate(fd, n)
            if way.startswith("HUGEPAGE"):  # written through an advised map
                w = mmap.mmap(fd, n)
                w.madvise(mmap.MADV_HUGEPAGE)
                w.write(b"\1" * n)
                w.close()
            else:
                os.pwrite(fd, b"\1" * n, 0)
            t = now()
            flags = mmap.MAP_SHARED | (
                mmap.MAP_POPULATE if way == "MAP_POPULATE" else 0)
            m = mmap.mmap(fd, n, flags=flags, prot=mmap.PROT_READ)
            if way.startswith("HUGEPAGE"):
                m.madvise(mmap.MADV_HUGEPAGE)
            if way.endswith("POPULATE_READ"):
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
