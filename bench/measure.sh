# shellcheck shell=bash disable=SC2154
# Sourced by the benchmarks: timing with /usr/bin/time, into files under $work (which the caller makes and removes).

# "wall-seconds cpu-seconds max-RSS-KiB" of a command that must succeed, its output dropped.
measure() {
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" > /dev/null 2> "$work/stderr" || { echo "failed: $*" >&2; cat "$work/stderr" >&2; exit 1; }
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time"
}
# The best wall and CPU times of three runs (the machine may be shared), and the largest peak memory.
best3() {
  local runs=()
  for _ in 1 2 3; do runs+=("$(measure "$@")"); done
  printf '%s\n' "${runs[@]}" | awk 'NR == 1 || $1 < t { t = $1 } NR == 1 || $2 < c { c = $2 } $3 > m { m = $3 } END { printf "%.2f %.2f %d\n", t, c, m }'
}
