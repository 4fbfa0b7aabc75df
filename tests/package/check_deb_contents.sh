#!/usr/bin/env bash
# Checks what a forkshim .deb holds, without installing it:
#   tests/package/check_deb_contents.sh PACKAGE.deb VERSION MULTIARCH
# - its file list is exactly the expected one (library with its SONAME and
#   links, the two headers, forkshim.pc, the launcher, its gzip'd man page,
#   the Python package with its link to the library);
# - the library's SONAME is libforkshim.so.1, forkshim.pc's prefix is /usr;
# - Depends names, for every library an ELF file of the package needs
#   (readelf NEEDED) and the package does not hold itself, the Debian
#   package that has that library on this machine; and libunwind8 (opened
#   with dlopen by the guard) and python3.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 PACKAGE.deb VERSION MULTIARCH" >&2; exit 2; }
deb=$1 version=$2 arch=$3
fail() { echo "check_deb_contents: FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"

lib=usr/lib/$arch
py=usr/lib/python3/dist-packages/forkshim
expected="usr/bin/forkshim
usr/include/forkshim.h
usr/include/forkshim_client.h
$lib/libforkshim.so -> libforkshim.so.1
$lib/libforkshim.so.$version
$lib/libforkshim.so.1 -> libforkshim.so.$version
$lib/pkgconfig/forkshim.pc
$py/__init__.py
$py/__main__.py
$py/mapping.py
$py/objects.py
$py/libforkshim.so.1 -> ../../../$arch/libforkshim.so.1
usr/share/man/man1/forkshim.1.gz"
expected=$(echo "$expected" | LC_ALL=C sort)
actual=$(cd "$tmp/root" && find . ! -type d | sed 's#^\./##' | LC_ALL=C sort |
  while IFS= read -r f; do
    if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f"; fi
  done)
if [ "$actual" != "$expected" ]; then
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  fail "file list (- expected, + in the package)"
fi
echo "files: the $(echo "$actual" | wc -l) expected"

soname=$(readelf -d "$tmp/root/$lib/libforkshim.so.$version" |
  sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libforkshim.so.1 ] || fail "SONAME is '$soname'"
grep -qx 'prefix=/usr' "$tmp/root/$lib/pkgconfig/forkshim.pc" ||
  fail "forkshim.pc: $(head -1 "$tmp/root/$lib/pkgconfig/forkshim.pc")"
gzip -t "$tmp/root/usr/share/man/man1/forkshim.1.gz" || fail "man page"
echo "SONAME $soname, forkshim.pc prefix=/usr, man page gzip'd"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
has() { echo ", $depends," | grep -Eq ", $1( \([^)]*\))?,"; }
own=$(cd "$tmp/root" && find . -name 'lib*.so*' -printf '%f\n')
for f in $(cd "$tmp/root" && find . -type f); do
  [ "$(head -c4 "$tmp/root/$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  for needed in $(readelf -d "$tmp/root/$f" |
    sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    echo "$own" | grep -qx "$needed" && continue
    owner=$(dpkg-query -S "/lib/$arch/$needed" "/usr/lib/$arch/$needed" \
      "/lib64/$needed" 2>/dev/null | head -1 | cut -d: -f1 || true)
    [ -n "$owner" ] || fail "$f needs $needed, which no installed package has"
    has "$owner" || fail "$f needs $needed (package $owner), not in Depends"
    echo "  ${f#./} needs $needed: $owner"
  done
done
for p in libunwind8 python3; do has "$p" || fail "$p not in Depends"; done
echo "check_deb_contents: $(basename "$deb"): ok"
