"""Hand Python objects to worker processes without pickling them per task.

A forked worker already holds, copy-on-write, every object its parent had
when it was forked.  forkshim (libforkshim.so, preloaded with LD_PRELOAD)
keeps a table of *frozen* memory regions that forked children inherit;
this module freezes objects there and sends a 64-bit handle in their place,
which the worker turns back into the very same object::

    import multiprocessing as mp, numpy as np, forkshim
    arr = np.random.rand(32 * 2**20)               # 256 MiB of float64
    ref = forkshim.share(arr)                      # before the pool is forked
    with mp.get_context("fork").Pool(2) as pool:   # each task receives arr
        print(pool.map(np.sum, [ref] * 16))

``share(obj)`` pickles as that handle where it will resolve (fork-started
workers forked after share()); for every other receiver (spawn and
forkserver workers, a pool forked before share(), a worker's parent when
the worker returns share(result)) obj is put once into sealed shared
memory and a 64-byte token per region travels: the receiver gets it
rebuilt with read-only, zero-copy buffers (numpy arrays, bytes-like
objects; objects that are not buffers are pickled once, their buffers out
of band).  ``empty()``/``zeros()`` allocate arrays in shared memory that
share() seals in place.  Where neither works (no shim; an object that
cannot be put in shared memory) it pickles as the object's value and a
``FallbackWarning`` says why, at the line that called share().  A handle
or token that fails to resolve where it is unpickled (forged, thawed,
frozen after that process was forked, no shim there) gives an
``Unresolved`` whose first use raises ``HandleError`` naming the errno and
its reason.  Unpickling itself never raises, so a pool worker never dies
on such a task: the error comes back as the task's exception
(``pool.map()``, ``future.result()`` raise it in the parent) instead of
the pool waiting forever.  Run programs under the shim with ``python3 -m
forkshim prog.py``; without it everything works by value.

Pure Python (ctypes only), CPython >= 3.8.  The C ABI is described in
``shim/include/forkshim.h``.
"""

import collections
import contextlib
import ctypes
import errno
import gc
import itertools
import operator
import os
import pickle
import stat
import struct
import sys
import threading
import time
import warnings
import weakref

__version__ = "0.1.0"
__all__ = [
    "available", "version", "freeze", "thaw", "frozen", "share", "SharedRef",
    "unwrap", "resolve", "visible", "info", "sharing", "prepare_fork",
    "HandleError", "FallbackWarning", "Unresolved", "Info", "Sharing",
    "empty", "zeros", "returns_shared", "SharedWarning", "HugePagesWarning",
    "TOKEN_SIZE",
    "observe", "Observed", "FrozenMapping",
]


class HandleError(OSError):
    """A handle does not resolve in this process; ``errno`` says why:
    ENOENT (frozen after this process was forked), ESTALE (thawed), EBADF
    (not a handle of this process family), ENOSYS (shim not loaded)."""


class FallbackWarning(UserWarning):
    """share() sent an object by value: its handle would not resolve in
    the receiving process (shown once per object)."""


Info = collections.namedtuple("Info", "addr len owner flags freezes name")
Sharing = collections.namedtuple(
    "Sharing", "pages resident shared exclusive swapped")

# ---------------------------------------------------------------- the C ABI

_handle_t = ctypes.c_uint64
_SIZE_T_MAX = (1 << (8 * ctypes.sizeof(ctypes.c_size_t))) - 1


class _CInfo(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_void_p), ("len", ctypes.c_size_t),
                ("owner", ctypes.c_int), ("flags", ctypes.c_uint),
                ("freezes", ctypes.c_uint), ("name", ctypes.c_char * 64)]


class _CSharing(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in Sharing._fields]


def _fn(restype, *argtypes):
    return ctypes.CFUNCTYPE(restype, *argtypes, use_errno=True)


class _Api(ctypes.Structure):
    """struct forkshim_api, ABI 1."""
    _fields_ = [
        ("abi_version", ctypes.c_uint),
        ("size", ctypes.c_size_t),
        ("freeze", _fn(_handle_t, ctypes.c_void_p, ctypes.c_size_t,
                       ctypes.c_char_p, ctypes.c_uint)),
        ("thaw", _fn(ctypes.c_int, _handle_t)),
        ("deref", _fn(ctypes.c_void_p, _handle_t,
                      ctypes.POINTER(ctypes.c_size_t))),
        ("find", _fn(_handle_t, ctypes.c_void_p, ctypes.c_size_t)),
        ("visible", _fn(ctypes.c_int, _handle_t, ctypes.c_int)),
        ("info", _fn(ctypes.c_int, _handle_t, ctypes.POINTER(_CInfo))),
        ("sharing", _fn(ctypes.c_int, _handle_t, ctypes.POINTER(_CSharing))),
        ("version", ctypes.CFUNCTYPE(ctypes.c_char_p)),
    ]


class _Token(ctypes.Structure):
    """struct forkshim_token (SHARED.md): 64 plain bytes."""
    _fields_ = [("bytes", ctypes.c_char * 64)]


class _ApiShared(ctypes.Structure):
    """struct forkshim_api with the shared frozen regions appended."""
    _fields_ = _Api._fields_ + [
        ("alloc", _fn(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)),
        ("export_token", _fn(ctypes.c_int, _handle_t,
                             ctypes.POINTER(_Token))),
        ("import_token", _fn(ctypes.c_void_p, ctypes.POINTER(_Token),
                             ctypes.c_uint, ctypes.POINTER(ctypes.c_size_t))),
        ("release", _fn(ctypes.c_int, ctypes.c_void_p)),
    ]


_FORKSHIM_SHARED = 0x2  # freeze flag
TOKEN_SIZE = 64


def _load():
    """The shim's function table when libforkshim is in the process's global
    scope (preloaded), else None; an _ApiShared when the shim has shared
    frozen regions."""
    try:
        lib = ctypes.CDLL(None)
        lib.forkshim_version  # noqa: B018  (raises AttributeError if absent)
        get = lib.forkshim_api
    except (OSError, AttributeError):
        return None
    get.argtypes = [ctypes.c_uint]
    get.restype = ctypes.POINTER(_Api)
    table = get(1)
    if not table:
        return None
    api = table.contents
    if api.abi_version != 1 or api.size < ctypes.sizeof(_Api):
        return None
    if api.size >= ctypes.sizeof(_ApiShared):
        return ctypes.cast(table, ctypes.POINTER(_ApiShared)).contents
    return api


_api = _load()
# The shim has shared frozen regions (forkshim_alloc, _export, _import).
_sapi = _api if isinstance(_api, _ApiShared) else None


def _hint():
    """Without the shim, one line on stderr says how to enable it: in the
    main process only (not again in each spawn or forkserver worker), not
    while ``python3 -m forkshim`` starts, and not when FORKSHIM_QUIET is
    set to a non-empty value."""
    if _api is not None or os.environ.get("FORKSHIM_QUIET"):
        return
    if sys.argv and sys.argv[0] == "-m":  # python3 -m forkshim, starting
        return
    mp = sys.modules.get("multiprocessing.process")
    if mp is not None and mp.current_process().name != "MainProcess":
        return
    # This command line, to put after python3 -m forkshim (which hands its
    # arguments to the interpreter), when it is short enough to show.
    args = list(getattr(sys, "orig_argv", [None])[1:])  # Python >= 3.10
    if not args and sys.argv and os.path.isfile(sys.argv[0]):
        args = sys.argv[:1]
    import shlex
    cmd = shlex.join(args)
    if not args or len(cmd) > 60:
        cmd = "SCRIPT [ARGS...]"
    sys.stderr.write(
        "forkshim: the shim is not loaded, objects go to workers by value; "
        "to load it: python3 -m forkshim %s (FORKSHIM_QUIET=1 hides this)\n"
        % cmd)


_hint()


def available():
    """True when the shim is loaded in this process (forkshim_version and a
    forkshim_api table for ABI 1 resolve)."""
    return _api is not None


def version():
    """The shim's version string ("0.1.0"), or None without the shim."""
    return _api.version().decode() if _api is not None else None


def _errname(err):
    return errno.errorcode.get(err, "errno %d" % err)


_MEANING = {
    errno.ENOENT: "it was frozen after this process was forked, or by a "
                  "process this one was not forked from, so this process's "
                  "memory may not hold it (a parent's object: share() it "
                  "before starting the pool, or let share() send a token; "
                  "a worker's result: return forkshim.share(result))",
    errno.ESTALE: "it was thawed, here or in the parent before this process "
                  "was forked (a share() is thawed when its SharedRef is "
                  "released or garbage collected: keep a reference while "
                  "workers may still be forked)",
    errno.EBADF: "it is not a handle of this process family (a spawn, "
                 "forkserver or remote process, or a forged handle)",
    errno.ENOSYS: "forkshim is not loaded in this process (start it with "
                  "LD_PRELOAD=libforkshim.so)",
}


def _handle_error(err, handle, what=""):
    meaning = _MEANING.get(err, os.strerror(err))
    return HandleError(err, "forkshim handle %#x%s does not resolve in "
                            "process %d: %s: %s"
                       % (handle, what, os.getpid(), _errname(err), meaning))


def _deref(h):
    """(address or None, length, errno)."""
    n = ctypes.c_size_t(0)
    ctypes.set_errno(0)
    p = _api.deref(h, ctypes.byref(n))
    return p, n.value, (0 if p else ctypes.get_errno())


def _call(fn, *args):
    """(result, errno) of a shim call."""
    ctypes.set_errno(0)
    r = fn(*args)
    return r, ctypes.get_errno()


# ------------------------------------------------------- an object's memory

class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


_PyBUF_ANY_CONTIGUOUS = 0x0080 | 0x0010 | 0x0008
try:
    _get_buffer = ctypes.pythonapi.PyObject_GetBuffer
    _get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer),
                            ctypes.c_int]
    _get_buffer.restype = ctypes.c_int
    _release_buffer = ctypes.pythonapi.PyBuffer_Release
    _release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
    _release_buffer.restype = None
except AttributeError:  # not CPython
    _get_buffer = None

# ob_refcnt and ob_type: every object starts with them.
_HEAD = 2 * ctypes.sizeof(ctypes.c_void_p)


def _buffer_region(obj):
    """(address, length) of a contiguous, non-empty buffer obj exports, else
    None.  Works for read-only buffers too (bytes, read-only arrays)."""
    if _get_buffer is None:
        return None
    view = _PyBuffer()
    try:
        _get_buffer(obj, ctypes.byref(view), _PyBUF_ANY_CONTIGUOUS)
    except Exception:  # no buffer protocol, or not contiguous
        return None
    try:
        if view.buf and view.len > 0:
            return view.buf, view.len
        return None
    finally:
        _release_buffer(ctypes.byref(view))


def _regions(obj):
    """The object's own struct [id, id+size) and its data buffer (address,
    length) or None.

    The struct length is the smaller of the type's basic size and what
    __sizeof__ reports, so it never runs past the object's allocation into
    a neighbour (sys.getsizeof also counts separately allocated buffers and
    the GC header, which sits before id(obj)).  A buffer stored inside the
    struct (bytes) cuts the struct region short, so both can be frozen."""
    base = id(obj)
    t = type(obj)
    size = t.__basicsize__
    try:
        own = t.__sizeof__(obj)
        if type(own) is int and own < size:
            size = own
    except Exception:
        pass
    size = max(size, _HEAD)
    data = _buffer_region(obj)
    if data is not None:
        addr, n = data
        if addr < base + size and addr + n > base:
            if addr >= base + _HEAD:
                size = addr - base
            else:
                data = None
    return base, size, data


def _describe(obj):
    t = type(obj)
    nbytes = getattr(obj, "nbytes", None)
    if type(nbytes) is not int:
        try:
            nbytes = len(memoryview(obj).cast("B"))
        except Exception:
            nbytes = None
    if nbytes is not None:
        return "%s of %s" % (t.__name__, _size_text(nbytes))
    try:
        return "%s of %d items" % (t.__name__, len(obj))
    except Exception:
        return "a %s" % t.__name__


def _size_text(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (n, unit)
        n /= 1024.0


# ------------------------------------------------------------ freeze / thaw

class _Entry(object):
    """One object this process froze, kept alive until its last thaw."""
    __slots__ = ("obj", "addr", "size", "holds", "export", "warned")

    def __init__(self, obj, addr, size):
        self.obj = obj
        self.addr = addr
        self.size = size
        self.holds = []  # per freeze: the data region's handle, or 0
        self.export = None  # a memoryview pinning the buffer (no resize)
        self.warned = False


_frozen = {}  # struct handle -> _Entry
_by_addr = {}  # id(obj) -> struct handle
_lock = threading.Lock()
_pending_thaws = []  # from finalizers that found the lock taken


def _hold_lock_over_fork():
    # A child forked while another thread is between the shim's freeze and
    # the dictionaries' update would inherit a table entry without its
    # object: fork waits for that thread instead.
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_lock.acquire,
                            after_in_parent=_lock.release,
                            after_in_child=_lock.release)


_hold_lock_over_fork()


def _label(obj, name):
    if name is None:
        name = type(obj).__name__
    if isinstance(name, str):
        name = name.encode("utf-8", "replace")
    return bytes(name)[:63]


def _hold_data(data, label):
    """Freezes a data buffer, or takes one more freeze of a frozen region
    that already contains it (a view of a frozen array, a memoryview of a
    frozen bytes).  Best effort: 0 when it overlaps a region only in part."""
    if data is None:
        return 0
    addr, n = data
    alloc = _alloc_of(addr, n)
    if alloc is not None:  # forkshim.empty(): sealed in place, shared
        try:
            alloc.seal(label + b".data")
        except HandleError:
            return 0
        return _api.freeze(alloc.addr, alloc.len, label + b".data",
                           _FORKSHIM_SHARED)
    container = _api.find(addr, n)
    if container:
        ci = _CInfo()
        if _api.info(container, ctypes.byref(ci)) == 0:
            addr, n = ci.addr, ci.len
    return _api.freeze(addr, n, label + b".data", 0)


def _drain_pending():
    while _pending_thaws:
        _thaw_locked(_pending_thaws.pop(), quiet=True)


def freeze(obj, name=None):
    """Freezes obj and returns its handle (an int); keeps obj alive until
    the matching thaw().  Freezing the same object again returns the same
    handle and needs one more thaw.

    Frozen are the object's own struct, which is what the handle names, and,
    for objects exporting a contiguous buffer (bytes, bytearray, memoryview,
    array.array, numpy arrays), the data buffer as a second region; the
    buffer is pinned (a bytearray or array cannot be resized) until the
    last thaw.  A buffer that lies inside a frozen region (a view) takes one
    more freeze of that region; one that overlaps a frozen region only in
    part is left out.  Without the shim: returns 0 and freezes nothing.
    Raises HandleError with the shim's errno (EEXIST, ENOMEM, ...) when the
    object's struct cannot be frozen."""
    if _api is None:
        return 0
    base, size, data = _regions(obj)
    label = _label(obj, name)
    with _lock:
        _drain_pending()
        ctypes.set_errno(0)
        h = _api.freeze(base, size, label, 0)
        if not h:
            err = ctypes.get_errno()
            raise HandleError(err, "forkshim cannot freeze %s at %#x: %s: %s"
                              % (_describe(obj), base, _errname(err),
                                 os.strerror(err)))
        e = _frozen.get(h)
        if e is None:
            e = _Entry(obj, base, size)
            if data is not None:
                e.export = memoryview(obj)
            _frozen[h] = e
            _by_addr[base] = h
        e.holds.append(_hold_data(data, label))
    return h


def _thaw_locked(h, quiet=False):
    e = _frozen.get(h)
    if e is None:
        if quiet:
            return
        p, _, err = _deref(h)
        if p is None:
            raise _handle_error(err, h)
        raise ValueError("forkshim handle %#x was not made by forkshim.freeze"
                         % h)
    r, err = _call(_api.thaw, h)
    if r != 0 and not quiet:
        raise _handle_error(err, h)
    held = e.holds.pop()
    if held:
        _api.thaw(held)
    if not e.holds:
        del _frozen[h]
        del _by_addr[e.addr]
        if e.export is not None:
            e.export.release()


def thaw(obj_or_handle):
    """Undoes one freeze() of an object (or of a handle: an int is always
    taken as a handle).  At the last thaw the object is no longer kept
    alive.  Children forked earlier keep their snapshot.  Raises
    ValueError for an object that is not frozen, HandleError for a handle
    that does not resolve.  Without the shim: does nothing."""
    if _api is None:
        return
    with _lock:
        _drain_pending()
        if type(obj_or_handle) is int:
            h = obj_or_handle
        else:
            h = _by_addr.get(id(obj_or_handle))
            if h is None or _frozen[h].obj is not obj_or_handle:
                raise ValueError("%s is not frozen"
                                 % _describe(obj_or_handle))
        _thaw_locked(h)


def _thaw_finalizer(h):
    # Finalizers run wherever the collector does, maybe inside freeze():
    # never wait for the lock there.
    if _lock.acquire(blocking=False):
        try:
            _thaw_locked(h, quiet=True)
        finally:
            _lock.release()
    else:
        _pending_thaws.append(h)


@contextlib.contextmanager
def frozen(*objs, name=None):
    """Freezes every object for the duration of a with block; yields their
    handles as a tuple (zeros without the shim)."""
    handles = []
    try:
        for obj in objs:
            handles.append(freeze(obj, name))
        yield tuple(handles)
    finally:
        for obj, h in zip(objs, handles):
            if h:
                thaw(h)


def _handle_of(obj_or_handle):
    if type(obj_or_handle) is int:
        return obj_or_handle
    h = _by_addr.get(id(obj_or_handle))
    if h is None:
        raise ValueError("%s is not frozen" % _describe(obj_or_handle))
    return h


def _require_api():
    if _api is None:
        raise HandleError(errno.ENOSYS, "forkshim: ENOSYS: %s"
                          % _MEANING[errno.ENOSYS])


def info(obj_or_handle):
    """Info(addr, len, owner, flags, freezes, name) of the object's struct
    region (or of any handle)."""
    _require_api()
    h = _handle_of(obj_or_handle)
    out = _CInfo()
    r, err = _call(_api.info, h, ctypes.byref(out))
    if r != 0:
        raise _handle_error(err, h)
    return Info(out.addr, out.len, out.owner, out.flags, out.freezes,
                out.name.decode("utf-8", "replace"))


def sharing(obj_or_handle):
    """Sharing(pages, resident, shared, exclusive, swapped) of a frozen
    object's data buffer (its struct when it has none), as this process
    maps it now: `shared` pages are also mapped by another process, e.g. a
    forked worker that has not written them."""
    _require_api()
    h = _handle_of(obj_or_handle)
    e = _frozen.get(h)
    if e is not None and e.holds and e.holds[-1]:
        h = e.holds[-1]
    out = _CSharing()
    r, err = _call(_api.sharing, h, ctypes.byref(out))
    if r != 0:
        raise _handle_error(err, h)
    return Sharing(*(getattr(out, f) for f in Sharing._fields))


def visible(obj_or_handle, pid=0):
    """True when the live child pid forked by this process (0: every live
    child) can resolve the handle: it was frozen before the child's birth."""
    _require_api()
    h = _handle_of(obj_or_handle)
    r, err = _call(_api.visible, h, pid)
    if r < 0:
        if err == errno.ESRCH:
            raise ProcessLookupError(err, "pid %d is not a live child forked "
                                     "by this process" % pid)
        raise _handle_error(err, h)
    return r == 1


def resolve(handle):
    """The object a handle names, in any process forked after the freeze
    (or the one that froze it).  Raises HandleError otherwise; never
    dereferences memory the shim has not vouched for."""
    return _resolve(handle, None, None, None)


def _resolve(handle, typename, addr, length):
    if _api is None:
        _require_api()
    if type(handle) is not int or not 0 < handle < (1 << 64):
        raise HandleError(errno.EBADF, "forkshim: malformed handle %r"
                          % (handle,))
    what = " (a %s)" % typename if isinstance(typename, str) else ""
    p, n, err = _deref(handle)
    if p is None:
        raise _handle_error(err, handle, what)
    if addr is not None and (p != addr or n != length):
        raise HandleError(errno.EBADF, "forkshim handle %#x%s names [%#x, +%d)"
                          " here, not the object's [%#x, +%r)"
                          % (handle, what, p, n, addr or 0, length))
    # The object comes from the table of objects this process inherited,
    # never from casting an address: a handle frozen by other code, or
    # forged to match a region, cannot make us read a non-object.
    e = _frozen.get(handle)
    if (e is None or e.addr != p or e.size != n
            or (typename is not None and type(e.obj).__name__ != typename)):
        raise HandleError(errno.EBADF, "forkshim handle %#x%s does not name "
                          "an object frozen by forkshim.freeze in this "
                          "process family" % (handle, what))
    return e.obj


# ---------------------------------------------------- shared frozen regions
#
# A shared region (SHARED.md) lives in a sealed memfd that every process of
# the family can map read-only, whenever and however it was started; a
# 64-byte token names it.  share() uses one when a handle would not
# resolve where its pickle goes: spawn and forkserver workers, a pool
# forked before share(), a worker's result going back to its parent.


def _errtext(err):
    return "%s: %s" % (_errname(err), os.strerror(err))


# What an import's errno means, said from the importer's side.
_TOKEN_MEANING = {
    errno.EBADF: "the token is malformed or not of this process family "
                 "(forged, corrupted, or from another program)",
    errno.ESTALE: "it was thawed: the SharedRef that shared it was released "
                  "or garbage collected in the process that made it (keep "
                  "a reference while other processes may still receive it)",
    errno.ENOENT: "the process that shared it and the family's root "
                  "process have both exited",
    errno.EACCES: "the sharing process's memory cannot be opened from here "
                  "(another user, or a non-dumpable process)",
    errno.ENOSYS: "forkshim is not loaded in this process (start it with "
                  "python3 -m forkshim SCRIPT)",
}


def _token_error(err, what):
    meaning = _TOKEN_MEANING.get(err, os.strerror(err))
    return HandleError(err, "forkshim token%s does not resolve in process "
                            "%d: %s: %s" % (what, os.getpid(),
                                            _errname(err), meaning))


def _memory_del(self):
    free = self.__dict__.pop("_free", None)
    if free is not None:
        free()


_memory_classes = {}


def _memory(addr, n, free):
    """A writable ctypes char array over [addr, addr+n) that calls free()
    once it is collected (every memoryview and array over it gone)."""
    cls = _memory_classes.get(n)
    if cls is None:
        cls = type("_Memory", (ctypes.c_char * n,), {"__del__": _memory_del})
        if len(_memory_classes) < 64:
            _memory_classes[n] = cls
    m = cls.from_address(addr)
    m._free = free
    return m


class _Alloc(object):
    """forkshim_alloc memory: writable until its first shared freeze, then
    read-only for good; unmapped when its last array is collected."""
    __slots__ = ("addr", "len", "hold", "arrays", "__weakref__")

    def __init__(self, addr, n):
        self.addr = addr
        self.len = n
        self.hold = 0  # the shared freeze the memory itself keeps
        self.arrays = []  # weak references to arrays made over it

    def free(self):
        _allocs.pop(self.addr, None)
        if self.hold:
            _api.thaw(self.hold)
            self.hold = 0
        else:
            _sapi.release(self.addr)

    def seal(self, label):
        """Freezes the whole allocation shared (no copy); the arrays made
        over it become non-writeable first (the pages turn read-only)."""
        if self.hold:
            return self.hold
        for ref in self.arrays:
            a = ref()
            if a is not None:
                a.flags.writeable = False
        ctypes.set_errno(0)
        h = _api.freeze(self.addr, self.len, label, _FORKSHIM_SHARED)
        if not h:
            err = ctypes.get_errno()
            for ref in self.arrays:
                a = ref()
                if a is not None:
                    a.flags.writeable = True
            why = (" (a child forked after forkshim.empty() maps it "
                   "writable: share() it before forking)"
                   if err == errno.EBUSY else "")
            raise HandleError(err, "forkshim cannot freeze shared memory at "
                              "%#x: %s%s" % (self.addr, _errtext(err), why))
        self.hold = h
        return h


_allocs = {}  # address -> _Alloc


def _alloc_of(addr, n):
    """The _Alloc holding [addr, addr+n), or None."""
    for a in list(_allocs.values()):
        if a.addr <= addr and addr + n <= a.addr + a.len:
            return a
    return None


def _shared_api():
    if _sapi is None:
        raise HandleError(errno.ENOSYS, "forkshim: ENOSYS: %s" % (
            _MEANING[errno.ENOSYS] if _api is None else
            "this libforkshim has no shared frozen regions (ABI table of "
            "%d bytes): use a newer build" % _api.size))
    return _sapi


def _raw_alloc(n, label):
    api = _shared_api()
    ctypes.set_errno(0)
    p = api.alloc(max(n, 1), label)
    if not p:
        err = ctypes.get_errno()
        raise MemoryError("forkshim_alloc(%d) failed: %s" % (n, _errtext(err)))
    a = _Alloc(p, max(n, 1))
    _allocs[p] = a
    return a, _memory(p, max(n, 1), a.free)


def empty(shape, dtype=float, order="C", name=None):
    """A writable numpy array in shared memory (forkshim_alloc): fill it,
    then share() it: no copy, every worker maps these very pages.  At its
    first share() it becomes read-only for good (writes raise ValueError;
    a view made earlier that is still writeable crashes on a write: make
    views after share()).  Its memory is freed with its last array.
    Without shared regions in the shim: numpy.empty."""
    import numpy
    dt = numpy.dtype(dtype)
    if _sapi is None:
        return numpy.empty(shape, dt, order)
    count = 1
    for d in (shape if isinstance(shape, (tuple, list)) else (shape,)):
        count *= operator.index(d)
    n = count * dt.itemsize
    a, mem = _raw_alloc(n, _label(None, name or "forkshim.empty"))
    view = memoryview(mem).cast("B")[:n]
    arr = numpy.ndarray(shape, dt, buffer=view, order=order)
    a.arrays.append(weakref.ref(arr))
    return arr


def zeros(shape, dtype=float, order="C", name=None):
    """empty(), zero-filled (fresh shared memory is zeros: no writes)."""
    return empty(shape, dtype, order, name)


def _export(h):
    tok = _Token()
    ctypes.set_errno(0)
    if _sapi.export_token(h, ctypes.byref(tok)) != 0:
        err = ctypes.get_errno()
        raise _handle_error(err, h)
    return ctypes.string_at(ctypes.addressof(tok), TOKEN_SIZE)


def _import(raw, what=""):
    """A read-only memoryview ('B') of the region a token names; the
    mapping is released when the last view over it is collected."""
    api = _shared_api()
    if type(raw) is not bytes or len(raw) != TOKEN_SIZE:
        raise HandleError(errno.EBADF, "forkshim: malformed token %r"
                          % (raw[:16] if isinstance(raw, bytes) else raw,))
    tok = _Token.from_buffer_copy(raw)
    n = ctypes.c_size_t(0)
    ctypes.set_errno(0)
    p = api.import_token(ctypes.byref(tok), 0, ctypes.byref(n))
    if not p:
        raise _token_error(ctypes.get_errno(), what)
    if n.value == 0:
        api.release(p)
        return memoryview(b"")
    mem = _memory(p, n.value, lambda: api.release(p))
    return memoryview(mem).cast("B").toreadonly()


def _shared_hold(addr, n, label):
    """One shared freeze of a region holding [addr, addr+n): (handle, the
    region's address).  Memory of forkshim.empty is sealed in place;
    memory frozen privately by share() is moved to a shared freeze (one
    copy, pwrite); other memory is copied once.  Caller holds _lock."""
    a = _alloc_of(addr, n)
    if a is not None:
        a.seal(label)
        h = _api.freeze(a.addr, a.len, label, _FORKSHIM_SHARED)
        if not h:
            err = ctypes.get_errno()
            raise HandleError(err, "forkshim cannot freeze shared memory: %s"
                              % _errtext(err))
        return h, a.addr
    c = _api.find(addr, n)
    if c:
        ci = _CInfo()
        if _api.info(c, ctypes.byref(ci)) == 0:
            if ci.flags & _FORKSHIM_SHARED:
                h = _api.freeze(ci.addr, ci.len, label, _FORKSHIM_SHARED)
                if h:
                    return h, ci.addr
            else:
                h = _move_to_shared(c, ci)
                if h:
                    return h, ci.addr
    else:
        ctypes.set_errno(0)
        h = _api.freeze(addr, n, label, _FORKSHIM_SHARED)
        if h:
            return h, addr
    # Frozen in part, or by other code: one copy into new shared memory.
    fresh, mem = _raw_alloc(n, label)
    ctypes.memmove(fresh.addr, addr, n)
    fresh.seal(label)
    h = _api.freeze(fresh.addr, fresh.len, label, _FORKSHIM_SHARED)
    del mem  # its own freeze goes with it; the caller's h keeps the region
    return h, fresh.addr


def _move_to_shared(c, ci):
    """A data region frozen privately only by freeze()'s holds: thawed and
    frozen again shared, as many times; returns one more shared freeze, or
    0 when other code holds it too."""
    entries = [e for e in _frozen.values() if c in e.holds]
    if sum(e.holds.count(c) for e in entries) != ci.freezes:
        return 0
    for _ in range(ci.freezes):
        _api.thaw(c)
    h = _api.freeze(ci.addr, ci.len, ci.name, _FORKSHIM_SHARED)
    if not h:  # put the private freezes back
        for _ in range(ci.freezes):
            c2 = _api.freeze(ci.addr, ci.len, ci.name, 0)
        for e in entries:
            e.holds[:] = [c2 if x == c else x for x in e.holds]
        return 0
    for _ in range(ci.freezes):
        _api.freeze(ci.addr, ci.len, ci.name, _FORKSHIM_SHARED)
    for e in entries:
        e.holds[:] = [h if x == c else x for x in e.holds]
    return h


def _address(buf):
    """Address of a contiguous buffer (PyObject_GetBuffer), or None."""
    r = _buffer_region(buf)
    return r[0] if r is not None else None


def _extent(a):
    """(low, high) byte offsets of every element of ndarray a from its data
    pointer (strides may be negative)."""
    lo = hi = 0
    for d, s in zip(a.shape, a.strides):
        if d == 0:
            return 0, 0
        if s < 0:
            lo += s * (d - 1)
        else:
            hi += s * (d - 1)
    return lo, hi + a.itemsize


def _rebuild_buffer(buf, fmt, shape):
    """A shared top-level bytes, bytearray, memoryview or array.array: a
    read-only memoryview with the original's format and shape."""
    v = memoryview(buf)
    if v.format != "B":
        v = v.cast("B")
    try:
        v = v.cast(fmt, shape)
    except (TypeError, ValueError):
        pass
    return v.toreadonly()


def _rebuild_strided(buf, dtype, shape, strides, offset):
    """A non-contiguous ndarray over the bytes its elements span."""
    import numpy
    a = numpy.ndarray(shape, dtype, buffer=buf, offset=offset,
                      strides=strides)
    a.flags.writeable = False
    return a


class _Top(object):
    """The shared object when it is bytes-like: the pickler never asks
    reducer_override about bytes (nor, in C, about bytearray)."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj


class _SharedPickler(pickle.Pickler):
    """Protocol 5; big buffers go out of band.  The top-level object, when
    a bytes-like buffer, becomes a read-only memoryview; non-contiguous
    numpy views go as a view over the bytes they span."""

    def __init__(self, f, top, callback, notes):
        pickle.Pickler.__init__(self, f, protocol=5,
                                buffer_callback=callback)
        self._top = top
        self._notes = notes

    def reducer_override(self, obj):
        t = type(obj)
        if t is _Top:
            obj = obj.obj
            t = type(obj)
            v = memoryview(obj)
            if not v.c_contiguous:
                self._notes.append("a non-contiguous memoryview is copied "
                                   "(%s)" % _size_text(v.nbytes))
                v = memoryview(v.tobytes())
            fmt = obj.typecode if t.__name__ == "array" else v.format
            return (_rebuild_buffer,
                    (pickle.PickleBuffer(v.cast("B") if v.format != "B"
                                         else v), fmt, v.shape))
        np = sys.modules.get("numpy")
        if (np is not None and t is np.ndarray and not obj.dtype.hasobject
                and obj.size > 0 and not obj.flags.c_contiguous
                and not obj.flags.f_contiguous):
            lo, hi = _extent(obj)
            span = hi - lo
            if span > 2 * obj.nbytes + (1 << 16):
                self._notes.append(
                    "a non-contiguous view of %s spans %s: its elements "
                    "are copied into contiguous shared memory"
                    % (_size_text(obj.nbytes), _size_text(span)))
                return NotImplemented if obj is not self._top else (
                    _rebuild_strided, (np.ascontiguousarray(obj), obj.dtype,
                                       obj.shape, None, 0))
            base = obj.__array_interface__["data"][0] + lo
            raw = (ctypes.c_char * span).from_address(base)
            raw._owner = obj  # keeps the memory alive while pickling
            return (_rebuild_strided,
                    (pickle.PickleBuffer(memoryview(raw).cast("B")),
                     obj.dtype, obj.shape, obj.strides, -lo))
        return NotImplemented


_BYTES_LIKE = (bytes, bytearray, memoryview, __import__("array").array)
_INLINE = 4096  # in-band pickles up to this size travel in the task


def _pack(obj, label):
    """Pickles obj once into shared memory: (tokens, spans, inline,
    handles, notes) where spans[i] = (token index, offset, length) of the
    i-th out-of-band buffer, spans[-1] the in-band pickle's when it does not
    travel inline, and handles the shared freezes to thaw later."""
    import io
    buffers, notes = [], []
    f = io.BytesIO()
    _SharedPickler(f, obj, buffers.append, notes).dump(
        _Top(obj) if isinstance(obj, _BYTES_LIKE) else obj)
    inband = f.getbuffer()
    tokens, spans, handles, where = [], [], [], {}

    def place(addr, n):
        h, base = _shared_hold(addr, n, label)
        handles.append(h)
        if h not in where:
            where[h] = len(tokens)
            tokens.append(_export(h))
        return (where[h], addr - base, n)

    try:
        with _lock:
            _drain_pending()
            for pb in buffers:
                raw = pb.raw()
                if raw.nbytes == 0:
                    spans.append(None)
                    continue
                spans.append(place(_address(raw), raw.nbytes))
            inline = None
            if len(inband) <= _INLINE:
                inline = bytes(inband)
            else:
                a, mem = _raw_alloc(len(inband), label + b".pickle")
                ctypes.memmove(a.addr, _address(inband), len(inband))
                spans.append(place(a.addr, len(inband)))
                del mem  # the region lives until the handles are thawed
    except BaseException:
        for h in handles:
            _api.thaw(h)
        raise
    finally:
        inband.release()
    return tuple(tokens), tuple(spans), inline, handles, notes


_cache = collections.OrderedDict()  # per worker: package -> object
_CACHE_MAX = 32


def _load_shared(version, tokens, spans, inline, typename, ack=None):
    """Unpickles a share() proxy sent by token: the object rebuilt from
    shared memory, its buffers zero-copy and read-only; or an Unresolved
    whose first use raises the HandleError.  Never raises (see Unresolved).
    A worker keeps the last few objects it rebuilt, so tasks carrying the
    same share() unpickle it once per worker."""
    what = " (a %s)" % typename if isinstance(typename, str) else ""
    try:
        if version != 1:
            raise HandleError(errno.EBADF, "forkshim: share() pickle of "
                              "version %r (this module reads 1)" % (version,))
        key = (tokens, spans, inline)
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        views = [_import(t, what) for t in tokens]
        if ack is not None:  # a worker's result: mapped here now
            _send_ack(ack)
        bufs = [(views[s[0]][s[1]:s[1] + s[2]] if s is not None else b"")
                for s in (spans if inline is not None else spans[:-1])]
        if inline is None:
            i, off, n = spans[-1]
            inband = views[i][off:off + n]
        else:
            inband = inline
        obj = pickle.loads(inband, buffers=bufs)
        mp = sys.modules.get("multiprocessing")
        if mp is not None and mp.parent_process() is not None:
            _cache[key] = obj
            while len(_cache) > _CACHE_MAX:
                _cache.popitem(last=False)
        return obj
    except Exception as e:  # HandleError, or a forged stream's fields
        return _unresolved(e)


def returns_shared(fn):
    """Decorator for a worker function: its result goes back by
    forkshim.share(result) (zero-copy numpy arrays in the parent).  The
    function stays picklable by name for spawn and forkserver workers.
    Warnings about a result point at the decorated function (in a worker
    nothing of the user's is on the stack when it is shared)."""
    import functools

    code = getattr(fn, "__code__", None)
    site = None
    if code is not None:
        site = (code.co_filename, code.co_firstlineno,
                getattr(fn, "__module__", None) or "?",
                getattr(fn, "__globals__", None))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return SharedRef(fn(*args, **kwargs), None, site or _user_site())
    return wrapper


# ------------------------------------------------------------------- share

def _readonly_view(obj):
    """A read-only view of a buffer object (numpy: an ndarray view)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        v = obj.view()
        v.flags.writeable = False
        return v
    return memoryview(obj).toreadonly()


def _is_readonly(obj):
    flags = getattr(obj, "flags", None)
    return type(obj) is bytes or (
        flags is not None and getattr(flags, "writeable", None) is False)


def _restore(handle, typename, addr, length, readonly=False):
    """Unpickles a share() proxy sent by handle: the original object (or a
    read-only view of it), or an Unresolved stand-in that raises the
    HandleError at its first use.  Never raises: a multiprocessing worker
    that fails to unpickle a task exits (pool.worker takes an OSError from
    its queue for a closed pipe) and the task is lost."""
    try:
        obj = _resolve(handle, typename, addr, length)
        if not readonly or _is_readonly(obj):
            return obj
        return _readonly_view(obj)
    except Exception as e:  # HandleError, or a forged stream's fields
        return _unresolved(e)


def _readonly_copy(obj):
    """Unpickles a read-only share() proxy sent by value."""
    try:
        return _readonly_view(obj)
    except Exception as e:
        return _unresolved(e)


def _unresolved(e):
    """The Unresolved an unpickling function returns for exception e: its
    HandleError, or EBADF for a malformed pickle's (forged fields)."""
    if isinstance(e, HandleError):
        return Unresolved(e)
    return Unresolved(HandleError(
        errno.EBADF, "forkshim: malformed share() pickle (%s: %s)"
        % (type(e).__name__, e)))


def _raise_unresolved(self, *args, **kwargs):
    raise object.__getattribute__(self, "error")


class Unresolved(object):
    """What unpickling a share() handle gives where it does not resolve (a
    forged or stale handle, a process that does not inherit the object, a
    process without the shim).  Its first use (attributes, len(), [],
    iteration, calls, arithmetic, comparisons, bool(), hash(), isinstance()
    against another class, numpy.asarray(), pickling it on) raises the
    HandleError that names the errno and its reason, as does
    ``forkshim.unwrap(x)``; ``x.error`` is that exception.

    Unpickling itself never raises: in a multiprocessing Pool worker (and
    a ProcessPoolExecutor's) an exception while the task is unpickled
    kills the worker and loses the task, so the parent would wait forever.
    Raised where the worker function touches the object, the HandleError
    travels back as the task's exception: pool.map(), future.result()
    raise it in the parent."""

    __slots__ = ("error",)

    def __init__(self, error):
        object.__setattr__(self, "error", error)

    def __repr__(self):
        e = object.__getattribute__(self, "error")
        return "<forkshim.Unresolved: %s>" % (e.strerror or e)

    __str__ = __repr__

    def __getattr__(self, name):
        raise object.__getattribute__(self, "error")

    @property
    def __class__(self):
        # isinstance(x, C) for any C other than Unresolved asks __class__.
        raise object.__getattribute__(self, "error")

    def __setattr__(self, name, value):
        raise object.__getattribute__(self, "error")

    __delattr__ = __setattr__


for _name in (
        "__call__ __len__ __iter__ __reversed__ __contains__ __getitem__ "
        "__setitem__ __delitem__ __bool__ __hash__ __eq__ __ne__ __lt__ "
        "__le__ __gt__ __ge__ __index__ __int__ __float__ __complex__ "
        "__bytes__ __buffer__ __array__ __enter__ __exit__ __await__ "
        "__aiter__ __reduce__ __reduce_ex__ __getstate__ __copy__ "
        "__deepcopy__ __neg__ __pos__ __abs__ __invert__ __round__ "
        "__trunc__ __floor__ __ceil__ __fspath__").split():
    setattr(Unresolved, _name, _raise_unresolved)
for _op in ("add sub mul matmul truediv floordiv mod divmod pow lshift "
            "rshift and xor or").split():
    for _name in ("__%s__", "__r%s__", "__i%s__"):
        setattr(Unresolved, _name % _op, _raise_unresolved)
del _name, _op


def _unusable_reason(handle):
    """None when a pickle of handle made now will resolve wherever it is
    unpickled by this process's fork-started workers; else why not."""
    if _api is None:
        return "forkshim is not loaded in this process"
    if not handle:
        return "the object could not be frozen"
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        return ("it is pickled in a multiprocessing worker (a result going "
                "to its parent), which does not resolve this process's "
                "handles")
    ctx = sys.modules.get("multiprocessing.context")
    if ctx is not None:
        popen = ctx.get_spawning_popen()
        if popen is not None and getattr(popen, "method", None) != "fork":
            return ("it is pickled to start a %s process, which does not "
                    "inherit this process's memory"
                    % getattr(popen, "method", "new"))
    proc = sys.modules.get("multiprocessing.process")
    if proc is not None:
        try:
            children = list(proc._children)
        except RuntimeError:  # the set changed while we copied it
            return "this process is starting or reaping workers right now"
        for child in children:
            popen = getattr(child, "_popen", None)
            method = getattr(popen, "method", "fork")
            if method != "fork" and getattr(popen, "returncode", 0) is None:
                return ("this process has live %s workers, which do not "
                        "inherit its memory" % method)
    r, err = _call(_api.visible, handle, 0)
    if r == 1:
        return None
    if r == 0:
        return ("a live child of this process was forked before the object "
                "was frozen (share() it before starting the pool)")
    return "%s: %s" % (_errname(err), _MEANING.get(err, os.strerror(err)))


# Results a worker sent by token.  The shim's table names a shared freeze
# of ordinary memory by the freezer's address: were that memory freed and
# reused for the next result, a freeze of the same range would be taken
# for this one's; and a spawn or forkserver worker is the root of its own
# process family (SHARED.md), so its regions end when it exits.  So a
# result stays frozen, with what it was copied from, until its receiver
# has mapped it.  The receiver says so right after importing the tokens:
# it opens this process's ack pipe through /proc/PID/fd/N (the access the
# shim's import needs anyway) and writes the result's number; then the
# result is thawed here (the receiver's mapping keeps the pages).  A worker
# about to exit waits for the acks of what it sent, until they come, its
# parent exits, or _RESULT_WAIT seconds pass (a result nobody unpickles).
_sent = {}  # result number -> (handles, object)
_ack = None  # (pid, read fd, write fd, the pipe's inode), made on first use
_RESULT_WAIT = 5.0
_ACK = struct.Struct("=Q")
_result_numbers = itertools.count(1)


def _ack_pipe():
    """This process's ack pipe (a new one in a forked child, which owns
    none of its parent's results)."""
    global _ack, _sent
    if _ack is not None and _ack[0] == os.getpid():
        return _ack
    if _ack is not None:
        os.close(_ack[1])
        os.close(_ack[2])
        _sent = {}
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    _ack = (os.getpid(), r, w, os.fstat(r).st_ino)
    util = __import__("multiprocessing.util").util
    # After a Queue's feeder thread has pickled and sent what was put
    # (its join runs at -5): a result put last is in _sent by then.
    util.Finalize(None, _wait_results, exitpriority=-10)
    return _ack


def _take_acks():
    """Thaws the results whose acks came."""
    if _ack is None or _ack[0] != os.getpid():
        return
    while True:
        try:
            data = os.read(_ack[1], _ACK.size * 512)
        except (BlockingIOError, InterruptedError):
            return
        for (key,) in _ACK.iter_unpack(data[:len(data) // 8 * 8]):
            rec = _sent.pop(key, None)
            if rec is not None:
                for h in rec[0]:
                    _api.thaw(h)
        if len(data) < _ACK.size * 512:
            return


def _wait_results():
    """At a worker's exit: until every result it sent is mapped by its
    receiver, the parent has exited, or _RESULT_WAIT seconds passed."""
    import select
    deadline = time.monotonic() + _RESULT_WAIT
    mp = sys.modules.get("multiprocessing")
    parent = mp.parent_process() if mp is not None else None
    gone = getattr(parent, "sentinel", None)
    while True:
        _take_acks()
        left = deadline - time.monotonic()
        if not _sent or left <= 0 or _ack is None:
            return
        fds = [_ack[1]] + ([gone] if gone is not None else [])
        try:
            if gone in select.select(fds, [], [], left)[0]:
                return  # the parent exited: nobody will map them
        except (OSError, ValueError):
            return


def _sent_result(obj, handles):
    """Records a result sent by token; what its receiver needs to ack it."""
    _take_acks()
    pid, _, w, ino = _ack_pipe()
    key = next(_result_numbers)
    _sent[key] = (handles, obj)
    return (pid, w, ino, key)


def _send_ack(ack):
    """Tells a result's sender that its tokens are mapped here (see _sent).
    Writes only to the very pipe the sender named (a FIFO of that inode);
    anything else is ignored."""
    try:
        pid, fd, ino, key = ack
        path = "/proc/%d/fd/%d" % (pid, fd)
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return
        f = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if os.fstat(f).st_ino == ino:
                os.write(f, _ACK.pack(key))
        finally:
            os.close(f)
    except (OSError, TypeError, ValueError, OverflowError, struct.error):
        pass


_not_loaded_registry = {}  # warnings' once-per-line registry
_locked = {}  # id(array) -> number of live SharedRefs that made it read-only
_pack_lock = threading.Lock()
_HERE = os.path.dirname(os.path.abspath(__file__))
_NOT_USER = (_HERE, os.path.dirname(os.__file__))  # this package, stdlib


def _user_site(depth=2):
    """(filename, lineno, module, globals) of the innermost frame outside
    forkshim and the standard library (the user's call of share())."""
    f = sys._getframe(depth)
    first = f
    while f is not None:
        name = os.path.abspath(f.f_code.co_filename)
        if not name.startswith(_NOT_USER) or "site-packages" in name \
                or "dist-packages" in name:
            break
        f = f.f_back
    f = f or first
    return (f.f_code.co_filename, f.f_lineno,
            f.f_globals.get("__name__", "?"), f.f_globals)


def _release_ref(handle, holds, locked):
    """SharedRef's finalizer: thaws share()'s freezes and makes the parent's
    array writeable again when no other SharedRef holds it read-only."""
    if handle:
        _thaw_finalizer(handle)
    while holds:
        _api.thaw(holds.pop())
    for a in locked:
        n = _locked.get(id(a), 1) - 1
        if n > 0:
            _locked[id(a)] = n
            continue
        _locked.pop(id(a), None)
        data = a.__array_interface__["data"][0]
        alloc = _alloc_of(data, max(a.nbytes, 1)) if a.nbytes else None
        if alloc is None or not alloc.hold:  # sealed memory stays read-only
            try:
                a.flags.writeable = True
            except ValueError:
                pass
    del locked[:]


class SharedRef(object):
    """What share() returns: pickles as a handle, a token, or the value.

    ``ref.obj`` is the object.  Where a SharedRef arrives without being
    pickled (the arguments of a fork-started Process, an os.fork child) it
    stands in for the object: attributes, len(), [], iteration, ``in`` and
    numpy.asarray() pass through; ``forkshim.unwrap(x)`` gives the object.
    The freezes share() made are undone by ``release()``, at the end of a
    ``with`` block, or when the SharedRef is garbage collected; workers
    already forked keep their snapshot, and processes that imported a
    token keep their mapping.  A SharedRef made in a multiprocessing worker
    (a result) keeps its shared memory until its receiver has mapped it
    (the receiver acks it, see _sent), whatever becomes of the SharedRef;
    the worker's exit waits for that."""

    __slots__ = ("obj", "readonly", "handle", "_finalizer", "_warned",
                 "_site", "_pkg", "_holds", "_locked", "_result",
                 "__weakref__")

    def __init__(self, obj, readonly=None, _site=None):
        np = sys.modules.get("numpy")
        is_array = np is not None and isinstance(obj, np.ndarray)
        if readonly is None:
            readonly = is_array
        self.obj = obj
        self.readonly = bool(readonly)
        self._site = _site or _user_site()
        self._warned = set()
        self._pkg = None
        self._holds = []
        self._locked = []
        self._finalizer = None
        self.handle = 0
        mp = sys.modules.get("multiprocessing")
        self._result = mp is not None and mp.parent_process() is not None
        if self._result and _sapi is not None:
            # The exit's wait registered now, in the user's thread: a
            # Queue's feeder pickles a put result later, maybe while the
            # process is already running its exit finalizers.
            _ack_pipe()
        if is_array and self.readonly and obj.flags.writeable:
            # A parent's later write would not reach the workers (they
            # hold a snapshot or a sealed copy): make it raise instead.
            obj.flags.writeable = False
        if is_array and self.readonly:
            _locked[id(obj)] = _locked.get(id(obj), 0) + 1
            self._locked.append(obj)
        if _api is None:
            # Once per line of code (the same advice for every object).
            self._warn("forkshim is not loaded in this process, so every "
                       "pickle of it carries its value; to load it, run "
                       "the program with python3 -m forkshim SCRIPT",
                       _not_loaded_registry)
        elif not self._result:
            try:
                self.handle = freeze(obj)
            except HandleError as e:  # EEXIST, ENOMEM: token or value
                self._warn("it could not be frozen: %s" % e.strerror)
        self._finalizer = weakref.finalize(
            self, _release_ref, self.handle,
            [] if self._result else self._holds, self._locked)
        self._finalizer.atexit = False

    def release(self):
        """Undoes share()'s freezes now (later pickles go by value); the
        parent's array is writeable again (unless it lives in memory of
        forkshim.empty(), which stays read-only)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pkg = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def _warn(self, reason, registry=None):
        if reason in self._warned:
            return
        self._warned.add(reason)
        filename, lineno, module, _ = self._site
        warnings.warn_explicit(
            "forkshim: share() sends %s by value: %s"
            % (_describe(self.obj), reason), FallbackWarning, filename,
            lineno, module, registry)

    def _package(self):
        with _pack_lock:
            if self._pkg is None:
                if self._result:
                    # Results already mapped by their receiver are let go
                    # before this one's copy takes memory.
                    _take_acks()
                tokens, spans, inline, handles, notes = _pack(
                    self.obj, _label(self.obj, None))
                self._holds.extend(handles)
                self._pkg = (1, tokens, spans, inline,
                             type(self.obj).__name__)
                if self._result:
                    self._pkg += (_sent_result(self.obj, handles),)
                _say_huge_pages(sum(s[2] for s in spans if s is not None),
                                self._site, _describe(self.obj))
                for note in notes:
                    filename, lineno, module, _ = self._site
                    warnings.warn_explicit(
                        "forkshim: share() of %s: %s" % (
                            _describe(self.obj), note), SharedWarning,
                        filename, lineno, module)
            return self._pkg

    def __reduce__(self):
        released = (self._finalizer is not None
                    and not self._finalizer.alive)
        if released:
            reason = "it was released"
        elif _api is None:  # said at share()
            if self.readonly and _is_buffer(self.obj):
                return (_readonly_copy, (self.obj,))
            return (operator.getitem, ([self.obj], 0))
        elif self._result:
            reason = "result"
        elif self.readonly and not _is_buffer(self.obj):
            reason = "read-only"  # rebuilt from shared memory, read-only
        else:
            reason = _unusable_reason(self.handle)
            if reason is None:
                e = _frozen.get(self.handle)
                if e is not None and e.obj is self.obj:
                    return (_restore, (self.handle, type(self.obj).__name__,
                                       e.addr, e.size, self.readonly))
                reason = "it was thawed"
        if not released and _api is not None:
            if _sapi is None:
                reason += ("; and this libforkshim has no shared frozen "
                           "regions (rebuild it)")
            else:
                try:
                    return (_load_shared, self._package())
                except (HandleError, MemoryError, pickle.PicklingError,
                        TypeError) as e:
                    reason += "; and it cannot be put in shared memory: %s" \
                        % (e,)
        self._warn(reason)
        if self.readonly and _is_buffer(self.obj):
            return (_readonly_copy, (self.obj,))
        # getitem is importable everywhere: the receiver needs no forkshim.
        return (operator.getitem, ([self.obj], 0))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "<forkshim.SharedRef %s handle=%#x%s%s>" % (
            _describe(self.obj), self.handle,
            " readonly" if self.readonly else "",
            " tokens=%d" % len(self._pkg[1]) if self._pkg else "")

    # Standing in for the object where no pickling happens.
    def __getattr__(self, name):
        # Only for names the slots lack; never for our own (unset) slots.
        if name.startswith("_") or name in SharedRef.__slots__:
            raise AttributeError(name)
        return getattr(self.obj, name)

    def __len__(self):
        return len(self.obj)

    def __getitem__(self, key):
        return self.obj[key]

    def __iter__(self):
        return iter(self.obj)

    def __contains__(self, item):
        return item in self.obj

    def __array__(self, dtype=None, copy=None):
        obj = _readonly_view(self.obj) if (
            self.readonly and not _is_readonly(self.obj)) else self.obj
        np = sys.modules["numpy"]
        return np.asarray(obj, dtype=dtype)


class SharedWarning(UserWarning):
    """share() had to copy part of an object it shares (a non-contiguous
    view spanning much more than its elements)."""


class HugePagesWarning(UserWarning):
    """The kernel gives shared memory no huge pages here (shmem_enabled
    "never" or "deny"): processes that import a big shared object read it
    in 4 KiB pages.  Once per process, at the first share() of 4 MiB or
    more that goes by token, in the main process."""


_SHMEM_KNOB = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
_HUGE_MIN = 4 << 20  # regions laid out for huge pages (shim/shared.c)
_huge_said = False


def _shmem_huge_setting():
    """The selected word of shmem_enabled, or None when unreadable."""
    try:
        with open(_SHMEM_KNOB) as f:
            words = f.read().split()
    except OSError:
        return None
    return next((w[1:-1] for w in words if w.startswith("[")), None)


def _say_huge_pages(nbytes, site, what):
    """The HugePagesWarning, where it applies (see its docstring)."""
    global _huge_said
    if _huge_said or nbytes < _HUGE_MIN:
        return
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        return  # a worker's result: the main process is told, not each worker
    _huge_said = True
    setting = _shmem_huge_setting()
    if setting not in ("never", "deny"):
        return
    filename, lineno, module, _ = site
    warnings.warn_explicit(
        "forkshim: share() of %s: processes that import it read it in "
        "4 KiB pages (shmem_enabled is %s), slower than a fork child "
        "reads a numpy array (2 MiB pages); to let shared memory use "
        "2 MiB pages, as root: echo advise > %s"
        % (what, setting, _SHMEM_KNOB), HugePagesWarning, filename, lineno,
        module)


def _is_buffer(obj):
    np = sys.modules.get("numpy")
    return isinstance(obj, _BYTES_LIKE) or (
        np is not None and isinstance(obj, np.ndarray)
        and not obj.dtype.hasobject)


def share(obj, readonly=None):
    """A SharedRef: pickles so that each worker gets obj without a copy
    per task.

    - fork-started workers forked after share(): a handle, resolved to
      obj itself (same object, same address);
    - any other process of the family (spawn and forkserver workers, a
      pool forked before share(), the parent of a worker that returns
      share(result)): a token; obj was pickled once into sealed shared
      memory, its buffers (numpy data, bytes-like contents) out of band,
      and the receiver rebuilds it with read-only, zero-copy arrays;
    - without the shim: obj's value, with a FallbackWarning at share().

    readonly (default: True for numpy arrays, False otherwise): workers
    get read-only arrays, and the parent's array is made non-writeable
    until release() (a write raises ValueError instead of going unseen by
    the workers).  readonly=True for other objects makes every worker
    rebuild them from shared memory (read-only arrays inside)."""
    return SharedRef(obj, readonly, _user_site())


def unwrap(x):
    """The object behind a SharedRef; raises the HandleError of an
    Unresolved; anything else unchanged."""
    if type(x) is Unresolved:
        raise object.__getattribute__(x, "error")
    return x.obj if isinstance(x, SharedRef) else x


def prepare_fork():
    """Call before forking workers: gc.collect(), then gc.freeze().

    What it fixes: the cyclic garbage collector writes to the header of
    every object it examines, so after a fork each collection in a worker
    copies the pages of every inherited container object, and memory
    sharing decays over time.  gc.freeze() moves all current objects to a
    permanent generation the collector never examines (CPython's own advice,
    see the gc module documentation); collecting first keeps garbage from
    being frozen with them.

    What it does not fix: reference counts.  Any use of an inherited object
    (passing it, indexing it, iterating a container) writes to its header,
    so the page it lives on is copied in the worker that touched it.  Large
    buffers (numpy data, bytes contents) are not headers: read-only use
    keeps them shared.  Objects created after the call are collected as
    usual; call gc.unfreeze() to undo it."""
    gc.collect()
    gc.freeze()


from .objects import Observed, observe  # noqa: E402  (uses the names above)

# A read-only dict in shared memory whose lookups never write to it.
from .mapping import FrozenMapping  # noqa: E402
