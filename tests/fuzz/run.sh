#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# in their own build directory and runs each one.
#   tests/fuzz/run.sh          the seed corpus, then 20,000 new inputs each
#   tests/fuzz/run.sh --long   two minutes each
# BUILD_DIR (default build-fuzz), FUZZ_RUNS and FUZZ_SECONDS may be set.
# A crash leaves crash-* / leak-* files in the build directory's tests/;
# replay one with: FORKSHIM_MAX_REGIONS=32 BUILD/tests/fuzz_X crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."

long=OFF
for arg in "$@"; do
  case "$arg" in
    --long) long=ON ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "tests/fuzz/run.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
if ! command -v clang >/dev/null ||
  [ ! -e "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
  echo "tests/fuzz/run.sh: installing clang and its runtimes"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-14-dev >/dev/null
fi

build=${BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$build" -DFORKSHIM_FUZZ=ON -DFORKSHIM_WERROR=ON \
  -DFORKSHIM_LONG_TESTS=$long -DFUZZ_RUNS="${FUZZ_RUNS:-20000}" \
  -DFUZZ_SECONDS="${FUZZ_SECONDS:-120}" >/dev/null
cmake --build "$build" -j"${JOBS:-$(nproc)}" \
  --target fuzz_handles fuzz_model fuzz_config fuzz_tokens
echo "== fuzz"
ctest --test-dir "$build" -R '^fuzz_' --output-on-failure
