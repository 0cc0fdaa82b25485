# shellcheck shell=bash disable=SC2154
# Sourced by the benchmarks: timing with bash's `time` (to the millisecond) and /usr/bin/time (peak
# memory), into files under $work (which the caller makes and removes).

# "wall-seconds cpu-seconds max-RSS-KiB" of a command that must succeed, its output dropped. GNU time
# prints wall time to the hundredth of a second only: a ratio of two commands of some 0.1 s moved by 10 %
# with its rounding.
measure() {
  local TIMEFORMAT='%3R %3U %3S' wall user sys
  { time /usr/bin/time -f '%M' -o "$work/time" "$@" > /dev/null 2> "$work/stderr"; } 2> "$work/wall" || { echo "failed: $*" >&2; cat "$work/stderr" >&2; exit 1; }
  read -r wall user sys < "$work/wall"
  awk -v wall="$wall" -v user="$user" -v sys="$sys" '{ printf "%s %.3f %s\n", wall, user + sys, $1 }' "$work/time"
}
# The best wall and CPU times of three runs (the machine may be shared), and the largest peak memory.
best3() {
  local runs=()
  for _ in 1 2 3; do runs+=("$(measure "$@")"); done
  printf '%s\n' "${runs[@]}" | awk 'NR == 1 || $1 < t { t = $1 } NR == 1 || $2 < c { c = $2 } $3 > m { m = $3 } END { printf "%.3f %.3f %d\n", t, c, m }'
}
