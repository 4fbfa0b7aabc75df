"""Drive the preloaded shim from an unmodified /usr/bin/python3 via ctypes.

Run by the e2e_python driver as `python3 forkshim_ctypes.py` with
LD_PRELOAD=libforkshim.so.  The shim's symbols are looked up in the
process's global scope (ctypes.CDLL(None)); nothing is imported from the
project.  Prints one line per check, "ok: ..." or "FAIL: ...", then a
summary.  Exit status: 0 all passed, 1 a check failed, 3 the shim's
symbols are not in the process (started without the preload).
"""

import ctypes
import errno
import os
import sys

Handle = ctypes.c_uint64
PidT = ctypes.c_int


class Info(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("owner", PidT),
        ("flags", ctypes.c_uint),
        ("freezes", ctypes.c_uint),
        ("name", ctypes.c_char * 64),
    ]


def load_shim():
    lib = ctypes.CDLL(None, use_errno=True)
    try:
        lib.forkshim_freeze
    except AttributeError:
        return None
    lib.forkshim_freeze.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                    ctypes.c_char_p, ctypes.c_uint]
    lib.forkshim_freeze.restype = Handle
    lib.forkshim_thaw.argtypes = [Handle]
    lib.forkshim_thaw.restype = ctypes.c_int
    lib.forkshim_deref.argtypes = [Handle, ctypes.POINTER(ctypes.c_size_t)]
    lib.forkshim_deref.restype = ctypes.c_void_p
    lib.forkshim_find.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.forkshim_find.restype = Handle
    lib.forkshim_visible.argtypes = [Handle, PidT]
    lib.forkshim_visible.restype = ctypes.c_int
    lib.forkshim_info.argtypes = [Handle, ctypes.POINTER(Info)]
    lib.forkshim_info.restype = ctypes.c_int
    lib.forkshim_version.argtypes = []
    lib.forkshim_version.restype = ctypes.c_char_p
    return lib


shim = load_shim()
failures = 0
passed = 0


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
        print("ok: " + what)
    else:
        failures += 1
        print("FAIL: " + what)
    sys.stdout.flush()


def deref(h):
    """(address or None, length, errno)."""
    n = ctypes.c_size_t(0)
    ctypes.set_errno(0)
    p = shim.forkshim_deref(h, ctypes.byref(n))
    return p, n.value, ctypes.get_errno()


def call_errno(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return rc, ctypes.get_errno()


def pattern(n, seed):
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(n))


def address_of_bytes(b):
    # c_char_p over a bytes object points at the object's own storage.
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value


def address_of_bytearray(ba):
    return ctypes.addressof((ctypes.c_char * len(ba)).from_buffer(ba))


def child(r_fd, h_bytes, addr_bytes, data_bytes, h_array, addr_array,
          data_array, h_thawed_before):
    """Runs in the forked child; returns its exit status."""
    global failures
    failures = 0
    p, n, _ = deref(h_bytes)
    check(p == addr_bytes and n == len(data_bytes),
          "child: bytes handle derefs to the parent's address and length")
    check(p is not None and ctypes.string_at(p, n) == data_bytes,
          "child: bytes handle has the parent's bytes")
    p, n, _ = deref(h_array)
    check(p == addr_array and n == len(data_array),
          "child: bytearray handle derefs to the parent's address and length")
    check(p is not None and ctypes.string_at(p, n) == data_array,
          "child: bytearray handle has the parent's bytes")

    p, _, err = deref(h_thawed_before)
    check(p is None and err == errno.ESTALE,
          "child: handle thawed before the fork fails with ESTALE (errno %d)"
          % err)

    # The parent freezes after the fork and sends the handle down the pipe.
    raw = os.read(r_fd, 8)
    h_after = int.from_bytes(raw, sys.byteorder) if len(raw) == 8 else 0
    check(h_after != 0, "child: got the parent's post-fork handle")
    p, _, err = deref(h_after)
    check(p is None and err == errno.ENOENT,
          "child: handle frozen after the fork fails with ENOENT (errno %d)"
          % err)

    # The child's table is its own: thawing here leaves the parent's alone.
    rc, _ = call_errno(shim.forkshim_thaw, h_array)
    check(rc == 0, "child: thaws its copy of the bytearray handle")
    p, _, err = deref(h_array)
    check(p is None and err == errno.ESTALE,
          "child: its thawed handle fails with ESTALE (errno %d)" % err)
    return 0 if failures == 0 else 1


def main():
    if shim is None:
        print("forkshim symbols not found: the shim is not preloaded")
        return 3
    check(shim.forkshim_version() == b"0.1.0", "version is 0.1.0")

    data_bytes = pattern(100000, 3)
    addr_bytes = address_of_bytes(data_bytes)
    h_bytes = shim.forkshim_freeze(addr_bytes, len(data_bytes),
                                   b"py-bytes", 0)
    check(h_bytes != 0, "freezes a bytes object")

    data_array = bytearray(pattern(4097, 77))
    addr_array = address_of_bytearray(data_array)
    h_array = shim.forkshim_freeze(addr_array, len(data_array), None, 0)
    check(h_array != 0 and h_array != h_bytes, "freezes a bytearray")

    check(shim.forkshim_find(addr_bytes + 10, 1000) == h_bytes,
          "find gives the handle of the containing region")
    found, err = call_errno(shim.forkshim_find, addr_bytes + 99999, 2)
    check(found == 0 and err == errno.ENOENT,
          "find of a range running past the region fails with ENOENT")

    info = Info()
    check(shim.forkshim_info(h_bytes, ctypes.byref(info)) == 0,
          "info succeeds")
    check(info.addr == addr_bytes and info.len == len(data_bytes)
          and info.owner == os.getpid() and info.flags == 0
          and info.freezes == 1 and info.name == b"py-bytes",
          "info reports address, length, owner, flags, freezes and name")
    shim.forkshim_info(h_array, ctypes.byref(info))
    check(info.name == b"", "a region frozen without a name has name ''")

    again = shim.forkshim_freeze(addr_bytes, len(data_bytes), b"py-bytes", 0)
    shim.forkshim_info(h_bytes, ctypes.byref(info))
    check(again == h_bytes and info.freezes == 2,
          "freezing the same range again gives the same handle, 2 freezes")
    check(shim.forkshim_thaw(h_bytes) == 0, "one thaw of two")
    p, n, _ = deref(h_bytes)
    check(p == addr_bytes and n == len(data_bytes),
          "still frozen after one of two thaws")

    doomed = bytearray(b"x" * 512)
    h_thawed = shim.forkshim_freeze(address_of_bytearray(doomed), 512,
                                    b"doomed", 0)
    check(h_thawed != 0 and shim.forkshim_thaw(h_thawed) == 0,
          "freeze then thaw")
    p, _, err = deref(h_thawed)
    check(p is None and err == errno.ESTALE,
          "a thawed handle fails with ESTALE (errno %d)" % err)
    rc, err = call_errno(shim.forkshim_thaw, h_thawed)
    check(rc == -1 and err == errno.ESTALE,
          "thawing it again fails with ESTALE (errno %d)" % err)

    r_fd, w_fd = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(w_fd)
        try:
            status = child(r_fd, h_bytes, addr_bytes, data_bytes, h_array,
                           addr_array, bytes(data_array), h_thawed)
        except BaseException as e:  # the child must never fall through
            print("FAIL: child raised %r" % (e,))
            status = 2
        sys.stdout.flush()
        os._exit(status)
    os.close(r_fd)

    check(shim.forkshim_visible(h_bytes, pid) == 1,
          "visible(h, child) is 1 for a handle frozen before the fork")
    check(shim.forkshim_visible(h_bytes, 0) == 1,
          "visible(h, 0) is 1 when every child can see it")
    late = bytes(pattern(3000, 11))
    h_after = shim.forkshim_freeze(address_of_bytes(late), len(late),
                                   b"py-late", 0)
    check(h_after != 0, "freezes after the fork")
    check(shim.forkshim_visible(h_after, pid) == 0,
          "visible(h, child) is 0 for a handle frozen after the fork")
    os.write(w_fd, h_after.to_bytes(8, sys.byteorder))
    os.close(w_fd)

    _, status = os.waitpid(pid, 0)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
          "child exited 0 (status %#x)" % status)
    rc, err = call_errno(shim.forkshim_visible, h_bytes, pid)
    check(rc == -1 and err == errno.ESRCH,
          "visible() of a reaped child fails with ESRCH (errno %d)" % err)

    p, n, _ = deref(h_array)
    check(p == addr_array and n == len(data_array),
          "the child's thaw did not touch the parent's table")
    for h in (h_bytes, h_array, h_after):
        check(shim.forkshim_thaw(h) == 0, "thaw %#x" % h)
    p, _, err = deref(h_bytes)
    check(p is None and err == errno.ESTALE,
          "the last thaw removes the region (errno %d)" % err)

    print("python: %d passed, %d failed" % (passed, failures))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
