#!/usr/bin/env bash
# Benchmark: kiln build against BuildKit (Docker's default builder, the peer users pick: Debian's
# /usr/bin/docker 20.10 has it built in), Docker's classic builder (both on a private dockerd started here)
# and buildah (when installed), in the same run, on three workloads, each cold (nothing cached) and fully cached:
#   small   7 instructions with 2 RUN on busybox
#   copy20k COPY of a generated 20,000-file, ~200 MB context
#   stages  three stages joined by COPY --from
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
[ "$(id -u)" -eq 0 ] || { echo "bench/build.sh needs root"; exit 1; }
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
export KILN_ROOT="$work/store"
kiln() { node bin/kiln "$@"; }
now() { date +%s.%N; }
elapsed() { local t0; t0=$(now); "$@" > /dev/null 2>&1; echo "$(now) - $t0" | bc -l; }

dockerd_pid=
cleanup() {
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/busybox-rootfs.sh "$work/busybox-rootfs.tar"
kiln import "$work/busybox-rootfs.tar" busybox:latest > /dev/null
kiln save -o "$work/busybox.tar" busybox:latest

have_docker=
# BuildKit is built into Debian's docker.io CLI (a newer docker on the PATH may need a buildx plugin it lacks).
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker || true)
if command -v dockerd > /dev/null && [ -n "$docker_cli" ]; then
  dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$work/docker" --exec-root "$work/dx" \
    --pidfile "$work/dockerd.pid" -H "unix://$work/docker.sock" > "$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do grep -q 'API listen on' "$work/dockerd.log" && break; sleep 0.2; done
  "$docker_cli" -H "unix://$work/docker.sock" load -i "$work/busybox.tar" > /dev/null && have_docker=1
fi
have_buildah=
if command -v buildah > /dev/null; then
  # The archive names busybox:latest; buildah stores it as localhost/busybox:latest, which FROM busybox finds.
  buildah --root "$work/buildah" --runroot "$work/buildah-run" pull "docker-archive:$work/busybox.tar" > /dev/null 2>&1 && have_buildah=1
fi

# The workloads.
mkdir -p "$work/small" "$work/copy20k/files" "$work/stages"
printf 'a\n' > "$work/small/a.txt"
cat > "$work/small/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY a.txt .
RUN echo one > one && cp a.txt b.txt
RUN echo two > two
CMD ["cat", "one"]
EOF
# 20,000 files in 200 directories, 10 KiB each (~200 MB), from /dev/urandom.
node -e '
const { mkdirSync, writeFileSync } = require("node:fs");
const { randomBytes } = require("node:crypto");
const root = process.argv[1];
for (let d = 0; d < 200; d++) {
  mkdirSync(`${root}/d${d}`, { recursive: true });
  for (let f = 0; f < 100; f++) writeFileSync(`${root}/d${d}/f${f}`, randomBytes(10240));
}' "$work/copy20k/files"
printf 'FROM busybox\nCOPY files /data\n' > "$work/copy20k/Dockerfile"
cat > "$work/stages/Dockerfile" <<'EOF'
FROM busybox AS one
RUN mkdir /out && echo one > /out/one
FROM busybox AS two
RUN mkdir /out && echo two > /out/two
FROM busybox
COPY --from=one /out /one
COPY --from=two /out /two
EOF
echo "context copy20k: $(find "$work/copy20k/files" -type f | wc -l) files, $(du -sm "$work/copy20k/files" | cut -f1) MB"

row() { printf '%-9s %-7s %9s %9s %7s %9s %7s %9s %7s\n' "$@"; }
row workload cache kiln buildkit ratio classic ratio buildah ratio
for w in small copy20k stages; do
  sync
  k_cold=$(elapsed kiln build --no-cache --network none -t "bench:$w" "$work/$w")
  k_warm=$(elapsed kiln build --network none -t "bench:$w" "$work/$w")
  bk_cold=-; bk_warm=-; d_cold=-; d_warm=-; b_cold=-; b_warm=-
  if [ -n "$have_docker" ]; then
    sync
    bk_cold=$(DOCKER_BUILDKIT=1 elapsed "$docker_cli" -H "unix://$work/docker.sock" build --no-cache --network=none -t "bench:$w" "$work/$w")
    bk_warm=$(DOCKER_BUILDKIT=1 elapsed "$docker_cli" -H "unix://$work/docker.sock" build --network=none -t "bench:$w" "$work/$w")
    sync
    d_cold=$(DOCKER_BUILDKIT=0 elapsed "$docker_cli" -H "unix://$work/docker.sock" build --no-cache --network=none -t "bench:$w" "$work/$w")
    d_warm=$(DOCKER_BUILDKIT=0 elapsed "$docker_cli" -H "unix://$work/docker.sock" build --network=none -t "bench:$w" "$work/$w")
  fi
  if [ -n "$have_buildah" ]; then
    sync
    b="buildah --root $work/buildah --runroot $work/buildah-run"
    b_cold=$(elapsed $b bud --no-cache --isolation oci --network none --layers -t "bench:$w" "$work/$w")
    b_warm=$(elapsed $b bud --isolation oci --network none --layers -t "bench:$w" "$work/$w")
  fi
  ratio() { [ "$2" = - ] && echo - || printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
  sec() { [ "$1" = - ] && echo - || printf '%.2fs' "$1"; }
  row "$w" cold "$(sec "$k_cold")" "$(sec "$bk_cold")" "$(ratio "$k_cold" "$bk_cold")" "$(sec "$d_cold")" "$(ratio "$k_cold" "$d_cold")" "$(sec "$b_cold")" "$(ratio "$k_cold" "$b_cold")"
  row "$w" cached "$(sec "$k_warm")" "$(sec "$bk_warm")" "$(ratio "$k_warm" "$bk_warm")" "$(sec "$d_warm")" "$(ratio "$k_warm" "$d_warm")" "$(sec "$b_warm")" "$(ratio "$k_warm" "$b_warm")"
done
echo "ratio = kiln time / peer time (below 1: kiln is faster)"
