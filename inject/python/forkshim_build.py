"""The forkshim package's PEP 517 build backend: the standard library only.

pyproject.toml names it (``backend-path = ["."]``, ``requires = []``), so
``pip install inject/python`` and ``pip wheel inject/python`` need nothing
from an index: pip's isolated build has no build requirement to download.

The wheel holds the files of the forkshim/ directory (not __pycache__).
When the build is given the library (``--config-settings
library=/abs/path/libforkshim.so.1``, as the CMake target ``wheel`` does)
the wheel carries a copy as forkshim/libforkshim.so.1 and is tagged for
this platform (py3-none-linux_x86_64: any
Python 3, the library's machine and C library); without it the wheel is
pure (py3-none-any) and the module looks for the library elsewhere (see
forkshim/__main__.py)."""

import base64
import hashlib
import io
import os
import re
import sysconfig
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "forkshim"
LIBRARY = "libforkshim.so.1"
EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed file times: the same input, the same wheel


def _project():
    """pyproject.toml's [project] table."""
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        text = f.read().decode("utf-8")
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the flat subset this file uses
        table = text.split("[project]", 1)[1].split("\n[", 1)[0]
        out = {}
        for key, value in re.findall(r'(?m)^([\w-]+)\s*=\s*(".*?"|\[.*?\])',
                                     table + "\n", re.S):
            items = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
            out[key] = items if value.startswith("[") else items[0]
        return out
    return tomllib.loads(text)["project"]


def _files():
    """(path in the wheel, path on disk) of the package's files."""
    root = os.path.join(HERE, PACKAGE)
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name == "__pycache__" or name.endswith(".pyc"):
            continue
        if not os.path.isfile(path):
            raise RuntimeError("forkshim_build: %s is not a file" % path)
        out.append((PACKAGE + "/" + name, path))
    return out


def _platform_tag():
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def _metadata(project):
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"],
             "Version: " + project["version"],
             "Summary: " + project["description"]]
    if "requires-python" in project:
        lines.append("Requires-Python: " + project["requires-python"])
    lines += ["Classifier: " + c for c in project.get("classifiers", [])]
    readme = project.get("readme")
    body = ""
    if readme:
        with open(os.path.join(HERE, readme), encoding="utf-8") as f:
            body = f.read()
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def _add(zf, record, name, data, mode=0o644):
    info = zipfile.ZipInfo(name, EPOCH)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    record.append("%s,sha256=%s,%d" % (name, digest.rstrip(b"=").decode(),
                                       len(data)))


def _wheel(directory, files, pure):
    project = _project()
    name = project["name"].replace("-", "_")
    tag = "py3-none-" + ("any" if pure else _platform_tag())
    dist_info = "%s-%s.dist-info" % (name, project["version"])
    filename = "%s-%s-%s.whl" % (name, project["version"], tag)
    record = []
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as zf:
        for arcname, path in files:
            with open(path, "rb") as f:
                data = f.read()
            executable = os.stat(path).st_mode & 0o111
            _add(zf, record, arcname, data, 0o755 if executable else 0o644)
        _add(zf, record, dist_info + "/METADATA",
             _metadata(project).encode("utf-8"))
        wheel = ("Wheel-Version: 1.0\nGenerator: forkshim_build\n"
                 "Root-Is-Purelib: %s\nTag: %s\n"
                 % ("true" if pure else "false", tag))
        _add(zf, record, dist_info + "/WHEEL", wheel.encode())
        record.append(dist_info + "/RECORD,,")
        info = zipfile.ZipInfo(dist_info + "/RECORD", EPOCH)
        info.external_attr = 0o100644 << 16
        zf.writestr(info, "\n".join(record) + "\n")
    return filename


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    """config_settings["library"] (pip wheel --config-settings
    library=/abs/path/libforkshim.so.1) puts that file into the wheel as
    forkshim/libforkshim.so.1."""
    files = _files()
    lib = (config_settings or {}).get("library")
    if lib:
        if not os.path.isabs(lib) or not os.path.isfile(lib):
            raise RuntimeError("forkshim_build: library=%s: not an absolute "
                               "path to a file" % lib)
        with open(lib, "rb") as f:
            if f.read(4) != b"\x7fELF":
                raise RuntimeError("forkshim_build: library=%s: not an ELF "
                                   "file" % lib)
        files = [f for f in files if f[0] != PACKAGE + "/" + LIBRARY]
        files.append((PACKAGE + "/" + LIBRARY, lib))
    pure = (PACKAGE + "/" + LIBRARY) not in [a for a, _ in files]
    return _wheel(wheel_directory, files, pure)


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    """PEP 660 (pip install -e): a .pth file that puts this directory on
    sys.path."""
    pth = os.path.join(wheel_directory, "_forkshim_editable.pth")
    with open(pth, "w") as f:
        f.write(HERE + "\n")
    try:
        return _wheel(wheel_directory, [("_forkshim_editable.pth", pth)],
                      pure=True)
    finally:
        os.unlink(pth)


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = "%s-%s" % (project["name"], project["version"])
    names = ["pyproject.toml", "forkshim_build.py", "README.md"]
    names += [a for a, _ in _files() if not a.endswith("/" + LIBRARY)]
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz",
                      format=tarfile.PAX_FORMAT) as tf:
        for name in names:
            tf.add(os.path.join(HERE, name), base + "/" + name,
                   filter=_sdist_entry)
        data = _metadata(project).encode("utf-8")
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size = len(data)
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(data))
    return filename


def _sdist_entry(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 315532800  # 1980-01-01
    return info
