# shellcheck shell=bash
# Sourced by benchmark scripts (scripts/bench/shared, scripts/bench/pool/run)
# for --try-shmem-thp[=advise|within_size|always], as root:
#   shmem_thp_arg NAME ARG prints the value ARG asks for (advise when
#                          bare), nothing when ARG is another argument;
#                          exits 2 on a value it does not take (NAME: the
#                          caller, in the message)
#   shmem_thp_try NAME V   sets /sys/kernel/mm/transparent_hugepage/
#                          shmem_enabled to V for this run only, says so,
#                          and puts the value it found back on exit,
#                          whatever the exit (an EXIT trap: run the
#                          benchmark as a child, not with exec)
# The library never changes the setting; this shows what shared regions
# cost where the system allows shmem huge pages.
shmem_thp_knob=/sys/kernel/mm/transparent_hugepage/shmem_enabled

shmem_thp_arg() {
  case $2 in
    --try-shmem-thp) echo advise ;;
    --try-shmem-thp=advise | --try-shmem-thp=within_size | \
      --try-shmem-thp=always) echo "${2#*=}" ;;
    --try-shmem-thp=*)
      echo "$1: --try-shmem-thp takes advise, within_size or always" >&2
      exit 2
      ;;
  esac
}

shmem_thp_restore() {
  echo "$shmem_thp_was" >"$shmem_thp_knob"
  echo "shmem_enabled restored to: $(cat "$shmem_thp_knob")"
}

shmem_thp_try() {
  if [ "$(id -u)" != 0 ] || [ ! -w "$shmem_thp_knob" ]; then
    echo "$1: --try-shmem-thp needs root and a writable $shmem_thp_knob" >&2
    exit 2
  fi
  shmem_thp_was=$(sed -n 's/.*\[\([a-z_]*\)\].*/\1/p' "$shmem_thp_knob")
  trap shmem_thp_restore EXIT
  trap 'exit 130' INT TERM
  echo "$2" >"$shmem_thp_knob"
  echo "shmem_enabled set to $2 for this run only (was $shmem_thp_was):" \
    "$(cat "$shmem_thp_knob")"
}
