#!/usr/bin/env bash
# Checks a forkshim wheel as a user would use it:
#   tests/package/check_wheel.sh forkshim-<version>-py3-none-<platform>.whl
# - it is tagged for this platform and carries forkshim/libforkshim.so.1
#   (SONAME libforkshim.so.1);
# - README's lines, `python3 -m venv venv && . venv/bin/activate`, `pip
#   install forkshim-*.whl` (no index: PIP_NO_INDEX) with Debian's python3
#   (/usr/bin/python3: a pyenv python3 may come first on PATH), then, in a
#   directory outside the source tree with a clean environment,
#   `python3 -m forkshim pool.py x`: a fork Pool gets a share()d dict and
#   bytes by handle (the very objects, no FallbackWarning), the process
#   runs with the wheel's copy of the library, the module is the venv's;
# - `import forkshim` without the shim says how to load it, in one line.
set -euo pipefail
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 WHEEL" >&2; exit 2; }
python=${FORKSHIM_PYTHON:-/usr/bin/python3}
fail() { echo "check_wheel: FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
whl=$tmp/$(basename "$1")
cp "$1" "$whl"

platform=$("$python" -c 'import sysconfig, re
print(re.sub(r"[-.]", "_", sysconfig.get_platform()))')
case "$(basename "$whl")" in
  forkshim-*-py3-none-"$platform".whl) ;;
  *) fail "$(basename "$whl") is not tagged py3-none-$platform" ;;
esac
"$python" -m zipfile -e "$whl" "$tmp/unzipped"
soname=$(readelf -d "$tmp/unzipped/forkshim/libforkshim.so.1" |
  sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libforkshim.so.1 ] || fail "the wheel's library: SONAME '$soname'"
echo "wheel: $(basename "$whl"), carries forkshim/libforkshim.so.1"

# README's lines, as printed, in a clean environment whose python3 is
# $python's (Debian's).
clean=(env -i PATH="$(dirname "$python"):/usr/bin:/bin" HOME="$tmp"
  LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1)
(cd "$tmp" && "${clean[@]}" bash -ec '
  python3 -m venv venv && . venv/bin/activate
  pip install forkshim-*.whl') >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "venv and pip install"; }
clean+=(PATH="$tmp/venv/bin:/usr/bin:/bin")

cat >"$tmp/pool.py" <<'PY'
import multiprocessing as mp
import sys
import warnings

import forkshim

warnings.simplefilter("error", forkshim.FallbackWarning)
maps = open("/proc/self/maps").read()
libs = sorted({l.split()[-1] for l in maps.splitlines()
               if "libforkshim" in l})
print("module", forkshim.__file__)
print("library", libs)


def task(arg):
    obj, i = arg
    return id(obj), len(obj) + i


if __name__ == "__main__":
    d = {i: str(i) for i in range(10000)}
    b = bytes(range(256)) * 4096
    refs = [forkshim.share(d), forkshim.share(b)]
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map(task, [(r, i) for r in refs for i in range(4)])
    want = [(id(o), len(o) + i) for o in (d, b) for i in range(4)]
    print("same objects" if got == want else "DIFFERENT %r" % got)
    print("available", forkshim.available(), sys.argv[1:])
PY
out=$(cd "$tmp" && "${clean[@]}" python3 -m forkshim pool.py x 2>&1) ||
  fail "python3 -m forkshim pool.py: $out"
echo "$out"
site=$(cd "$tmp" && "${clean[@]}" python3 -c 'import sysconfig
print(sysconfig.get_paths()["purelib"])')
[ "$(echo "$out" | sed -n 1p)" = "module $site/forkshim/__init__.py" ] ||
  fail "not the venv's module"
[ "$(echo "$out" | sed -n 2p)" = "library ['$site/forkshim/libforkshim.so.1']" ] ||
  fail "not the wheel's library"
[ "$(echo "$out" | sed -n 3,4p)" = "same objects
available True ['x']" ] || fail "the pool did not get the shared objects"

echo "import forkshim" >"$tmp/hint.py"
hint=$(cd "$tmp" && "${clean[@]}" python3 hint.py 2>&1) || fail "hint.py: $hint"
echo "without the shim: $hint"
case "$hint" in
  "forkshim: the shim is not loaded"*"python3 -m forkshim hint.py"*) ;;
  *) fail "import forkshim without the shim: '$hint'" ;;
esac
[ "$(echo "$hint" | wc -l)" = 1 ] || fail "the hint is not one line"
echo "check_wheel: $(basename "$whl"): ok"
