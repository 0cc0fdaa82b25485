#!/usr/bin/env bash
# Benchmark: unpacking a ~128 MB single-layer image (kiln's safe layer apply) against `tar -x` of the
# same uncompressed tar in the same run, and the first vs second `kiln run` of that image. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
[ "$(id -u)" -eq 0 ] || { echo "bench/unpack.sh needs root (kiln run)"; exit 1; }
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT="$work/store"
kiln() { bin/kiln "$@"; }
now() { date +%s.%N; }

# A real-looking tree: a busybox root filesystem (scripts/busybox-rootfs.sh) plus the first ~128 MB of this machine's
# /usr/share and /usr/lib (many small files, some large ones), as one uncompressed layer.
mkdir -p "$work/rootfs"
bash scripts/busybox-rootfs.sh "$work/busybox-rootfs.tar"
tar -C "$work/rootfs" -xf "$work/busybox-rootfs.tar"
(cd / && find usr/share usr/lib -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
  awk -v budget=$((128 << 20)) '{ sum += $1; if (sum > budget) exit; print $2 }' || true) > "$work/list"
{ tar -C / -cf - -T "$work/list" 2>/dev/null || true; } | tar -C "$work/rootfs" -xf -
tar -C "$work/rootfs" -cf "$work/layer.tar" .
echo "layer: $(( $(stat -c %s "$work/layer.tar") >> 20 )) MiB, $(tar -tf "$work/layer.tar" | wc -l) entries"

# Best of three each, alternating, after a sync, so write-back of one run does not land on the other.
best() { sort -n | head -1; }
kiln_times=(); tar_times=()
for round in 1 2 3; do
  rm -rf "$work/k" "$work/t"; mkdir "$work/k" "$work/t"; sync
  kiln_times+=("$(node dist/bench/apply-layer.js "$work/layer.tar" "$work/k" overlay)")
  sync; t0=$(now); tar -C "$work/t" -xf "$work/layer.tar"; t1=$(now)
  tar_times+=("$(echo "$t1 - $t0" | bc -l)")
done
k=$(printf '%s\n' "${kiln_times[@]}" | best); t=$(printf '%s\n' "${tar_times[@]}" | best)
printf 'layer apply vs tar -x (best of 3): kiln %.3fs, tar %.3fs, ratio %.2f\n' "$k" "$t" "$(echo "$k / $t" | bc -l)"

# End to end: the first `kiln run` unpacks into overlay snapshots; a second one reuses them.
kiln import -c 'CMD ["true"]' "$work/layer.tar" bench:unpack > /dev/null
sync; t0=$(now); kiln run --rm --storage-driver overlay bench:unpack /bin/true; t1=$(now)
t2=$(now); kiln run --rm --storage-driver overlay bench:unpack /bin/true; t3=$(now)
printf 'kiln run, first (unpacks) %.3fs, second (snapshots reused) %.3fs\n' "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t3 - $t2" | bc -l)"
