"""python3 -m forkshim [--library] SCRIPT [ARGS...] | -m MODULE | -c CODE

Runs Python with libforkshim preloaded: the arguments after the options are
handed to this same interpreter unchanged, with the library put first in
LD_PRELOAD.  The library is taken from, in order:

  1. the forkshim package's own directory (a wheel carries its copy there;
     the Debian package puts a link there to the installed library);
  2. the build tree, when this package is inject/python/forkshim in a
     source tree built into <source>/build;
  3. the system: the installed libforkshim.so.1 under /usr/local or /usr.

``--library`` prints the library that would be preloaded and exits.  The
interpreter's own options given before ``-m forkshim`` (``python3 -u -X
dev -m forkshim prog.py``) are passed on (Python >= 3.10)."""

import os
import sys
import sysconfig

LIB = "libforkshim.so.1"
HERE = os.path.dirname(os.path.abspath(__file__))


def candidates():
    """Where the library is looked for, in the order it is looked for."""
    yield os.path.join(HERE, LIB)
    source = os.path.dirname(os.path.dirname(HERE))  # inject/python/forkshim
    source = os.path.dirname(source)
    if os.path.isfile(os.path.join(source, "shim", "include", "forkshim.h")):
        yield os.path.join(source, "build", "shim", LIB)
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for prefix in ("/usr/local", "/usr"):
        if arch:
            yield os.path.join(prefix, "lib", arch, LIB)
        yield os.path.join(prefix, "lib", LIB)


def library():
    """The library to preload (an absolute path), or None."""
    for path in candidates():
        if os.path.isfile(path):
            return os.path.realpath(path)
    return None


def interpreter_options():
    """The options this interpreter was started with before ``-m forkshim``
    (``python3 -X dev -u -m forkshim prog.py``: ``-X dev -u``), to start the
    program's interpreter with them too.  Python >= 3.10 (sys.orig_argv);
    none on older ones."""
    args = list(getattr(sys, "orig_argv", None) or [])[1:]
    for i, a in enumerate(args):
        if not a.startswith("-") or a.startswith("--"):
            continue
        if a.endswith("m") and args[i + 1:i + 2] == ["forkshim"]:
            head = a[:-1]  # "-um forkshim": "-u"
        elif a.endswith("mforkshim"):
            head = a[:-len("mforkshim")]
        else:
            continue
        return args[:i] + ([head] if head != "-" else [])
    return []


def main(argv):
    prog = "python3 -m forkshim"
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__.replace("python3 -m forkshim", prog, 1)
                         if argv else "usage: %s SCRIPT [ARGS...]\n" % prog)
        return 0 if argv else 2
    lib = library()
    if lib is None:
        sys.stderr.write("%s: %s not found; looked in: %s\n"
                         % (prog, LIB, ", ".join(candidates())))
        return 1
    if argv[0] == "--library":
        print(lib)
        return 0
    preload = [p for p in os.environ.get("LD_PRELOAD", "").replace(
        " ", ":").split(":") if p and p != lib]
    env = dict(os.environ, LD_PRELOAD=":".join([lib] + preload))
    exe = sys.executable
    try:
        os.execve(exe, [exe] + interpreter_options() + argv, env)
    except OSError as e:
        sys.stderr.write("%s: cannot run %s: %s\n" % (prog, exe, e.strerror))
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
