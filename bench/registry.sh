#!/usr/bin/env bash
# Benchmark: kiln push and pull of a ~128 MB image against skopeo (and docker, when dockerd is installed)
# on the same local registry (Debian's docker-registry on 127.0.0.1), in the same run, as ratios.
# push: from the store (uncompressed layer, so gzip at push time, as for skopeo from a docker archive);
# pull: into a fresh store (skopeo into an OCI layout; docker into its daemon). Needs root for dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npx tsc -p .
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
kiln() { node bin/kiln "$@"; }
now() { date +%s.%N; }
elapsed() { local t0; t0=$(now); "$@" > /dev/null 2>&1; echo "$(now) - $t0" | bc -l; }
registry_pid=; dockerd_pid=
cleanup() {
  for pid in $registry_pid $dockerd_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
reg=127.0.0.1:$port
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$work/registry" "$reg" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/registry.log" && break; sleep 0.1; done

# A real-looking ~128 MB tree (this machine's /usr/share and /usr/lib), one uncompressed layer.
mkdir -p "$work/rootfs"
tar -C "$work/rootfs" -xf ../shared/fixtures/images/busybox-rootfs.tar
(cd / && find usr/share usr/lib -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
  awk -v budget=$((128 << 20)) '{ sum += $1; if (sum > budget) exit; print $2 }' || true) > "$work/list"
{ tar -C / -cf - -T "$work/list" 2>/dev/null || true; } | tar -C "$work/rootfs" -xf -
export KILN_ROOT="$work/store"
kiln import -c 'CMD ["sh"]' "$work/rootfs" "$reg/bench/kiln:1" > /dev/null
kiln save -o "$work/image.tar" "$reg/bench/kiln:1"
echo "image: $(du -sm "$work/rootfs" | cut -f1) MB, one layer"

have_docker=
if [ "$(id -u)" -eq 0 ] && command -v dockerd > /dev/null; then
  dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$work/docker" --exec-root "$work/dx" \
    --pidfile "$work/dockerd.pid" -H "unix://$work/docker.sock" > "$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do grep -q 'API listen on' "$work/dockerd.log" && break; sleep 0.2; done
  have_docker=1
fi

sync
k_push=$(elapsed kiln push "$reg/bench/kiln:1")
s_push=$(elapsed skopeo copy --dest-tls-verify=false "docker-archive:$work/image.tar" "docker://$reg/bench/skopeo:1")
sync
k_pull=$(KILN_ROOT="$work/store2" elapsed node bin/kiln pull "$reg/bench/skopeo:1")
s_pull=$(elapsed skopeo copy --src-tls-verify=false "docker://$reg/bench/skopeo:1" "oci:$work/layout:1")
d_pull=-
[ -n "$have_docker" ] && d_pull=$(elapsed docker -H "unix://$work/docker.sock" pull "$reg/bench/skopeo:1")
k_repush=$(elapsed kiln push "$reg/bench/kiln:1")

ratio() { [ "$2" = - ] && echo - || printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
printf 'push:  kiln %.2fs, skopeo %.2fs, ratio %s\n' "$k_push" "$s_push" "$(ratio "$k_push" "$s_push")"
printf 'pull:  kiln %.2fs, skopeo (to an OCI layout) %.2fs, ratio %s; docker pull %s, ratio %s\n' "$k_pull" "$s_pull" "$(ratio "$k_pull" "$s_pull")" "$([ "$d_pull" = - ] && echo - || printf '%.2fs' "$d_pull")" "$(ratio "$k_pull" "$d_pull")"
printf 'second push of the same image (no layer bytes): kiln %.2fs\n' "$k_repush"
echo "ratio = kiln time / peer time (below 1: kiln is faster)"
