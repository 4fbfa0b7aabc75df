"""`pip install inject/python` installs an importable forkshim module."""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from support import REPO, SHIM, ModeTest  # noqa: F401

SOURCE = os.path.join(REPO, "inject", "python")


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
            # No network here: build with the installed setuptools.
            run = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", "--no-index", "--no-deps",
                 "--no-build-isolation", "--target", target, src],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
                timeout=120)
            self.assertEqual(run.returncode, 0, run.stdout.decode())
            probe = subprocess.run(
                [sys.executable, "-I", "-c",
                 "import sys; sys.path.insert(0, sys.argv[1]); "
                 "import forkshim; print(forkshim.__file__); "
                 "print(forkshim.available(), forkshim.__version__)", target],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp,
                timeout=60)
            lines = probe.stdout.decode().splitlines()
            self.assertEqual(probe.returncode, 0, lines)
            self.assertEqual(lines[0], os.path.join(target, "forkshim.py"))
            self.assertEqual(lines[1], "%s 0.1.0" % SHIM)


if __name__ == "__main__":
    unittest.main()
