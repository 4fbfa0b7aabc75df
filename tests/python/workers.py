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
