"""An unmodified /usr/bin/python3 under FORKSHIM_GUARD, through ctypes.

Run by the guard_python driver as `python3 guard_py.py MODE SCRIBBLE_LIB`
with the shim preloaded.  SCRIBBLE_LIB is a small C library whose
guard_py_scribble(p, offset, value) writes one byte.

  protect             freezes "py-table" (4 pages of an mmap) and writes
                      into its third page: the process must die
  faulthandler-after  faulthandler.enable() (after the shim's handler, which
                      FORKSHIM_GUARD=protect installed at load), then as
                      protect
  faulthandler-before faulthandler.enable() first; the freeze, with the
                      FORKSHIM_GUARD flag, installs the shim's handler; then
                      as protect
  foreign             faulthandler.enable(), a frozen region, then a crash
                      outside it (ctypes.string_at(8)): faulthandler's
                      report, none of the shim's
  fds                 prints "FD -> TARGET" for each descriptor it holds
  pool                FORKSHIM_GUARD=audit: a fork Pool of 2 workers dirties
                      pages of "py-weights" (through guard_py_scribble) and
                      of "py-lookup" (a bytearray, by slice assignment);
                      prints "pool ok", the workers' pids, "parent intact"
"""

import ctypes
import faulthandler
import mmap
import multiprocessing
import sys

PAGE = mmap.PAGESIZE
GUARD = 1

shim = ctypes.CDLL(None, use_errno=True)
shim.forkshim_freeze.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                 ctypes.c_char_p, ctypes.c_uint]
shim.forkshim_freeze.restype = ctypes.c_uint64
lib = ctypes.CDLL(sys.argv[2])
lib.guard_py_scribble.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.c_int]
lib.guard_py_scribble.restype = None


def address(buf):
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def freeze(buf, name, flags=0):
    h = shim.forkshim_freeze(address(buf), len(buf), name, flags)
    if h == 0:
        print("FAIL: freeze %s: errno %d" % (name, ctypes.get_errno()))
        sys.exit(1)
    return h


def violate(flags=0):
    table = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE)
    table.write(b"\x11" * (4 * PAGE))
    freeze(table, b"py-table", flags)
    print("frozen", flush=True)
    lib.guard_py_scribble(address(table), 2 * PAGE + 5, 1)
    print("FAIL: the write went through", flush=True)
    sys.exit(1)


# ---- pool ----

weights = None
lookup = None


def touch(task):
    kind, page = task
    if kind == "weights":
        lib.guard_py_scribble(address(weights), page * PAGE + 3, 9)
        return weights[page * PAGE + 3] == 9
    base = address(lookup)
    first = (base + PAGE - 1) // PAGE * PAGE - base  # first whole page
    lookup[first + page * PAGE:first + page * PAGE + 4] = b"abcd"
    return lookup[first + page * PAGE:first + page * PAGE + 4] == b"abcd"


def pool():
    global weights, lookup
    weights = mmap.mmap(-1, 8 * PAGE, flags=mmap.MAP_PRIVATE)
    weights.write(b"\x22" * (8 * PAGE))
    lookup = bytearray(b"\x33" * (16 * PAGE))
    freeze(weights, b"py-weights")
    freeze(lookup, b"py-lookup")
    # The region's page 0 holds the buffer's start: the first whole page
    # is page 1, or page 0 when malloc gave a page-aligned buffer.
    print("lookup first whole page %d" % (address(lookup) % PAGE != 0),
          flush=True)
    tasks = [("weights", p) for p in range(4)] + \
            [("lookup", p) for p in range(4)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as workers:
        results = workers.map(touch, tasks * 3, chunksize=1)
        workers.close()
        workers.join()
    print("pool %s" % ("ok" if all(results) else "FAILED"))
    intact = weights[:] == b"\x22" * (8 * PAGE) and \
        lookup == bytearray(b"\x33" * (16 * PAGE))
    print("parent intact %d" % intact, flush=True)


def main():
    mode = sys.argv[1]
    if mode == "protect":
        violate()
    elif mode == "faulthandler-after":
        faulthandler.enable()
        violate()
    elif mode == "faulthandler-before":
        faulthandler.enable()
        violate(GUARD)
    elif mode == "foreign":
        faulthandler.enable()
        table = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE)
        freeze(table, b"py-table", GUARD)
        print("crashing", flush=True)
        ctypes.string_at(8)
        print("FAIL: survived", flush=True)
        sys.exit(1)
    elif mode == "fds":
        import os
        for fd in sorted(os.listdir("/proc/self/fd"), key=int):
            try:
                print("%s -> %s" % (fd, os.readlink("/proc/self/fd/" + fd)))
            except OSError:
                pass  # the listing's own descriptor
    elif mode == "pool":
        pool()
    else:
        print("unknown mode " + mode)
        sys.exit(2)


main()
