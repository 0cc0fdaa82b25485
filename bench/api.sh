#!/usr/bin/env bash
# Benchmark: the Engine API's overhead. `docker images` with 500 images in the store, and `docker build`
# of a cached project, through kiln serve, timed against the same commands on kiln's own CLI in the same
# run (best of 5). Needs root (builds) and the docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
command -v docker > /dev/null || { echo "bench/api.sh needs the docker CLI"; exit 1; }
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
export KILN_ROOT="$work/store"
kiln() { bin/kiln "$@"; }
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
best() {
  local best=999 t0 t
  for _ in 1 2 3 4 5; do t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t=$(echo "$(date +%s.%N) - $t0" | bc -l); best=$(echo "if ($t < $best) $t else $best" | bc -l); done
  echo "$best"
}

bash scripts/busybox-rootfs.sh "$work/busybox-rootfs.tar"
kiln import "$work/busybox-rootfs.tar" busybox:latest > /dev/null
echo "making 500 images (one layer, each its own config)..."
for i in $(seq 1 500); do kiln import -c "LABEL n=$i" "$work/busybox-rootfs.tar" "bench/img:$i" > /dev/null; done
mkdir -p "$work/project"
printf 'FROM busybox\nRUN echo one > /one\nCOPY a.txt /\nCMD ["cat", "/one"]\n' > "$work/project/Dockerfile"
echo a > "$work/project/a.txt"
kiln build -q -t bench:project "$work/project" > /dev/null

bin/kiln serve -H "unix://$work/kiln.sock" 2> "$work/serve.log" &
server_pid=$!
for _ in $(seq 100); do grep -q 'serving the Docker Engine API' "$work/serve.log" && break; sleep 0.1; done
export DOCKER_HOST="unix://$work/kiln.sock"

k_images=$(best bin/kiln images)
d_images=$(best docker images)
k_build=$(best bin/kiln build -q -t bench:project "$work/project")
d_build=$(best docker build -q -t bench:project "$work/project")
printf 'images (500): kiln CLI %.3fs, docker CLI via kiln serve %.3fs, ratio %.2f\n' "$k_images" "$d_images" "$(echo "$d_images / $k_images" | bc -l)"
printf 'cached build: kiln CLI %.3fs, docker CLI via kiln serve %.3fs, ratio %.2f\n' "$k_build" "$d_build" "$(echo "$d_build / $k_build" | bc -l)"
echo "ratio = through the API / kiln's own CLI (the API's overhead; the server is already running)"
