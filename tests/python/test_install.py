"""`pip install inject/python` installs an importable forkshim package
offline (pip's isolated build, no index); the package is CPython 3.8 code (and runs on a 3.8 interpreter where one is
installed); the README's examples run as printed."""

import ast
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from support import REPO, SHIM, ModeTest  # noqa: F401

SOURCE = os.path.join(REPO, "inject", "python")
MODULE = os.path.join(SOURCE, "forkshim", "__init__.py")
# Every file of the package and its build backend: CPython 3.8 code.
SOURCES = [MODULE, os.path.join(SOURCE, "forkshim", "__main__.py"),
           os.path.join(SOURCE, "forkshim_build.py")]

# Shares a dict with a fork Pool, unpickles it, then a forged handle: by
# handle under the shim, by value without it.
SMOKE = r"""
import multiprocessing as mp, pickle, sys
sys.path.insert(0, sys.argv[1])
import forkshim

def size(arg):
    return len(arg[0]) + arg[1]

d = {i: str(i) for i in range(1000)}
ref = forkshim.share(d)
with mp.get_context("fork").Pool(2) as pool:
    print(pool.map(size, [(ref, i) for i in range(3)]))
print(pickle.loads(pickle.dumps(ref)) is d)
data = pickle.dumps(ref)
if ref.handle:  # forged: another handle in the same stream
    data = data.replace(ref.handle.to_bytes(8, "little"), b"\x01" * 8)
print(type(pickle.loads(data)).__name__)
"""


def python38():
    """A working CPython 3.8 interpreter under pyenv or on PATH, or None."""
    for exe in sorted(glob.glob(os.path.expanduser(
            "~/.pyenv/versions/3.8*/bin/python3.8"))) + [
            shutil.which("python3.8")]:
        try:
            r = subprocess.run([exe, "-c", "import sys; print(sys.version_info"
                                "[:2] == (3, 8))"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=60)
        except (TypeError, OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0 and r.stdout.strip() == b"True":
            return exe
    return None


@unittest.skipIf(importlib.util.find_spec("pip") is None,
                 "pip is not installed (Debian: python3-pip)")
class Install(unittest.TestCase):
    def test_pip_installs_the_module_from_the_source_directory(self):
        with tempfile.TemporaryDirectory() as tmp:
            # A copy, so the build leaves nothing in the source tree.
            src = os.path.join(tmp, "src")
            shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns(
                "build", "*.egg-info", "__pycache__"))
            target = os.path.join(tmp, "site")
            # pip's default isolated build with no index to download from:
            # the package's own backend needs nothing.
            run = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", "--no-index", "--no-deps",
                 "--target", target, src],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
                timeout=120)
            self.assertEqual(run.returncode, 0, run.stdout.decode())
            probe = subprocess.run(
                [sys.executable, "-I", "-c",
                 "import sys; sys.path.insert(0, sys.argv[1]); "
                 "import forkshim; print(forkshim.__file__); "
                 "print(forkshim.available(), forkshim.__version__)", target],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp,
                timeout=60)
            lines = probe.stdout.decode().splitlines()
            err = probe.stderr.decode()
            self.assertEqual(probe.returncode, 0, err)
            # Without the shim, one line says how to load it.
            self.assertEqual(err.count("\n"), 0 if SHIM else 1, err)
            if not SHIM:
                self.assertIn("to load it: python3 -m forkshim ", err)
            self.assertEqual(lines[0], os.path.join(target, "forkshim",
                                                    "__init__.py"))
            self.assertEqual(lines[1], "%s 0.1.0" % SHIM)



class Compatibility(unittest.TestCase):
    def test_module_parses_with_the_python_3_8_grammar(self):
        for path in SOURCES:
            with open(path) as f:
                ast.parse(f.read(), path, feature_version=(3, 8))

    def test_python_3_8_runs_the_module(self):
        exe = python38()
        if exe is None:
            self.skipTest("no python3.8 on PATH or under ~/.pyenv")
        run = subprocess.run([exe, "-I", "-c", SMOKE, SOURCE],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        out = run.stdout.decode().split("\n")
        self.assertEqual(out[0], "[1000, 1001, 1002]")
        self.assertEqual(out[1], str(SHIM))  # the object itself
        self.assertEqual(out[2], "Unresolved" if SHIM else "dict")


@unittest.skipUnless(os.environ.get("FORKSHIM_TEST_LIB"),
                     "FORKSHIM_TEST_LIB not set (a sanitizer build)")
class MainModule(unittest.TestCase):
    """python3 -m forkshim ARGS runs python3 ARGS with the library preloaded,
    the one beside the module first; its arguments, output and exit status
    are the program's."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.pkg = os.path.join(self.tmp, "forkshim")
        shutil.copytree(os.path.join(SOURCE, "forkshim"), self.pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.env = dict(os.environ, PYTHONPATH=self.tmp)
        self.env.pop("LD_PRELOAD", None)
        self.env.pop("FORKSHIM_QUIET", None)

    def run_main(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "forkshim"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
            cwd=self.tmp, timeout=60)

    def test_runs_the_program_with_the_library_beside_the_module(self):
        lib = os.path.join(self.pkg, "libforkshim.so.1")
        shutil.copy(os.environ["FORKSHIM_TEST_LIB"], lib)
        run = self.run_main("--library")
        self.assertEqual(run.stdout.decode(), lib + "\n", run.stderr)
        run = self.run_main(
            "-c", "import forkshim, os, sys; print(forkshim.available(), "
            "sys.argv[1:], os.environ['LD_PRELOAD']); sys.exit(3)", "a b", "c")
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertEqual(run.stdout.decode(),
                         "True ['a b', 'c'] %s\n" % lib)
        self.assertEqual(run.stderr, b"")  # no not-loaded hint

    @unittest.skipIf(sys.version_info < (3, 10), "no sys.orig_argv")
    def test_the_interpreters_own_options_are_passed_on(self):
        # python3 -X dev -W error::... -m forkshim: they used to be lost.
        shutil.copy(os.environ["FORKSHIM_TEST_LIB"],
                    os.path.join(self.pkg, "libforkshim.so.1"))
        run = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error::BytesWarning", "-m",
             "forkshim", "-c", "import forkshim, sys; print(forkshim."
             "available(), sys.flags.dev_mode, sys.warnoptions[-1])"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
            cwd=self.tmp, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.decode(),
                         "True True error::BytesWarning\n")

    def test_no_library_says_where_it_looked(self):
        import forkshim.__main__ as main
        if main.library() is not None and not main.library().startswith(
                REPO):
            self.skipTest("forkshim is installed on this machine: "
                          + main.library())
        run = self.run_main("prog.py")
        self.assertEqual(run.returncode, 1)
        err = run.stderr.decode()
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("libforkshim.so.1 not found; looked in: %s" %
                      os.path.join(self.pkg, "libforkshim.so.1"), err)

    def test_without_arguments_prints_usage(self):
        run = self.run_main()
        self.assertEqual(run.returncode, 2)
        self.assertIn(b"usage: python3 -m forkshim SCRIPT", run.stdout)


class ReadmeExample(unittest.TestCase):
    """The programs README.md shows under "Use from Python" (and the
    package's own README, inject/python/README.md), run as they are printed
    but for their arrays' sizes, as files (spawn and forkserver
    workers import the main module), under the shim in the shim run."""

    SIZES = {"32 * 2**20": "2**15", "2 * 2**20": "2**12"}

    def examples(self, readme=os.path.join(REPO, "README.md"), count=3):
        with open(readme) as f:
            text = f.read()
        start = text.index("## Use from Python") if count == 3 else 0
        end = text.find("\n## ", start + 1)
        section = text[start:end if end > 0 else len(text)]
        codes = re.findall(r"```python\n(.*?)```", section, re.S)
        self.assertEqual(len(codes), count)
        out = []
        for code in codes:
            for big, small in self.SIZES.items():
                code = code.replace(big, small)
            out.append(code)
        return out

    def run_example(self, code):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "example.py")
            with open(path, "w") as f:
                f.write(code)
            env = dict(os.environ, PYTHONPATH=SOURCE)
            run = subprocess.run([sys.executable, path],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, timeout=300)
        err = run.stderr.decode()
        self.assertEqual(run.returncode, 0, err)
        if SHIM:
            self.assertNotIn("Warning", err)
        else:  # once per process that calls share() (and line)
            self.assertGreaterEqual(err.count("FallbackWarning"), 1, err)
            self.assertIn("python3 -m forkshim", err)
        return eval(run.stdout.decode())  # a printed list or float

    def test_fork_example_shares_by_handle(self):
        sums = self.run_example(self.examples()[0])
        self.assertEqual(len(sums), 16)
        self.assertEqual(len(set(sums)), 1)

    def test_pool_made_first_example(self):
        sums = self.run_example(self.examples()[1])
        self.assertEqual(len(sums), 16)
        self.assertEqual(len(set(sums)), 1)

    def test_results_example(self):
        mean = self.run_example(self.examples()[2])
        self.assertAlmostEqual(mean / 16, 0.5, delta=0.05)

    def test_the_packages_own_readme_example(self):
        # inject/python/README.md, the package's description for pip.
        code, = self.examples(os.path.join(SOURCE, "README.md"), 1)
        sums = self.run_example(code)
        self.assertEqual(len(sums), 16)
        self.assertEqual(len(set(sums)), 1)


if __name__ == "__main__":
    unittest.main()
