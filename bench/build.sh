#!/usr/bin/env bash
# Benchmark: kiln build against BuildKit (Docker's default builder, the peer users pick: Debian's
# /usr/bin/docker 20.10 has it built in), Docker's classic builder (both on a private dockerd started here)
# and buildah (when installed), in the same run, on three workloads, each cold and fully cached:
#   small   7 instructions with 2 RUN on busybox
#   copy20k COPY of a generated 20,000-file, ~200 MB context
#   stages  three stages joined by COPY --from
# kiln runs as users run it, bin/kiln as a program (which starts Node without NODE_EXTRA_CA_CERTS where
# that is set: see bin/kiln's first lines). Cold means no build cache, the base image unpacked as a pull
# leaves it: for kiln a new store into which busybox is loaded and unpacked (by a `kiln run --rm busybox true`) before the timed build; for BuildKit a
# `docker builder prune -af` before it; --no-cache for the classic builder and buildah. Cached is the same
# build again at once. Each workload runs RUNS times (default 5), the builders in turn within a run, so a
# busy machine slows them alike; printed are each builder's median and, per peer, the median ratio
# kiln/peer of the runs with its min–max.
#   RUNS=5                      runs per workload (at least 5 for figures anyone should quote)
#   WORKLOADS=small,stages      which workloads (default: all three)
#   BASELINE=/path/to/checkout  another kiln checkout (built) timed as one more peer: before/after a change
#   TMPDIR=/dev/shm             where the work directory goes (default /tmp): the stores, dockerd's data and
#                               the contexts; on tmpfs, file creation costs no disk (ext4 slows it after mass deletes)
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/kiln.cjs ] || npm run --silent build
[ "$(id -u)" -eq 0 ] || { echo "bench/build.sh needs root"; exit 1; }
runs=${RUNS:-5}
workloads=${WORKLOADS:-small,copy20k,stages}
baseline=${BASELINE:-}
[ -z "$baseline" ] || [ -f "$baseline/bin/kiln" ] || { echo "BASELINE=$baseline: no bin/kiln there"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
kiln_bin=$PWD/bin/kiln
# Seconds `"$@"` takes; its output is thrown away, a failure stops the bench. Timed with bash's own clock
# ($EPOCHREALTIME, in microseconds): a `date` run on each side added its start, a millisecond or two, to
# every figure, the peers' and kiln's alike, which drew every ratio towards 1.
elapsed() {
  local t0 t1
  t0=${EPOCHREALTIME/[.,]/}
  "$@" > "$work/last.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  t1=${EPOCHREALTIME/[.,]/}
  printf '%d.%06d\n' $(((t1 - t0) / 1000000)) $(((t1 - t0) % 1000000))
}

dockerd_pid=
cleanup() {
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/busybox-rootfs.sh "$work/busybox-rootfs.tar"
"$kiln_bin" --root "$work/store-setup" import "$work/busybox-rootfs.tar" busybox:latest > /dev/null
"$kiln_bin" --root "$work/store-setup" save -o "$work/busybox.tar" busybox:latest

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
docker() { "$docker_cli" -H "unix://$work/docker.sock" "$@"; }
have_buildah=
if command -v buildah > /dev/null; then
  # The archive names busybox:latest; buildah stores it as localhost/busybox:latest, which FROM busybox finds.
  buildah --root "$work/buildah" --runroot "$work/buildah-run" pull "docker-archive:$work/busybox.tar" > /dev/null 2>&1 && have_buildah=1
fi

# The workloads.
mkdir -p "$work/small" "$work/stages"
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
if [[ ",$workloads," == *,copy20k,* ]]; then
  mkdir -p "$work/copy20k/files"
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
  echo "context copy20k: $(find "$work/copy20k/files" -type f | wc -l) files, $(du -sm "$work/copy20k/files" | cut -f1) MB"
fi
cat > "$work/stages/Dockerfile" <<'EOF'
FROM busybox AS one
RUN mkdir /out && echo one > /out/one
FROM busybox AS two
RUN mkdir /out && echo two > /out/two
FROM busybox
COPY --from=one /out /one
COPY --from=two /out /two
EOF

# One cold and one cached build of workload $2 by a kiln checkout ($1: its bin/kiln) on a new store with
# busybox loaded and unpacked; prints "cold cached".
kiln_pair() {
  local bin=$1 w=$2 store cold warm
  store=$(mktemp -d "$work/store-XXXXXX")
  "$bin" --root "$store" load -q -i "$work/busybox.tar" > /dev/null
  "$bin" --root "$store" run --rm --network none busybox true
  sync
  cold=$(elapsed "$bin" --root "$store" build --network none -t "bench:$w" "$work/$w")
  warm=$(elapsed "$bin" --root "$store" build --network none -t "bench:$w" "$work/$w")
  rm -rf "$store"
  echo "$cold $warm"
}

# results: one line per build: workload cache builder run seconds
results="$work/results"
: > "$results"
IFS=, read -r -a chosen <<< "$workloads"
echo "$runs runs per workload; builders in turn within a run"
# crun starts a container in about half runc's time; kiln picks it only where it runs on the host as it is.
echo "kiln runs RUN steps in $(node --input-type=module -e "console.log((await import('$PWD/dist/src/runtime/runtime.js')).buildRuntime())")"
for w in "${chosen[@]}"; do
  [ -f "$work/$w/Dockerfile" ] || { echo "WORKLOADS: no workload $w (small, copy20k, stages)"; exit 1; }
  for run in $(seq "$runs"); do
    read -r cold warm <<< "$(kiln_pair "$kiln_bin" "$w")"
    printf '%s cold kiln %s %s\n%s cached kiln %s %s\n' "$w" "$run" "$cold" "$w" "$run" "$warm" >> "$results"
    if [ -n "$baseline" ]; then
      read -r cold warm <<< "$(kiln_pair "$baseline/bin/kiln" "$w")"
      printf '%s cold baseline %s %s\n%s cached baseline %s %s\n' "$w" "$run" "$cold" "$w" "$run" "$warm" >> "$results"
    fi
    if [ -n "$have_docker" ]; then
      docker builder prune -af > /dev/null
      sync
      cold=$(DOCKER_BUILDKIT=1 elapsed docker build --no-cache --network=none -t "bench:$w" "$work/$w")
      warm=$(DOCKER_BUILDKIT=1 elapsed docker build --network=none -t "bench:$w" "$work/$w")
      printf '%s cold buildkit %s %s\n%s cached buildkit %s %s\n' "$w" "$run" "$cold" "$w" "$run" "$warm" >> "$results"
      sync
      cold=$(DOCKER_BUILDKIT=0 elapsed docker build --no-cache --network=none -t "bench:$w" "$work/$w")
      warm=$(DOCKER_BUILDKIT=0 elapsed docker build --network=none -t "bench:$w" "$work/$w")
      printf '%s cold classic %s %s\n%s cached classic %s %s\n' "$w" "$run" "$cold" "$w" "$run" "$warm" >> "$results"
    fi
    if [ -n "$have_buildah" ]; then
      sync
      b=(buildah --root "$work/buildah" --runroot "$work/buildah-run")
      cold=$(elapsed "${b[@]}" bud --no-cache --isolation oci --network none --layers -t "bench:$w" "$work/$w")
      warm=$(elapsed "${b[@]}" bud --isolation oci --network none --layers -t "bench:$w" "$work/$w")
      printf '%s cold buildah %s %s\n%s cached buildah %s %s\n' "$w" "$run" "$cold" "$w" "$run" "$warm" >> "$results"
    fi
  done
done

node - "$results" <<'EOF'
const lines = require('node:fs').readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => l.split(' '));
const peers = ['baseline', 'buildkit', 'classic', 'buildah'].filter((p) => lines.some((l) => l[2] === p));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const times = (w, cache, builder) => new Map(lines.filter((l) => l[0] === w && l[1] === cache && l[2] === builder).map((l) => [l[3], Number(l[4])]));
const cells = ['workload', 'cache', 'kiln', ...peers.flatMap((p) => [p, `kiln/${p} (min–max)`])];
const rows = [cells];
for (const w of [...new Set(lines.map((l) => l[0]))]) {
  for (const cache of ['cold', 'cached']) {
    const kiln = times(w, cache, 'kiln');
    const row = [w, cache, `${median([...kiln.values()]).toFixed(2)}s`];
    for (const peer of peers) {
      const theirs = times(w, cache, peer);
      const ratios = [...kiln].filter(([run]) => theirs.has(run)).map(([run, t]) => t / theirs.get(run));
      row.push(`${median([...theirs.values()]).toFixed(2)}s`, `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`);
    }
    rows.push(row);
  }
}
const widths = cells.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
console.log(`medians of ${Math.max(...lines.map((l) => Number(l[3])))} runs; ratio = kiln time / peer time per run (below 1: kiln is faster), its median and min–max`);
EOF
