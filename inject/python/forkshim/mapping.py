"""FrozenMapping: a read-only dict whose lookups never write to shared pages.

A worker that reads a dict it inherited (or unpickled from shared memory)
writes the reference count of every key, value and tuple it touches, so
the kernel copies each page it reads: a 3-million-entry dict read by two
fork workers ends up in memory three times.  A FrozenMapping stores the
keys and values serialized in one shared frozen region (sealed memory,
see SHARED.md) behind an open-addressing index; a lookup encodes the key,
hashes it with CRC-32 (stable across processes, unlike hash() of a str,
whose seed differs in every spawn or forkserver worker), probes the index
and unpickles one value.  Nothing is written to the region, so its pages
stay shared in every process that maps it, whatever the start method.

Region layout (little-endian, every section 8-byte aligned):

    header   magic "FSFMAP01", entries, slots, index offset, table offset,
             data offset, data length, 0
    index    slots x u64: 0 empty, else crc32(key) << 32 | entry + 1
    table    (entries + 1) x u64: entry start << 21 | flag << 20 | key
             length; the last word is the data length << 21
    data     per entry: the normalized key (a type byte, then its bytes);
             when flag is set, u32 length + a pickle of the original key
             (a bool, an integral float, a subclass: what iteration gives
             back); then the value's pickle (protocol 5, its PROTO and
             first FRAME opcodes left out) up to the next entry.

Keys equal in Python are equal here: 1, 1.0 and True encode alike, as do
a str and a str subclass that keeps str's __eq__ and __hash__.
"""

import array
import collections.abc
import ctypes
import errno
import os
import pickle
import struct
import sys
import threading
import warnings
import weakref
import zlib

__all__ = ["FrozenMapping"]

_MAGIC = b"FSFMAP01"
_HEADER = struct.Struct("<8s7Q")
_KEY_BITS = 20
_MAX_KEY = (1 << _KEY_BITS) - 1  # bytes of a normalized key
_FLAG = 1 << _KEY_BITS
_START_SHIFT = _KEY_BITS + 1
_MAX_DATA = (1 << (64 - _START_SHIFT)) - 1
_MAX_ENTRIES = (1 << 32) - 2
_LOAD = 0.6  # entries per slot at most
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_crc32 = zlib.crc32
_loads = pickle.loads
_u32 = struct.Struct("<I")
_f64 = struct.Struct("<d")

_SUPPORTED = ("str, bytes, int, float (not NaN), bool, None, or tuples of "
              "them")


def _forkshim():
    return sys.modules[__package__]


# ------------------------------------------------------------------ keys

def _int_bytes(n):
    return n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "little",
                      signed=True)


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _unsupported(key):
    try:
        hash(key)
    except TypeError:
        raise TypeError("FrozenMapping keys must be hashable; unhashable "
                        "type: %r" % type(key).__name__) from None
    raise TypeError("FrozenMapping keys must be %s: %r is a %s"
                    % (_SUPPORTED, _short(key), type(key).__name__))


def _short(obj):
    r = repr(obj)
    return r if len(r) <= 60 else r[:57] + "..."


def _same_equality(t, base):
    """A subclass whose instances compare and hash like the base type's."""
    return t.__eq__ is base.__eq__ and t.__hash__ is base.__hash__


def _encode(key):
    """(normalized bytes, exact) of a key; exact is False when decoding the
    bytes would not give back an object of the key's own type."""
    t = type(key)
    if t is str:
        return b"s" + key.encode("utf-8", "surrogatepass"), True
    if t is int:
        return b"i" + _int_bytes(key), True
    if t is bytes:
        return b"b" + key, True
    if t is tuple:
        parts = [b"t"]
        exact = True
        for item in key:
            kb, ex = _encode(item)
            parts.append(_varint(len(kb)))
            parts.append(kb)
            exact = exact and ex
        return b"".join(parts), exact
    if key is None:
        return b"n", True
    if t is bool:
        return b"i" + _int_bytes(int(key)), False
    if t is float:
        if key != key:
            raise TypeError("FrozenMapping keys cannot be NaN (a NaN is "
                            "not equal to itself: no lookup could find it)")
        if key.is_integer():
            return b"i" + _int_bytes(int(key)), False
        return b"f" + _f64.pack(key), True
    for base in (str, int, bytes, tuple, float):
        if isinstance(key, base) and _same_equality(t, base):
            return _encode(base(key))[0], False
    _unsupported(key)


def _decode(kb):
    """The key normalized bytes stand for (kb: bytes)."""
    tag = kb[:1]
    if tag == b"s":
        return kb[1:].decode("utf-8", "surrogatepass")
    if tag == b"i":
        return int.from_bytes(kb[1:], "little", signed=True)
    if tag == b"b":
        return kb[1:]
    if tag == b"n":
        return None
    if tag == b"f":
        return _f64.unpack(kb[1:])[0]
    if tag == b"t":
        items, i = [], 1
        while i < len(kb):
            n = shift = 0
            while True:
                c = kb[i]
                i += 1
                n |= (c & 0x7F) << shift
                shift += 7
                if c < 0x80:
                    break
            items.append(_decode(kb[i:i + n]))
            i += n
        return tuple(items)
    raise ValueError("corrupt FrozenMapping key %r" % kb[:16])


def _strip(vb):
    """A protocol 5 pickle without its PROTO and first FRAME opcodes (11
    bytes an entry; pickle.loads needs neither)."""
    if vb[:3] == b"\x80\x05\x95":
        return memoryview(vb)[11:]
    return memoryview(vb)[2:]


# ------------------------------------------------------------ the build

def _serialize(items):
    """(data, table, hashes, n) for the items: data a bytearray of the
    entries, table array('Q') of their words (plus the end), hashes
    array('I') of their keys' CRC-32."""
    data = bytearray()
    table = array.array("Q")
    hashes = array.array("I")
    dumps = pickle.dumps
    crc = _crc32
    t_append = table.append
    h_append = hashes.append
    for key, value in items:
        if type(key) is str:
            kb = b"s" + key.encode("utf-8", "surrogatepass")
            exact = True
        else:
            kb, exact = _encode(key)
        try:
            vb = dumps(value, 5)
        except Exception as e:
            raise TypeError("FrozenMapping: the value of key %s cannot be "
                            "pickled: %s: %s" % (_short(key),
                                                 type(e).__name__, e)) from e
        if len(kb) > _MAX_KEY:
            raise ValueError("FrozenMapping: key %s is %d bytes encoded; "
                             "the limit is %d" % (_short(key), len(kb),
                                                  _MAX_KEY))
        start = len(data)
        if start > _MAX_DATA:
            raise ValueError("FrozenMapping too big: more than %d bytes of "
                             "keys and values" % _MAX_DATA)
        t_append((start << _START_SHIFT) | (0 if exact else _FLAG) | len(kb))
        h_append(crc(kb))
        data += kb
        if not exact:
            ob = dumps(key, 5)
            data += _u32.pack(len(ob))
            data += ob
        data += _strip(vb)
        if len(table) > _MAX_ENTRIES:
            raise ValueError("FrozenMapping too big: more than %d entries"
                             % _MAX_ENTRIES)
    if len(data) > _MAX_DATA:
        raise ValueError("FrozenMapping too big: more than %d bytes of keys "
                         "and values" % _MAX_DATA)
    n = len(table)
    table.append(len(data) << _START_SHIFT)
    return data, table, hashes, n


def _index(data, table, hashes, n):
    """array('Q') of the open-addressing index (linear probing)."""
    nslots = max(8, int(n / _LOAD) + 1)
    slots = array.array("Q", bytes(8 * nslots))
    for e in range(n):
        h = hashes[e]
        i = h % nslots
        while True:
            s = slots[i]
            if not s:
                break
            if s >> 32 == h:
                other = (s & 0xFFFFFFFF) - 1
                w, x = table[e], table[other]
                if (w & _MAX_KEY) == (x & _MAX_KEY):
                    a, b = w >> _START_SHIFT, x >> _START_SHIFT
                    k = w & _MAX_KEY
                    if data[a:a + k] == data[b:b + k]:
                        raise ValueError(
                            "FrozenMapping: two keys of the source are "
                            "equal (%r): 1, 1.0 and True are one key"
                            % (_decode(bytes(data[a:a + k])),))
            i += 1
            if i == nslots:
                i = 0
        slots[i] = (h << 32) | (e + 1)
    return slots


def _align(n):
    return (n + 7) & ~7


# --------------------------------------------------------- the mapping

_by_token = weakref.WeakValueDictionary()  # token -> FrozenMapping here
_recent = []  # per worker: the last few FrozenMappings it unpickled
_RECENT_MAX = 8
_lock = threading.Lock()


def _new_lock():
    # A child forked while another thread unpickled a mapping must not
    # inherit the lock taken.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)


class _ItemsView(collections.abc.ItemsView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_entries(True, True)


class _ValuesView(collections.abc.ValuesView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._iter_entries(False, True)


class FrozenMapping(collections.abc.Mapping):
    """A read-only mapping held in shared memory that workers read without
    copying it: ``FrozenMapping(d)`` with d a dict (any Mapping, or an
    iterable of (key, value) pairs).

    Keys: str, bytes, int, float (not NaN), bool, None, and tuples of
    these (a subclass of one with the same __eq__ and __hash__ counts as
    it); 1, 1.0 and True are one key, as in a dict.  Values: anything
    picklable.  A lookup returns a new copy of the value (unpickled from
    the shared bytes): mutating it changes nothing stored.  Iteration is in
    the source's order.

    Pickles as a 64-byte token (shim loaded): workers of every start method
    and pools made earlier map the same sealed pages, read-only, and their
    lookups never write to them.  Keep the FrozenMapping alive in the
    parent while workers may still receive it (``release()`` or garbage
    collection thaws the region: tokens sent later fail with ESTALE).
    Without the shim it lives in anonymous shared memory that fork workers
    share, and pickles as its bytes (a FallbackWarning says so)."""

    __slots__ = ("_n", "_nslots", "_slots", "_table", "_data", "_mem",
                 "_token", "_region", "_nbytes", "_warned", "__weakref__")

    def __init__(self, source=(), name="FrozenMapping"):
        if isinstance(source, FrozenMapping):
            items = source._iter_entries(True, True)
        elif isinstance(source, collections.abc.Mapping):
            items = source.items()
        elif hasattr(source, "keys"):
            items = ((k, source[k]) for k in source.keys())
        else:
            source = dict(source)
            items = source.items()
        data, table, hashes, count = _serialize(items)
        del items, source
        slots = _index(data, table, hashes, count)
        del hashes
        index_off = _align(_HEADER.size)
        table_off = index_off + 8 * len(slots)
        data_off = table_off + 8 * len(table)
        total = data_off + len(data)
        header = _HEADER.pack(_MAGIC, count, len(slots), index_off,
                              table_off, data_off, len(data), 0)
        fs = _forkshim()
        label = name.encode("utf-8", "replace")[:63] if isinstance(
            name, str) else bytes(name)[:63]
        if fs._sapi is not None:
            try:
                alloc, mem = fs._raw_alloc(total, label)
            except MemoryError as e:
                raise MemoryError(
                    "FrozenMapping of %d entries needs %s of shared memory: "
                    "%s" % (count, fs._size_text(total), e)) from None
            base = alloc.addr
            for off, part in ((0, header), (index_off, slots),
                              (table_off, table), (data_off, data)):
                where = fs._buffer_region(part)
                if where is not None:
                    ctypes.memmove(base + off, where[0], where[1])
            del data, table, slots
            with fs._lock:
                alloc.seal(label)
            self._token = fs._export(alloc.hold)
            view = memoryview(mem).cast("B")[:total].toreadonly()
        else:
            import mmap
            mem = mmap.mmap(-1, max(total, 1))
            mem[0:len(header)] = header
            mem[index_off:table_off] = slots.tobytes()
            mem[table_off:data_off] = table.tobytes()
            mem[data_off:total] = data
            del data, table, slots
            self._token = None
            view = memoryview(mem)[:total].toreadonly()
        self._mem = mem
        self._warned = False
        self._attach(view)
        if self._token is not None:
            _by_token[self._token] = self

    # ----------------------------------------------------------- loading

    def _attach(self, view):
        """Checks the header of a region and points the views at it."""
        if view.nbytes < _HEADER.size:
            raise ValueError("not a FrozenMapping region (%d bytes)"
                             % view.nbytes)
        magic, n, nslots, index_off, table_off, data_off, dlen, _ = \
            _HEADER.unpack_from(view, 0)
        if (magic != _MAGIC or n > _MAX_ENTRIES or nslots < n
                or index_off < _HEADER.size
                or table_off != index_off + 8 * nslots
                or data_off != table_off + 8 * (n + 1)
                or data_off + dlen > view.nbytes or index_off % 8):
            raise ValueError("not a FrozenMapping region (header %r)"
                             % bytes(view[:16]))
        self._n = n
        self._nslots = nslots
        self._slots = view[index_off:table_off].cast("Q")
        self._table = view[table_off:data_off].cast("Q")
        self._data = view[data_off:data_off + dlen]
        self._region = view
        self._nbytes = view.nbytes
        if self._table[n] >> _START_SHIFT != dlen:
            raise ValueError("not a FrozenMapping region (data length)")

    @classmethod
    def _from_view(cls, view, token, mem):
        self = cls.__new__(cls)
        self._mem = mem
        self._token = token
        self._warned = False
        self._attach(view)
        return self

    def __reduce__(self):
        self._check()
        if self._token is not None:
            return (_load, (1, self._token, self._nbytes, self._n))
        if not self._warned:
            self._warned = True
            fs = _forkshim()
            why = ("forkshim is not loaded in this process" if fs._api is None
                   else "this libforkshim has no shared frozen regions")
            warnings.warn("forkshim: FrozenMapping of %d entries is pickled "
                          "as its %s of bytes: %s" % (
                              self._n, fs._size_text(self._nbytes), why),
                          fs.FallbackWarning, stacklevel=2)
        return (_from_bytes, (self._region.tobytes(),))

    def release(self):
        """Drops this process's views now; in the process that built it,
        also its freeze (the memory is freed once no worker maps it, and
        tokens sent later fail with ESTALE).  Later use raises ValueError."""
        if self._data is None:
            return
        tok = self._token
        if tok is not None and _by_token.get(tok) is self:
            del _by_token[tok]
        self._slots = self._table = self._data = self._region = None
        self._mem = None

    def _check(self):
        if self._data is None:
            raise ValueError("this FrozenMapping was released")

    # ----------------------------------------------------------- lookups

    def _find(self, key):
        """(entry word, entry index) of key, or (None, -1)."""
        if type(key) is str:
            kb = b"s" + key.encode("utf-8", "surrogatepass")
        else:
            kb = _encode(key)[0]
        slots = self._slots
        if slots is None:
            self._check()
        h = _crc32(kb)
        nslots = self._nslots
        i = h % nslots
        klen = len(kb)
        while True:
            s = slots[i]
            if not s:
                return None, -1
            if s >> 32 == h:
                e = (s & 0xFFFFFFFF) - 1
                w = self._table[e]
                if w & _MAX_KEY == klen:
                    start = w >> _START_SHIFT
                    if self._data[start:start + klen] == kb:
                        return w, e
            i += 1
            if i == nslots:
                i = 0

    def _value(self, w, e):
        start = (w >> _START_SHIFT) + (w & _MAX_KEY)
        if w & _FLAG:
            start += 4 + _u32.unpack_from(self._data, start)[0]
        return _loads(self._data[start:self._table[e + 1] >> _START_SHIFT])

    def __getitem__(self, key):
        w, e = self._find(key)
        if w is None:
            raise KeyError(key)
        return self._value(w, e)

    def get(self, key, default=None):
        w, e = self._find(key)
        return default if w is None else self._value(w, e)

    def __contains__(self, key):
        return self._find(key)[0] is not None

    def __len__(self):
        self._check()
        return self._n

    def _key(self, w):
        start = w >> _START_SHIFT
        if w & _FLAG:
            at = start + (w & _MAX_KEY)
            n = _u32.unpack_from(self._data, at)[0]
            return _loads(self._data[at + 4:at + 4 + n])
        return _decode(bytes(self._data[start:start + (w & _MAX_KEY)]))

    def _iter_entries(self, keys, values, order=None):
        self._check()
        table, data, key_of = self._table, self._data, self._key
        for e in (range(self._n) if order is None else order):
            w = table[e]
            k = key_of(w) if keys else None
            if values:
                start = (w >> _START_SHIFT) + (w & _MAX_KEY)
                if w & _FLAG:
                    start += 4 + _u32.unpack_from(data, start)[0]
                v = _loads(data[start:table[e + 1] >> _START_SHIFT])
                yield (k, v) if keys else v
            else:
                yield k

    def __iter__(self):
        return self._iter_entries(True, False)

    def __reversed__(self):
        return self._iter_entries(True, False, range(self._n - 1, -1, -1))

    def items(self):
        return _ItemsView(self)

    def values(self):
        return _ValuesView(self)

    def __eq__(self, other):
        if not isinstance(other, collections.abc.Mapping):
            return NotImplemented
        if other is self or (isinstance(other, FrozenMapping)
                             and other._token is not None
                             and other._token == self._token):
            return True
        if len(other) != len(self):
            return False
        missing = object()
        for k, v in self._iter_entries(True, True):
            try:
                o = other.get(k, missing)
            except TypeError:
                return False
            if o is missing or not (o is v or o == v):
                return False
        return True

    __hash__ = None

    def __repr__(self):
        if self._data is None:
            return "<forkshim.FrozenMapping released>"
        return "<forkshim.FrozenMapping of %d entries, %s%s>" % (
            self._n, _forkshim()._size_text(self._nbytes),
            " shared" if self._token is not None else "")

    # ------------------------------------------------------- the memory

    @property
    def nbytes(self):
        """Bytes of the region (header, index, entries)."""
        self._check()
        return self._nbytes

    def sharing(self):
        """forkshim.Sharing(pages, resident, shared, exclusive, swapped) of
        the region as this process maps it now, from /proc/self/smaps:
        `shared` pages are mapped by other processes too, `exclusive` ones
        by this one alone (never a copy: the pages are read-only)."""
        self._check()
        import forkshim
        addr = _address(self._region)
        end = addr + self._nbytes
        fields = {"Rss": 0, "Shared_Clean": 0, "Shared_Dirty": 0,
                  "Private_Clean": 0, "Private_Dirty": 0, "Swap": 0}
        inside = False
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo < end and hi > addr
                elif inside and head[:-1] in fields:
                    fields[head[:-1]] += int(line.split()[1])
        kib = _PAGE // 1024
        return forkshim.Sharing(
            (self._nbytes + _PAGE - 1) // _PAGE, fields["Rss"] // kib,
            (fields["Shared_Clean"] + fields["Shared_Dirty"]) // kib,
            (fields["Private_Clean"] + fields["Private_Dirty"]) // kib,
            fields["Swap"] // kib)


def _address(view):
    return _forkshim()._address(view)


def _from_bytes(blob):
    """Unpickles a FrozenMapping sent by value (no shim)."""
    import mmap
    mem = mmap.mmap(-1, max(len(blob), 1))
    mem[:len(blob)] = blob
    return FrozenMapping._from_view(memoryview(mem)[:len(blob)].toreadonly(),
                                    None, mem)


def _load(version, token, nbytes, n):
    """Unpickles a FrozenMapping sent by token: the mapping over the shared
    region (the same object for the same token in a process), or a
    forkshim.Unresolved whose first use raises the HandleError (unpickling
    never raises: a pool worker would die of it and lose the task)."""
    fs = _forkshim()
    try:
        if version != 1:
            raise fs.HandleError(errno.EBADF, "forkshim: FrozenMapping "
                                 "pickle of version %r (this module reads 1)"
                                 % (version,))
        with _lock:
            hit = _by_token.get(token)
            if hit is not None and hit._data is not None:
                return hit
            view = fs._import(token, " (a FrozenMapping)")
            if view.nbytes != nbytes:
                raise fs.HandleError(errno.EBADF, "forkshim: the token names "
                                     "%d bytes, not the FrozenMapping's %r"
                                     % (view.nbytes, nbytes))
            try:
                fm = FrozenMapping._from_view(view, token, None)
            except ValueError as e:
                raise fs.HandleError(errno.EBADF, "forkshim: %s" % e)
            if fm._n != n:
                raise fs.HandleError(errno.EBADF, "forkshim: the region "
                                     "holds %d entries, not %r" % (fm._n, n))
            _by_token[token] = fm
            mp = sys.modules.get("multiprocessing")
            if mp is not None and mp.parent_process() is not None:
                _recent.append(fm)
                del _recent[:-_RECENT_MAX]
            return fm
    except fs.HandleError as e:
        return fs.Unresolved(e)
    except Exception as e:  # a forged stream's fields
        return fs.Unresolved(fs.HandleError(
            errno.EBADF, "forkshim: malformed FrozenMapping pickle (%s: %s)"
            % (type(e).__name__, e)))
