#!/usr/bin/env bash
# Benchmark: `kiln save` and `kiln load` of a >=100 MB image against the plain-tool peers doing the same
# byte work in the same run: `tar` writing the blobs to a file (save), and `tar -x` plus `sha256sum`
# of every blob (load). Docker is timed too when a daemon answers. Prints seconds and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
MB=${BENCH_MB:-128}
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT="$work/store"
kiln() { bin/kiln "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.3f'; }

mkdir -p "$work/rootfs"
for i in $(seq 1 $((MB / 8))); do head -c $((8 << 20)) /dev/urandom > "$work/rootfs/f$i"; done
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
kiln import "$work/rootfs.tar" bench:big > /dev/null
size=$(stat -c %s "$work/rootfs.tar")
echo "image: $((size >> 20)) MiB in one layer"

sync; t0=$(now); kiln save -o "$work/kiln.tar" bench:big; t1=$(now)
kiln_save=$(secs "$t0" "$t1")
sync; t0=$(now); tar -C "$KILN_ROOT" -cf "$work/peer.tar" blobs; t1=$(now)
peer_save=$(secs "$t0" "$t1")

sync; t0=$(now); KILN_ROOT="$work/store2" bin/kiln load -i "$work/kiln.tar" > /dev/null; t1=$(now)
kiln_load=$(secs "$t0" "$t1")
sync; t0=$(now); mkdir -p "$work/peer" && tar -C "$work/peer" -xf "$work/kiln.tar" && sha256sum "$work"/peer/blobs/sha256/* > /dev/null; t1=$(now)
peer_load=$(secs "$t0" "$t1")

printf '%-34s %8ss  (peer %ss, ratio %.2f)\n' "kiln save vs tar -c" "$kiln_save" "$peer_save" "$(echo "$kiln_save / $peer_save" | bc -l)"
printf '%-34s %8ss  (peer %ss, ratio %.2f)\n' "kiln load vs tar -x + sha256sum" "$kiln_load" "$peer_load" "$(echo "$kiln_load / $peer_load" | bc -l)"
if docker info > /dev/null 2>&1; then
  t0=$(now); docker load -i "$work/kiln.tar" > /dev/null; t1=$(now); echo "docker load: $(secs "$t0" "$t1")s"
  t0=$(now); docker save -o "$work/docker.tar" bench:big; t1=$(now); echo "docker save: $(secs "$t0" "$t1")s"
else
  echo "docker: no daemon answers here, not timed"
fi
