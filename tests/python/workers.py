"""Worker functions for test_pools (a module of their own, so that spawn and
forkserver workers can import them)."""

import os
import pickle

import support  # noqa: F401  (puts inject/python on sys.path)
import forkshim


def data_address(obj):
    iface = getattr(obj, "__array_interface__", None)
    return iface["data"][0] if iface is not None else None


def describe(arg):
    """What a task received: (pid, id, data address, type, its i-th item,
    whether it is writeable)."""
    obj, i = arg
    obj = forkshim.unwrap(obj)
    flags = getattr(obj, "flags", None)
    return (os.getpid(), id(obj), data_address(obj), type(obj).__name__,
            float(obj[i]), flags.writeable if flags is not None else None)


def sixteenth_sum(arg):
    obj, i = arg
    n = len(obj) // 16
    return float(obj[i * n:(i + 1) * n].sum())


def try_write(arg):
    obj, i = arg
    try:
        obj[i] = -1
        return "wrote"
    except ValueError:
        return "read-only"


def nested(arg):
    """Identities inside a dict and list of proxies."""
    d = arg
    return (id(d["a"]), id(d["m"]), d["pair"][0] is d["a"],
            d["pair"][1] is d["m"], len(d["m"]))


def unpickle(blob):
    """Unpickles a stream in the worker and uses what came out: (errno,
    message) of the HandleError, or "resolved"; and the worker's pid (it
    must live on)."""
    try:
        forkshim.unwrap(pickle.loads(blob))
        return "resolved", None, os.getpid()
    except forkshim.HandleError as e:
        return e.errno, str(e), os.getpid()


def pid(_):
    return os.getpid()


def process_main(arg, queue):
    queue.put(describe(arg))


def process_sum(arg, queue):
    """Puts the task's sum, or the (errno, message) of its HandleError."""
    try:
        queue.put(sixteenth_sum(arg))
    except forkshim.HandleError as e:
        queue.put((e.errno, str(e)))


def mapping_of(addr):
    """The /proc/self/maps path of the mapping holding addr ("" for
    anonymous memory, None when unmapped)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= addr < hi:
                return fields[5].strip() if len(fields) > 5 else ""
    return None


def buffer_address(obj):
    import numpy
    iface = getattr(obj, "__array_interface__", None)
    if iface is not None:
        return iface["data"][0]
    return numpy.frombuffer(obj, dtype=numpy.uint8).ctypes.data


def received(arg):
    """What a task received: (type, where its bytes are mapped, writeable,
    a checksum of its contents)."""
    import numpy
    obj = forkshim.unwrap(arg)
    if isinstance(obj, dict):
        arr = obj["a"]
        return ("dict", mapping_of(buffer_address(arr)),
                arr.flags.writeable, float(arr.sum()), obj["k"])
    if isinstance(obj, numpy.ndarray):
        return ("ndarray", mapping_of(buffer_address(obj)),
                obj.flags.writeable, float(obj.sum()), obj.shape)
    v = memoryview(obj)
    return (type(obj).__name__, mapping_of(buffer_address(obj)),
            not v.readonly, float(sum(v.cast("B"))), v.format)


def make_result(i, n=1 << 18):
    """A result in shared memory, returned by share()."""
    a = forkshim.empty(n)
    a[:] = i
    return forkshim.share(a)


def make_plain_result(i, n=1 << 18):
    """An ordinary numpy array, returned by share() (one copy)."""
    import numpy
    return forkshim.share(numpy.full(n, float(i)))


@forkshim.returns_shared
def decorated_result(i):
    import numpy
    return numpy.full(1 << 16, float(i))


@forkshim.returns_shared
def decorated_sparse_result(i):
    """A result that share() copies (a view spanning far more than its
    elements): its SharedWarning must point here."""
    import numpy
    return numpy.full((1000, 1000), float(i))[::50, ::50]


class Counted(object):
    """Counts its pickles in this process (Counted.pickled)."""
    pickled = 0

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        Counted.pickled += 1
        return (Counted, (self.value,))


def counted(arg):
    """A task given {"c": Counted, "big": list}: (pid, value, len)."""
    d = forkshim.unwrap(arg)
    return os.getpid(), d["c"].value, len(d["big"])


def die(_):
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


def result_then_exit(queue, done, n):
    """A spawn-started Process: puts share(result) on the queue, then
    exits once told to.  Its exit may wait for the result's receiver for
    an hour (forkshim._RESULT_WAIT): it must be told that the receiver
    mapped it, not wait out the hour."""
    import numpy
    forkshim._RESULT_WAIT = 3600.0
    queue.put(forkshim.share(numpy.full(n, 3.0)))
    done.wait(WAIT_TASK)


WAIT_TASK = 120


def result_and_return(queue, n):
    """A spawn-started Process: puts share(result) on the queue and ends."""
    import numpy
    queue.put(forkshim.share(numpy.full(n, 5.0)))


def token_of(arg):
    """The worker's result, its raw token bytes (by pickling a share())."""
    import numpy
    ref = forkshim.share(numpy.full(4096, 7.0))
    return pickle.dumps(ref)


def token_then_exit(queue):
    """A spawn-started Process: puts its result's token bytes on the queue
    (no receiver will ack them) and exits after a short wait for the ack."""
    forkshim._RESULT_WAIT = 0.2
    queue.put(token_of(0))


def frame_info(arg):
    """A shared DataFrame in the worker: its columns' sums, whether each
    column's numpy array is read-only and lies in shared memory."""
    df = forkshim.unwrap(arg)
    out = []
    for name in df.columns:
        a = df[name].to_numpy()
        out.append((name, float(a.sum()), a.flags.writeable,
                    mapping_of(a.ctypes.data)))
    return type(df).__name__, out


_KEEP = []


def raw_handle(_):
    """A handle frozen here, in a worker (as a result wrongly sent up)."""
    obj = [1, 2, 3]
    _KEEP.append(obj)
    h = forkshim.freeze(obj)
    i = forkshim.info(h)
    return (h, "list", i.addr, i.len, False)
