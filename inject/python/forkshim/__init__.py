"""Hand Python objects to forked workers by handle instead of pickling them.

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

``share(obj)`` pickles as a handle only when every live child of this
process can resolve it (``forkshim_visible(h, 0)``) and the pickle is not
meant for a spawn or forkserver process; otherwise it pickles as the
object's value and warns once (``FallbackWarning``).  A handle that still
fails to resolve where it is unpickled (forged, thawed, frozen after that
process was forked, no shim there) gives an ``Unresolved`` whose first use
raises ``HandleError`` naming the errno and its reason.  Unpickling itself
never raises, so a pool worker never dies on such a task: the error comes
back as the task's exception (``pool.map()``, ``future.result()`` raise it
in the parent) instead of the pool waiting forever.  Without the shim
everything works by value.

Pure Python (ctypes only), CPython >= 3.8.  The C ABI is described in
``shim/include/forkshim.h``.
"""

import collections
import contextlib
import ctypes
import errno
import gc
import operator
import os
import sys
import threading
import warnings
import weakref

__version__ = "0.1.0"
__all__ = [
    "available", "version", "freeze", "thaw", "frozen", "share", "SharedRef",
    "unwrap", "resolve", "visible", "info", "sharing", "prepare_fork",
    "HandleError", "FallbackWarning", "Unresolved", "Info", "Sharing",
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


def _load():
    """The shim's function table when libforkshim is in the process's global
    scope (preloaded), else None."""
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
    return api


_api = _load()


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
    script = sys.argv[0] if sys.argv and sys.argv[0] not in (
        "", "-c", "-m") else "SCRIPT"
    sys.stderr.write(
        "forkshim: the shim is not loaded, objects go to workers by value; "
        "to load it: python3 -m forkshim %s (FORKSHIM_QUIET=1 hides this)\n"
        % script)


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
    errno.ENOENT: "it was frozen after this process was forked, so this "
                  "process's memory may not hold it (share() the object "
                  "before starting the pool)",
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


# ------------------------------------------------------------------- share

def _readonly_view(obj):
    """A read-only view of a buffer object (numpy: an ndarray view)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        v = obj.view()
        v.flags.writeable = False
        return v
    return memoryview(obj).toreadonly()


def _restore(handle, typename, addr, length, readonly=False):
    """Unpickles a share() proxy sent by handle: the original object (or a
    read-only view of it), or an Unresolved stand-in that raises the
    HandleError at its first use.  Never raises: a multiprocessing worker
    that fails to unpickle a task exits (pool.worker takes an OSError from
    its queue for a closed pipe) and the task is lost."""
    try:
        obj = _resolve(handle, typename, addr, length)
        return _readonly_view(obj) if readonly else obj
    except HandleError as e:
        return Unresolved(e)
    except Exception as e:  # a forged stream's fields
        return Unresolved(HandleError(
            errno.EBADF, "forkshim: malformed share() pickle (%s: %s)"
            % (type(e).__name__, e)))


def _readonly_copy(obj):
    """Unpickles a read-only share() proxy sent by value."""
    try:
        return _readonly_view(obj)
    except Exception as e:
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


class SharedRef(object):
    """What share() returns: pickles as a handle or as the object's value.

    ``ref.obj`` is the object.  Where a SharedRef arrives without being
    pickled (the arguments of a fork-started Process, an os.fork child) it
    stands in for the object: attributes, len(), [], iteration, ``in`` and
    numpy.asarray() pass through; ``forkshim.unwrap(x)`` gives the object.
    The freeze share() made is undone by ``release()``, at the end of a
    ``with`` block, or when the SharedRef is garbage collected; workers
    already forked keep their snapshot."""

    __slots__ = ("obj", "readonly", "handle", "_finalizer", "_warned",
                 "__weakref__")

    def __init__(self, obj, readonly=False):
        if readonly:
            _readonly_view(obj)  # TypeError now, not in the worker
        self.obj = obj
        self.readonly = bool(readonly)
        self._warned = False
        self._finalizer = None
        self.handle = 0
        if _api is not None:
            try:
                self.handle = freeze(obj)
            except HandleError as e:  # EEXIST, ENOMEM: send it by value
                self._warn("it could not be frozen: %s" % e.strerror)
        if self.handle:
            self._finalizer = weakref.finalize(self, _thaw_finalizer,
                                               self.handle)
            self._finalizer.atexit = False

    def release(self):
        """Undoes share()'s freeze now (later pickles go by value)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def _warn(self, reason):
        e = _frozen.get(self.handle) if self.handle else None
        if self._warned or (e is not None and e.warned):
            return
        self._warned = True
        if e is not None:
            e.warned = True
        warnings.warn("forkshim: sending %s by value: %s"
                      % (_describe(self.obj), reason), FallbackWarning,
                      stacklevel=3)

    def __reduce__(self):
        if self._finalizer is not None and not self._finalizer.alive:
            reason = "it was released"
        else:
            reason = _unusable_reason(self.handle)
        if reason is None:
            e = _frozen.get(self.handle)
            if e is not None and e.obj is self.obj:
                return (_restore, (self.handle, type(self.obj).__name__,
                                   e.addr, e.size, self.readonly))
            reason = "it was thawed"
        self._warn(reason)
        if self.readonly:
            return (_readonly_copy, (self.obj,))
        # getitem is importable everywhere: the receiver needs no forkshim.
        return (operator.getitem, ([self.obj], 0))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "<forkshim.SharedRef %s handle=%#x%s>" % (
            _describe(self.obj), self.handle,
            " readonly" if self.readonly else "")

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
        obj = _readonly_view(self.obj) if self.readonly else self.obj
        np = sys.modules["numpy"]
        return np.asarray(obj, dtype=dtype)


def share(obj, readonly=False):
    """A SharedRef: pickles as a handle that forked workers turn back into
    obj itself (numpy arrays zero-copy; a read-only view with
    readonly=True), or as obj's value when a handle would not resolve
    there (with one FallbackWarning per object).  Call it before starting
    the pool: workers forked earlier cannot see the object."""
    return SharedRef(obj, readonly)


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
