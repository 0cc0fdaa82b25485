#!/usr/bin/env bash
# Benchmark: kiln push and pull of a ~128 MB image against skopeo (and docker, when dockerd is installed)
# on the same local registry (Debian's docker-registry on 127.0.0.1), in the same run, as ratios; and the
# pull of a three-layer image made from it against docker pull.
# push: from the store (uncompressed layer, so gzip at push time, as for skopeo from a docker archive);
# pull: into a fresh store (skopeo into an OCI layout; docker into its daemon). Needs root for dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
rounds=${BENCH_ROUNDS:-3}
# BENCH_TMPFS=1: everything (stores, registry, docker) in memory, so that the disk's state does not weigh
# (on ext4 without a journal, creating files slows down for hours after many were deleted).
if [ "${BENCH_TMPFS:-}" = 1 ]; then mount -t tmpfs -o size=8g tmpfs "$work"; fi
kiln() { bin/kiln "$@"; }
now() { date +%s.%N; }
# The seconds a command takes; a failing command stops the benchmark with its output (a time would lie).
elapsed() {
  local t0; t0=$(now)
  "$@" > "$work/last.out" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.out" >&2; exit 1; }
  echo "$(now) - $t0" | bc -l
}
registry_pid=; dockerd_pid=
cleanup() {
  for pid in $registry_pid $dockerd_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_TMPFS:-}" = 1 ]; then umount -l "$work"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# One registry per round (a new storage directory), so that no tool finds blobs another round pushed.
start_registry() {
  [ -n "$registry_pid" ] && { kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; }
  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  reg=127.0.0.1:$port
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$work/registry-$1" "$reg" > "$work/registry.yml"
  docker-registry serve "$work/registry.yml" > "$work/registry-$1.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$work/registry-$1.log" && break; sleep 0.1; done
}

# A real-looking ~128 MB tree (this machine's /usr/share and /usr/lib), one uncompressed layer.
mkdir -p "$work/rootfs"
bash scripts/busybox-rootfs.sh "$work/busybox-rootfs.tar"
tar -C "$work/rootfs" -xf "$work/busybox-rootfs.tar"
(cd / && find usr/share usr/lib -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
  awk -v budget=$((128 << 20)) '{ sum += $1; if (sum > budget) exit; print $2 }' || true) > "$work/list"
{ tar -C / -cf - -T "$work/list" 2>/dev/null || true; } | tar -C "$work/rootfs" -xf -
KILN_ROOT="$work/store" kiln import -c 'CMD ["sh"]' "$work/rootfs" bench/image:1 > /dev/null
KILN_ROOT="$work/store" kiln save -o "$work/image.tar" bench/image:1
# A three-layer image as images usually are: that one with two more layers (the same files split in two).
mkdir -p "$work/context/a" "$work/context/b"
half=$(($(wc -l < "$work/list") / 2))
{ head -n "$half" "$work/list" | tar -C / -cf - -T - 2>/dev/null || true; } | tar -C "$work/context/a" -xf -
{ tail -n +"$((half + 1))" "$work/list" | tar -C / -cf - -T - 2>/dev/null || true; } | tar -C "$work/context/b" -xf -
printf 'FROM bench/image:1\nCOPY a /a\nCOPY b /b\n' > "$work/context/Dockerfile"
KILN_ROOT="$work/store" kiln build -q -t bench/layers:1 "$work/context" > /dev/null
KILN_ROOT="$work/store" kiln save -o "$work/layers.tar" bench/layers:1
rm -rf "$work/rootfs" "$work/store" "$work/context"
echo "images: $(du -sm "$work/image.tar" | cut -f1) MB in one layer, and $(du -sm "$work/layers.tar" | cut -f1) MB in three; best of $rounds rounds, the order of the tools alternating"

have_docker=
if [ "$(id -u)" -eq 0 ] && command -v dockerd > /dev/null; then
  dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$work/docker" --exec-root "$work/dx" \
    --pidfile "$work/dockerd.pid" -H "unix://$work/docker.sock" > "$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do grep -q 'API listen on' "$work/dockerd.log" && break; sleep 0.2; done
  have_docker=1
fi

best() { if [ "$1" = - ] || { [ "$2" != - ] && [ "$(echo "$2 < $1" | bc -l)" = 1 ]; }; then echo "$2"; else echo "$1"; fi; }
k_push=-; s_push=-; k_pull=-; s_pull=-; d_pull=-; k_repush=-; k_pull3=-; d_pull3=-
for round in $(seq "$rounds"); do
  start_registry "$round"
  # The store holds the layer uncompressed (as loaded from a docker save), so push compresses, as skopeo does.
  KILN_ROOT="$work/push-$round" kiln load -q -i "$work/image.tar" > /dev/null
  KILN_ROOT="$work/push-$round" kiln tag bench/image:1 "$reg/bench/kiln:1"
  push_kiln() { k_push=$(best "$k_push" "$(KILN_ROOT="$work/push-$round" elapsed bin/kiln push "$reg/bench/kiln:1")"); }
  push_skopeo() { s_push=$(best "$s_push" "$(elapsed skopeo copy --dest-tls-verify=false "docker-archive:$work/image.tar" "docker://$reg/bench/skopeo:1")"); }
  pull_kiln() { k_pull=$(best "$k_pull" "$(KILN_ROOT="$work/pull-$round" elapsed bin/kiln pull "$reg/bench/skopeo:1")"); }
  pull_skopeo() { s_pull=$(best "$s_pull" "$(elapsed skopeo copy --src-tls-verify=false "docker://$reg/bench/skopeo:1" "oci:$work/layout-$round:1")"); }
  pull_docker() {
    [ -n "$have_docker" ] || return 0
    docker -H "unix://$work/docker.sock" image prune -af > /dev/null # earlier rounds' layers would be found
    d_pull=$(best "$d_pull" "$(elapsed docker -H "unix://$work/docker.sock" pull "$reg/bench/skopeo:1")")
  }
  pull3_kiln() { k_pull3=$(best "$k_pull3" "$(KILN_ROOT="$work/pull3-$round" elapsed bin/kiln pull "$reg/bench/layers:1")"); }
  pull3_docker() {
    [ -n "$have_docker" ] || return 0
    docker -H "unix://$work/docker.sock" image prune -af > /dev/null
    d_pull3=$(best "$d_pull3" "$(elapsed docker -H "unix://$work/docker.sock" pull "$reg/bench/layers:1")")
  }
  sync
  if [ $((round % 2)) = 1 ]; then push_kiln; push_skopeo; else push_skopeo; push_kiln; fi
  skopeo copy -q --dest-tls-verify=false "docker-archive:$work/layers.tar" "docker://$reg/bench/layers:1"
  sync
  if [ $((round % 2)) = 1 ]; then pull_kiln; pull_skopeo; pull_docker; else pull_docker; pull_skopeo; pull_kiln; fi
  if [ $((round % 2)) = 1 ]; then pull3_kiln; pull3_docker; else pull3_docker; pull3_kiln; fi
  k_repush=$(best "$k_repush" "$(KILN_ROOT="$work/push-$round" elapsed bin/kiln push "$reg/bench/kiln:1")")
  rm -rf "$work/push-$round" "$work/pull-$round" "$work/pull3-$round" "$work/layout-$round"
done

ratio() { [ "$2" = - ] && echo - || printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
printf 'push:  kiln %.2fs, skopeo %.2fs, ratio %s\n' "$k_push" "$s_push" "$(ratio "$k_push" "$s_push")"
printf 'pull:  kiln %.2fs, skopeo (to an OCI layout) %.2fs, ratio %s; docker pull %s, ratio %s\n' "$k_pull" "$s_pull" "$(ratio "$k_pull" "$s_pull")" "$([ "$d_pull" = - ] && echo - || printf '%.2fs' "$d_pull")" "$(ratio "$k_pull" "$d_pull")"
printf 'pull of the three-layer image: kiln %.2fs, docker pull %s, ratio %s\n' "$k_pull3" "$([ "$d_pull3" = - ] && echo - || printf '%.2fs' "$d_pull3")" "$(ratio "$k_pull3" "$d_pull3")"
printf 'second push of the same image (no layer bytes): kiln %.2fs\n' "$k_repush"
# What the speed costs in bytes: the gzip layer each tool pushed (the last round's registry).
layer_size() { curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/bench/$1/manifests/1" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).layers[0].size))'; }
k_size=$(layer_size kiln); s_size=$(layer_size skopeo)
printf 'pushed layer: kiln %s bytes (gzip through %s), skopeo %s bytes, ratio %s\n' "$k_size" "$(bin/kiln version -f '{{.Client.Gzip}}')" "$s_size" "$(ratio "$k_size" "$s_size")"
echo "ratio = kiln time / peer time (below 1: kiln is faster)"
