#!/usr/bin/env bash
# Installs a forkshim .deb with apt into a throwaway copy of this machine's
# system and runs what a user would, with nothing from the source or build
# tree in reach; then removes it with apt and checks that nothing is left.
#   tests/package/check_deb.sh BUILD/forkshim_<version>_<arch>.deb
# Needs root (CI runs as root).  How: a private mount namespace (unshare
# --mount) where /usr, /etc and /var are overlayfs mounts whose writable
# upper layers are on a tmpfs, so dpkg, apt and ldconfig write only there
# and the machine's real system never changes; the source tree and the
# package's directory are covered by empty tmpfs mounts, and the checks run
# in a directory of that tmpfs (also their TMPDIR) with a clean environment.  apt finds
# the package's dependencies already installed (scripts/setup), so it
# downloads nothing.  "Nothing left" is read off the upper layers after the
# removal: no file under /usr, nothing in /etc but ld.so.cache.
set -euo pipefail

if [ "${1:-}" != --in-namespace ]; then
  [ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
  [ "$(id -u)" -eq 0 ] || { echo "$0: needs root" >&2; exit 2; }
  exec unshare --mount --propagation private "$0" --in-namespace \
    "$(realpath "$1")" "$(cd "$(dirname "$0")/../.." && pwd)"
fi
deb=$2 source=$3

# The layers, on a tmpfs only this namespace sees.
layers=$(mktemp -d /tmp/check_deb.XXXXXX)
# At exit the namespace's mounts go; its mount point, an empty directory of
# the real /tmp, is removed (the overlays keep the tmpfs busy: lazily).
trap 'umount -l "$layers" 2>/dev/null; rmdir "$layers"' EXIT
mount -t tmpfs -o mode=0700 check_deb "$layers"
cp "$deb" "$layers/"
pkg=$layers/$(basename "$deb")
for d in usr etc var; do
  mkdir -p "$layers/$d.upper" "$layers/$d.work"
  mount -t overlay "check_deb_$d" -o \
    "lowerdir=/$d,upperdir=$layers/$d.upper,workdir=$layers/$d.work" "/$d"
done
# What a machine that never saw the build would not have.
for d in "$(dirname "$deb")" "$source"; do
  case "$layers/" in "${d%/}"/*) continue ;; esac  # would hide the layers
  mount -t tmpfs -o mode=0755 empty "$d"
done
work=$layers/tmp
mkdir -m 1777 "$work"

clean_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME=/root LANG=C.UTF-8 TMPDIR="$work" DEBIAN_FRONTEND=noninteractive)
run() { (cd "$work" && "${clean_env[@]}" "$@"); }
fail() { echo "check_deb: FAIL: $*" >&2; exit 1; }

name=$(dpkg-deb -f "$pkg" Package)
dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' &&
  fail "$name is already installed on this machine: remove it first"

# README's lines as printed, but for -y (no one to answer here).
echo "== apt install -y ./$(basename "$pkg")"
(cd "$layers" && "${clean_env[@]}" apt install -y ./forkshim_*.deb) \
  >"$layers/install.log" 2>&1 || { cat "$layers/install.log" >&2; fail "apt install"; }
grep -E '^(Get|Need to get)' "$layers/install.log" || true
files=$(dpkg -L "$name")

echo "== forkshim doctor bash"
run forkshim doctor bash || fail "forkshim doctor bash"

echo "== forkshim -- python3 -c 'import forkshim; print(forkshim.available())'"
out=$(run forkshim -- python3 -c 'import forkshim; print(forkshim.available())')
echo "$out"
[ "$out" = True ] || fail "expected True"
out=$(run python3 -c 'import forkshim; print(forkshim.__file__)' 2>/dev/null)
case "$out" in /usr/lib/python3/dist-packages/forkshim/*) ;;
  *) fail "python3 imported forkshim from $out" ;;
esac

echo "== python3 -m forkshim script.py"
cat >"$work/script.py" <<'PY'
import sys
import forkshim
print(forkshim.available(), sys.argv[1:])
PY
out=$(run python3 -m forkshim "$work/script.py" a b)
echo "$out"
[ "$out" = "True ['a', 'b']" ] || fail "python3 -m forkshim"

echo "== a C program built with pkg-config --cflags --libs forkshim"
cat >"$work/prog.c" <<'C'
#include <forkshim.h>
#include <forkshim_client.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return 1;
	strcpy(page, "frozen before the fork");
	forkshim_handle h = forkshim_freeze(page, 4096, "check", 0);
	if (h == 0 || forkshim_client_get() == NULL)
		return 2;
	pid_t pid = fork();
	if (pid == 0) {
		size_t len;
		const char *p = forkshim_deref(h, &len);
		_exit(p && len == 4096 && !strcmp(p, "frozen before the fork") ? 0 : 3);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return 4;
	printf("forkshim %s: the child read the frozen page\n", forkshim_version());
	return forkshim_thaw(h);
}
C
flags=$(run pkg-config --cflags --libs forkshim)
echo "pkg-config: $flags"
(cd "$work" && "${clean_env[@]}" bash -ec \
  'cc -o prog prog.c $(pkg-config --cflags --libs forkshim)') || fail "cc"
run "$work/prog" || fail "the C program exited $?"
lib=$(run ldd "$work/prog" | awk '/libforkshim/ { print $3 }')
echo "libforkshim: $lib -> $(readlink -f "$lib")"
[ "$(readlink -f "$lib")" = "$(readlink -f "$(dpkg -L "$name" |
  grep '/libforkshim\.so\.[0-9.]*$' | head -1)")" ] || fail "not the package's library"

echo "== apt remove -y $name"
run apt remove -y "$name" >"$layers/remove.log" 2>&1 ||
  { cat "$layers/remove.log" >&2; fail "apt remove"; }
# A package with a postrm (CPack's, running ldconfig) stays known to dpkg
# as "config-files" after a remove, until a purge, even with no conffiles.
status=$(dpkg-query -W -f='${Status} ${Conffiles}' "$name" 2>/dev/null || true)
case "$status" in "" | *not-installed* | "deinstall ok config-files ") ;;
  *) fail "dpkg status after remove: $status" ;;
esac
for f in $files; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  [ -d "$f" ] && [ ! -L "$f" ] && continue  # shared directories stay
  fail "$f is still there"
done
left=$(cd "$layers/usr.upper" && find . ! -type d)
[ -z "$left" ] || fail "left under /usr: $left"
left=$(cd "$layers/etc.upper" && find . ! -type d ! -path ./ld.so.cache)
[ -z "$left" ] || fail "left under /etc: $left"
run apt-get purge -y -q "$name" >"$layers/purge.log" 2>&1 ||
  { cat "$layers/purge.log" >&2; fail "apt-get purge"; }
status=$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null || true)
case "$status" in "" | *not-installed) ;; *) fail "dpkg status after purge: $status" ;; esac
echo "check_deb: $(basename "$pkg"): installed, the checks passed, removed (and purged), nothing left"
