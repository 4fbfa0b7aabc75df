#!/usr/bin/env bash
# README's C examples of shared regions (late child, exec'd worker, result
# back) compile as printed, warning-free, and run: every ```c block of the
# section "Shared frozen regions" is one program, linked with the shim.
#   readme_examples.sh README.md LIBFORKSHIM INCLUDE_DIR CC [SANITIZER_RT]
# SANITIZER_RT (a sanitizer build's runtime) is preloaded into each example.
set -euo pipefail

readme=$1 lib=$2 inc=$3 cc=$4 rt=${5:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v dir="$work" '
  /^## / { in_sec = ($0 ~ /^## Shared frozen regions/) }
  in_sec && /^```c$/ { n++; f = dir "/example" n ".c"; code = 1; next }
  code && /^```$/ { code = 0; next }
  code { print > f }
' "$readme"

count=$(find "$work" -name 'example*.c' | wc -l)
if [ "$count" -ne 3 ]; then
  echo "readme_examples: expected 3 C examples in the section, found $count" >&2
  exit 1
fi
for src in "$work"/example*.c; do
  exe=${src%.c}
  name=$(sed -n '1s@^/\* \([a-z_]*\.c\).*@\1@p' "$src")
  "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$inc" -o "$exe" \
    "$src" -L"$(dirname "$lib")" -l:"$(basename "$lib")" \
    -Wl,-rpath,"$(dirname "$lib")"
  if ! out=$(env ${rt:+LD_PRELOAD="$rt"} "$exe" 2>&1); then
    echo "readme_examples: $name failed:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$name: $out"
done
