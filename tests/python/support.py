"""What every Python test module shares: the forkshim module from the source
tree, the mode this run is in, the raw C ABI for cross-checks, and a way to
run a function in an os.fork child.

python.cmake runs each test module twice, with FORKSHIM_TEST_MODE=shim under
LD_PRELOAD=libforkshim.so and with FORKSHIM_TEST_MODE=plain without it; a
test meant for the other run is skipped, and test_mode_matches_the_process
fails if the shim's presence is not what the run promises."""

import ctypes
import os
import pickle
import sys
import traceback
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "inject", "python"))

import forkshim  # noqa: E402

MODE = os.environ.get("FORKSHIM_TEST_MODE") or (
    "shim" if forkshim.available() else "plain")
SHIM = MODE == "shim"

needs_shim = unittest.skipUnless(SHIM, "runs in the LD_PRELOAD run")
needs_plain = unittest.skipIf(SHIM, "runs in the run without the shim")

HANDLE_ERRNOS = {2, 9, 116}  # ENOENT, EBADF, ESTALE


def raw_abi():
    """The shim's functions looked up directly, independent of forkshim."""
    lib = ctypes.CDLL(None, use_errno=True)
    lib.forkshim_freeze.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                    ctypes.c_char_p, ctypes.c_uint]
    lib.forkshim_freeze.restype = ctypes.c_uint64
    lib.forkshim_thaw.argtypes = [ctypes.c_uint64]
    lib.forkshim_find.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.forkshim_find.restype = ctypes.c_uint64
    lib.forkshim_deref.argtypes = [ctypes.c_uint64,
                                   ctypes.POINTER(ctypes.c_size_t)]
    lib.forkshim_deref.restype = ctypes.c_void_p
    return lib


def data_address(obj):
    """Address of a numpy array's or writable buffer's data."""
    iface = getattr(obj, "__array_interface__", None)
    if iface is not None:
        return iface["data"][0]
    return ctypes.addressof((ctypes.c_char * len(obj)).from_buffer(obj))


class Forged(object):
    """Pickles as a share() proxy would, with whatever fields it is given."""

    def __init__(self, *fields):
        self.fields = fields

    def __reduce__(self):
        return (forkshim._restore, self.fields)


class ForgedToken(Forged):
    """Pickles as a share() proxy sent by token would, with these fields."""

    def __reduce__(self):
        return (forkshim._load_shared, self.fields)


def in_child(fn, *args):
    """Runs fn(*args) in an os.fork child and returns what it returned, or
    raises AssertionError with the child's traceback or exit status."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        status = 0
        try:
            try:
                out = (True, fn(*args))
            except BaseException:
                out = (False, traceback.format_exc())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = pickle.dumps(out)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            status = 3
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise AssertionError("child died, wait status %#x" % status)
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError("child raised:\n" + value)
    return value


class Recorder(object):
    """Records FallbackWarnings (from any thread: pools pickle in theirs)."""

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self.all = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)

    @property
    def fallbacks(self):
        return [w for w in self.all
                if issubclass(w.category, forkshim.FallbackWarning)]


class ModeTest(unittest.TestCase):
    def test_mode_matches_the_process(self):
        self.assertEqual(forkshim.available(), SHIM,
                         "FORKSHIM_TEST_MODE=%s but available() is %s"
                         % (MODE, forkshim.available()))
