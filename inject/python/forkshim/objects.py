"""Whole objects in the shim's reports: ``forkshim.observe(obj, name)``.

A frozen or shared object is, to the shim, the region it was frozen as:
for a dict or a DataFrame that is its 48-byte header, while what a fork
pool really copies is everything the object holds, because reading an
object writes its reference count.  ``observe()`` walks the object (the
objects it refers to, through ``gc.get_referents``; a dict's, list's or
set's table; every buffer, such as a numpy array's data), takes the pages
they lie on, merges them into a few ranges and freezes each one with
``FORKSHIM_OBSERVE`` under the object's name.  Nothing is protected
(``FORKSHIM_GUARD=protect`` leaves observed pages writable, unless
``protect=True``), nothing is copied: the ranges only give the per-process
reports (``forkshim --report DIR``, ``forkshim report DIR``) and
``Observed.sharing()`` figures for the object as a whole, and under
``--guard audit`` the first write of each worker to each of its pages,
with the Python line that wrote it.

Observe before the pool is forked (children see the ranges frozen before
their birth), and after any ``share()``/``freeze()`` of objects inside it:
a range holds whole pages, so an object another call wants to freeze later
inside those pages is refused (EEXIST).  The walk is Python code: about a
second per million objects.
"""

import bisect
import ctypes
import gc
import sys
import types

from . import (HandleError, Sharing, _CSharing, _api, _buffer_region,
               _errname, _label, _require_api)

__all__ = ["observe", "Observed", "object_ranges"]

FORKSHIM_GUARD = 0x1
FORKSHIM_OBSERVE = 0x4

_PAGE = 4096
try:
    import mmap
    _PAGE = mmap.PAGESIZE
except ImportError:  # pragma: no cover
    pass

_Py_TPFLAGS_HAVE_GC = 1 << 14
_GC_HEAD = 2 * ctypes.sizeof(ctypes.c_void_p)
_PTR = ctypes.sizeof(ctypes.c_void_p)
# The layouts read below are CPython's from 3.8 to 3.13.
_CPYTHON = (sys.implementation.name == "cpython" and
            (3, 8) <= sys.version_info[:2] <= (3, 13))

# Objects every process shares and no object owns.
_SKIP_TYPES = (type, types.ModuleType, types.FunctionType,
               types.BuiltinFunctionType, types.MethodType, types.CodeType,
               types.FrameType)
_SINGLETONS = frozenset(id(o) for o in (None, True, False, Ellipsis,
                                        NotImplemented, (), ""))
_BIG = 64 * _PAGE  # spans this long are kept as ranges, not page sets


def _tables(o, base):
    """A dict's, list's or set's separately allocated table: (start, end)
    or None (CPython layouts; None elsewhere)."""
    if not _CPYTHON:
        return None
    t = type(o)
    try:
        if isinstance(o, dict):
            extra = dict.__sizeof__(o) - t.__basicsize__
            keys = ctypes.c_void_p.from_address(base + 4 * _PTR).value
            values = ctypes.c_void_p.from_address(base + 5 * _PTR).value
            if extra > 0 and keys and not values:
                return keys, keys + extra
        elif isinstance(o, list):
            item = ctypes.c_void_p.from_address(base + 3 * _PTR).value
            extra = list.__sizeof__(o) - t.__basicsize__
            if extra > 0 and item:
                return item, item + extra
        elif isinstance(o, (set, frozenset)):
            table = ctypes.c_void_p.from_address(base + 5 * _PTR).value
            extra = (set.__sizeof__(o) if isinstance(o, set)
                     else frozenset.__sizeof__(o)) - t.__basicsize__
            if extra > 0 and table and not base <= table < base + \
                    t.__basicsize__:
                return table, table + extra
    except (TypeError, ValueError, OverflowError):
        return None
    return None


# Types that export no buffer and hold no table.
_PLAIN = (str, int, float, complex, tuple)
_kinds = {}  # type -> (GC header, basicsize, sizeof or None, plain)


def _kind(t):
    """What the walk needs of a type; None for a type it skips."""
    if issubclass(t, _SKIP_TYPES):
        k = None
    else:
        head = _GC_HEAD if t.__flags__ & _Py_TPFLAGS_HAVE_GC else 0
        own = getattr(t, "__sizeof__", None)
        # __sizeof__ in C counts inline items (str, tuple, int, bytes);
        # beyond the struct, any other type's is held elsewhere, and a
        # class's own __sizeof__ (pandas sums its columns) is no range.
        inline = t.__itemsize__ != 0 or issubclass(t, str)
        sizeof = own if inline and not isinstance(
            own, types.FunctionType) else None
        k = (head, t.__basicsize__, sizeof, issubclass(t, _PLAIN))
    _kinds[t] = k
    return k


def _spans(o, k):
    """The address ranges object o (of kind k) occupies: its struct (with
    the GC header before it), and a buffer or table it owns elsewhere."""
    base = id(o)
    head, size, sizeof, plain = k
    data = None if plain else _buffer_region(o)
    table = None if data is not None or plain else _tables(o, base)
    if data is None and table is None and sizeof is not None:
        try:
            n = sizeof(o)
            if type(n) is int and n > size:
                size = n
        except Exception:
            pass
    out = [(base - head, base + max(size, 1))]
    if data is not None:
        addr, n = data
        if not (base <= addr < base + size):
            out.append((addr, addr + n))
    if table is not None:
        out.append(table)
    return out


def _walk(obj, limit):
    """(page numbers, long spans, objects) of everything obj holds."""
    seen = set(_SINGLETONS)
    seen.update(id(i) for i in range(-5, 257))
    pages = set()
    add = pages.add
    spans = []
    todo = [obj]
    count = 0
    shift = _PAGE.bit_length() - 1
    kinds = _kinds
    referents = gc.get_referents
    while todo:
        batch = todo[-4096:]
        del todo[-4096:]
        fresh = []
        keep = fresh.append
        for o in batch:
            i = id(o)
            if i in seen:
                continue
            seen.add(i)
            t = type(o)
            k = kinds[t] if t in kinds else _kind(t)
            if k is None:
                continue
            keep(o)
            if k[3]:  # plain: its struct alone, on a page or two
                s = i - k[0]
                e = i + (k[2](o) if k[2] is not None else k[1])
                p = s >> shift
                add(p)
                q = (e - 1) >> shift
                if q != p:
                    pages.update(range(p + 1, q + 1))
                continue
            if isinstance(o, dict):
                # A dict of str keys traverses its values only.
                todo.extend(dict.keys(o))
            for s, e in _spans(o, k):
                if e - s >= _BIG:
                    spans.append((s, e))
                else:
                    pages.update(range(s >> shift, ((e - 1) >> shift) + 1))
        count += len(fresh)
        if limit is not None and count > limit:
            raise ValueError("forkshim.observe: more than %d objects (limit)"
                             % limit)
        todo.extend(referents(*fresh))
    return pages, spans, count


def _mappings():
    """Sorted (start, end) of this process's readable mappings."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            rng, perms = line.split(None, 2)[:2]
            if perms[0] != "r":
                continue
            s, e = rng.split("-")
            out.append((int(s, 16), int(e, 16)))
    out.sort()
    # Adjacent readable mappings read as one.
    merged = []
    for s, e in out:
        if merged and merged[-1][1] == s:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _merge(pages, spans, gap):
    """Page-aligned (start, end) ranges covering pages and spans, joined
    across holes of up to gap pages that are mapped readable."""
    runs = [(p * _PAGE, (p + 1) * _PAGE) for p in sorted(pages)]
    runs += [(s - s % _PAGE, -(-e // _PAGE) * _PAGE) for s, e in spans]
    runs.sort()
    maps = _mappings()
    starts = [m[0] for m in maps]

    def mapping_of(a):
        k = bisect.bisect_right(starts, a) - 1
        return k if k >= 0 and a < maps[k][1] else -1

    out = []
    for s, e in runs:
        if out:
            ps, pe = out[-1]
            if s <= pe or (s - pe <= gap * _PAGE and
                           mapping_of(pe - 1) == mapping_of(s) != -1):
                out[-1] = (ps, max(pe, e))
                continue
        out.append((s, e))
    return out


def object_ranges(obj, gap=16, limit=None):
    """The page-aligned address ranges (start, end) that obj and everything
    it refers to lie on, merged across mapped holes of up to gap pages;
    and the number of objects walked."""
    pages, spans, count = _walk(obj, limit)
    return _merge(pages, spans, gap), count


class Observed(object):
    """The ranges observe() froze for one object; ``release()`` (or the end
    of a ``with`` block) thaws them.  Keeps the object alive until then."""

    def __init__(self, obj, name, handles, ranges, objects, skipped):
        self.obj = obj
        self.name = name
        self.handles = handles
        self.ranges = ranges
        self.objects = objects  # objects walked
        self.skipped = skipped  # bytes left out: frozen already, unmapped
        self.bytes = sum(e - s for s, e in ranges) - skipped

    def sharing(self):
        """Sharing(pages, resident, shared, exclusive, swapped) summed over
        the object's ranges, as this process maps them now."""
        total = [0] * len(Sharing._fields)
        for h in self.handles:
            out = _CSharing()
            if _api.sharing(h, ctypes.byref(out)) != 0:
                continue
            for k, f in enumerate(Sharing._fields):
                total[k] += getattr(out, f)
        return Sharing(*total)

    def release(self):
        while self.handles:
            _api.thaw(self.handles.pop())
        self.obj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<forkshim.Observed %r: %d ranges, %d bytes, %d objects>" % (
            self.name, len(self.handles), self.bytes, self.objects)


def _freeze_range(s, e, label, flags, handles):
    """Freezes [s, e), or the parts of it that can be (halving around a
    region frozen already, or a page that went away); the bytes left out.
    Raises HandleError when the table is full or the flag is unknown."""
    ctypes.set_errno(0)
    h = _api.freeze(s, e - s, label, flags)
    if h:
        handles.append(h)
        return 0
    err = ctypes.get_errno()
    if err not in (17, 14):  # EEXIST, EFAULT: cut around it
        raise HandleError(err, "forkshim.observe: cannot freeze %#x-%#x: %s"
                          % (s, e, _errname(err)))
    if e - s <= _PAGE:
        return e - s
    mid = s + (e - s) // _PAGE // 2 * _PAGE
    return (_freeze_range(s, mid, label, flags, handles) +
            _freeze_range(mid, e, label, flags, handles))


def observe(obj, name=None, protect=False, gap=16, limit=None):
    """Freezes, for reports only, the pages obj and everything it holds lie
    on, as ranges named name (default: the type's name); returns an
    Observed.  protect=True write-protects them too (FORKSHIM_GUARD: a
    write, such as a reference count's, then stops the process).  Raises
    HandleError (ENOSYS) without the shim, EINVAL from a shim without
    FORKSHIM_OBSERVE, ENOMEM when the table is full (the ranges frozen so
    far are thawed)."""
    _require_api()
    label = _label(obj, name)
    ranges, count = object_ranges(obj, gap, limit)
    flags = FORKSHIM_OBSERVE | (FORKSHIM_GUARD if protect else 0)
    handles = []
    skipped = 0
    try:
        for s, e in ranges:
            skipped += _freeze_range(s, e, label, flags, handles)
    except HandleError:
        for h in handles:
            _api.thaw(h)
        raise
    return Observed(obj, label.decode("utf-8", "replace"), handles, ranges,
                    count, skipped)
