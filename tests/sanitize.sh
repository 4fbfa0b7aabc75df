#!/usr/bin/env bash
# Runs the test suite under sanitizers, each in a build directory of its own.
#   tests/sanitize.sh            ASan+UBSan: the whole project and the whole
#                                ctest suite (build-asan)
#   tests/sanitize.sh --tsan     the stress tests under TSan (build-tsan)
#   tests/sanitize.sh --valgrind the end-to-end hosts under valgrind
#                                memcheck (a plain debug build,
#                                build-memcheck)
#   tests/sanitize.sh --long     all three
# Options combine: --asan --tsan runs those two.
# JOBS (default: number of cores) may be set; ASAN_BUILD, TSAN_BUILD and
# MEMCHECK_BUILD name the build directories.
#
# ASan must be the first library of every process it is in, so every host a
# test starts with the shim preloaded gets the runtime first in LD_PRELOAD
# (FORKSHIM_SANITIZER_RUNTIME, read by tests/CMakeLists.txt), and the
# options below in its environment (FORKSHIM_SANITIZER_OPTIONS): hosts we do
# not build, like python3, leak by design and must not fail for it.
set -euo pipefail
cd "$(dirname "$0")/.."

asan=0 tsan=0 memcheck=0
for arg in "$@"; do
  case "$arg" in
    --asan) asan=1 ;;
    --tsan) tsan=1 ;;
    --valgrind) memcheck=1 ;;
    --long) asan=1 tsan=1 memcheck=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "tests/sanitize.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
[ $((asan + tsan + memcheck)) -gt 0 ] || asan=1
jobs=${JOBS:-$(nproc)}

need=()
command -v gcc >/dev/null || need+=(gcc)
[ "$memcheck" = 0 ] || command -v valgrind >/dev/null || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
fi

# ---- ASan + UBSan ----
if [ "$asan" = 1 ]; then
  build=${ASAN_BUILD:-build-asan}
  rt=$(gcc -print-file-name=libasan.so)
  [ -e "$rt" ] || { echo "tests/sanitize.sh: no libasan ($rt)" >&2; exit 1; }
  # A leak in a host we did not build is not ours; our own programs are
  # still checked (their options are compiled in below).
  # handle_segv=0: the shim's guard owns SIGSEGV in frozen pages.
  host_opts="ASAN_OPTIONS=detect_leaks=0:handle_segv=0:detect_odr_violation=0"
  host_opts="$host_opts;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  mkdir -p "$build"
  build=$(cd "$build" && pwd)
  # Defaults compiled into every program we build: ASan's own checks on,
  # leaks too.
  cat >"$build/sanitizer_defaults.c" <<'EOF'
const char *__asan_default_options(void)
{
	return "detect_leaks=1:handle_segv=0:detect_stack_use_after_return=1:"
	       "strict_string_checks=1:check_initialization_order=1";
}
const char *__ubsan_default_options(void)
{
	return "print_stacktrace=1:halt_on_error=1";
}
EOF
  gcc -O1 -fPIC -c "$build/sanitizer_defaults.c" -o "$build/sanitizer_defaults.o"
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
  flags="$flags -fno-omit-frame-pointer -O1 -g"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFORKSHIM_WERROR=ON \
    -DCMAKE_C_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$build/sanitizer_defaults.o" \
    -DFORKSHIM_SANITIZER_RUNTIME="$rt" \
    -DFORKSHIM_SANITIZER_OPTIONS="$host_opts" >/dev/null
  cmake --build "$build" -j"$jobs"
  echo "== ctest under ASan+UBSan ($build)"
  # The tests' own processes (ctest, cmake -E env) are not instrumented;
  # what they start inherits these.
  ASAN_OPTIONS=detect_leaks=0:handle_segv=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 900
fi

# ---- TSan: the stress tests ----
# The stress host itself, each run under a timeout: Criterion's runner
# cannot map its arena under TSan, so no driver.  Not the family mode (TSan
# cannot start threads in the child of a multithreaded fork: "dup thread")
# nor signal1 (TSan's own fork interceptor is not async-signal-safe).
# -Wno-tsan: gcc warns that TSan does not model the shim's standalone
# fences (seqlock readers); the runs below are what tells.
if [ "$tsan" = 1 ]; then
  build=${TSAN_BUILD:-build-tsan}
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFORKSHIM_WERROR=ON \
    -DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -O1 -g -Wno-tsan" \
    >/dev/null
  cmake --build "$build" -j"$jobs" --target stress_host
  echo "== stress under TSan ($build)"
  # TSan installs its own handlers at start-up, through the shim's
  # sigaction, before TSan is ready: that wrapper must cope (it used to
  # crash there, so these runs keep TSan's default handle_* options).
  export TSAN_OPTIONS="halt_on_error=1:die_after_fork=0:second_deadlock_stack=1"
  # A table of 32 slots reuses them all the time: readers (info) then race
  # the refilling of a slot, which found the plain stores of freeze.  The
  # shared mode holds up to 40 regions at once (24 private, 12 shared, a
  # child's own two): 48 slots.
  for run in "mix 10" "mix 10" "32 mix 10" "32 mix 10" "signalmt 150" \
    "shared 10" "shared 10" "48 shared 10" "48 shared 10"; do
    echo "-- stress_host $run"
    regions=${run%% *}
    case "$regions" in [0-9]*) run=${run#* } ;; *) regions= ;; esac
    # shellcheck disable=SC2086
    env ${regions:+FORKSHIM_MAX_REGIONS=$regions} \
      timeout 600 "$build/tests/stress_host" $run ||
      { echo "tests/sanitize.sh: TSan: stress_host $run failed" >&2; exit 1; }
  done
  # With the per-process reports on: their exit, signal and wait paths.
  reports=$(mktemp -d)
  # dying: a fatal signal's report reads the table a thread is writing.
  for run in "mix 10" "signalmt 150" "shared 10" "dying 20"; do
    echo "-- stress_host $run, FORKSHIM_REPORT=$reports"
    # shellcheck disable=SC2086
    FORKSHIM_REPORT=$reports timeout 600 "$build/tests/stress_host" $run ||
      { echo "tests/sanitize.sh: TSan: stress_host $run (reports) failed" >&2
        exit 1; }
  done
  echo "   $(ls "$reports" | wc -l) report files"
  rm -rf "$reports"
  unset TSAN_OPTIONS
fi

# ---- valgrind memcheck: the end-to-end hosts ----
# Each host runs under memcheck with the shim preloaded; valgrind follows
# forks, so every child is checked too, and any error makes that process
# exit 99, which its parent (and so the host) reports as a failure.
memcheck_run() {
  local what=$1; shift
  echo "-- memcheck: $what"
  env -i PATH=/usr/bin:/bin LD_PRELOAD="$shim" \
    timeout 600 valgrind -q --error-exitcode=99 --leak-check=no \
    --track-origins=yes "$@" >"$log" 2>&1 ||
    { cat "$log"; echo "tests/sanitize.sh: memcheck: $what failed" >&2;
      exit 1; }
}
if [ "$memcheck" = 1 ]; then
  build=${MEMCHECK_BUILD:-build-memcheck}
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DFORKSHIM_WERROR=ON \
    >/dev/null
  cmake --build "$build" -j"$jobs" --target forkshim e2e_plugin_host \
    e2e_plugin_module e2e_mt_host e2e_fork_paths_host stress_host
  echo "== end-to-end hosts under valgrind memcheck ($build)"
  shim=$(readlink -f "$build/shim/libforkshim.so")
  log=$build/memcheck.log
  t=$build/tests
  memcheck_run "plugin host" "$t/e2e_plugin_host" "$t/forkshim_e2e_plugin.so"
  memcheck_run "20 children of 4 busy threads" "$t/e2e_mt_host" 20
  for mode in fork forkpty daemon _Fork sys_fork clone; do
    memcheck_run "fork path $mode" "$t/e2e_fork_paths_host" "$mode" 5
  done
  memcheck_run "stress mix" "$t/stress_host" mix 3
fi
echo "tests/sanitize.sh: all passed"
