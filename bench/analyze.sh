#!/usr/bin/env bash
# Benchmark: `kiln analyze` against the floor, `tar -t` of the same layer tars (the issue's target is at
# most 2× it; `tar -tv`, which decodes every header field as kiln must, and `sha256sum`, which reads
# every byte, for scale), in the same run, and dive when it is installed; time (best of 3) and peak
# memory (max RSS). Two images:
# - debian: this machine's Debian tree (/usr, /etc, /var/lib/dpkg, the first BENCH_MB MB, default 256) as
#   a base layer, and a build over it that deletes the docs, chmods /etc and copies a file in twice;
# - files: 100,000 generated small files in one layer.
# Needs root (kiln build runs RUN in runc).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
[ "$(id -u)" -eq 0 ] || { echo "bench/analyze.sh needs root (kiln build)"; exit 1; }
MB=${BENCH_MB:-256}
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT="$work/store"
kiln() { bin/kiln "$@"; }

# shellcheck source=bench/measure.sh
source bench/measure.sh

# The layer tars of an image, as the store holds them, through kiln save (into a directory named
# without the tag's colon: a docker-archive: source's path ends at the first colon).
layers_of() {
  local image=$1 dir="$work/layers-${1%%:*}-${1#*:}"
  mkdir -p "$dir"
  kiln save -o "$dir/image.tar" "$image"
  tar -C "$dir" -xf "$dir/image.tar"
  node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0]; for (const l of m.Layers) console.log(require("path").join(process.argv[2], l));' "$dir/manifest.json" "$dir"
}

report() {
  local name=$1 image=$2
  local archive="$work/layers-${image%%:*}-${image#*:}/image.tar" layers
  mapfile -t layers < <(layers_of "$image")
  local bytes entries
  bytes=$(du -cb "${layers[@]}" | tail -1 | cut -f1)
  entries=$(for l in "${layers[@]}"; do tar -tf "$l"; done | wc -l)
  echo "$name: ${#layers[@]} layers, $((bytes >> 20)) MiB, $entries entries"
  sync
  read -r kt kc km < <(best3 bin/kiln analyze --format json "$image")
  read -r at ac am < <(best3 bin/kiln analyze --format json "docker-archive:$archive")
  read -r tt tc tm < <(best3 sh -c 'for l; do tar -tf "$l"; done' sh "${layers[@]}")
  read -r vt vc vm < <(best3 sh -c 'for l; do tar -tvf "$l"; done' sh "${layers[@]}")
  read -r st sc sm < <(best3 sha256sum "${layers[@]}")
  read -r nt nc nm < <(best3 bin/kiln images)
  line() { printf '  %-36s %6ss wall %6ss cpu %8d KiB' "$@"; }
  ratio() { printf '   wall %.2f, cpu %.2f × %s\n' "$(echo "$1 / $3" | bc -l)" "$(echo "$2 / $4" | bc -l)" "$5"; }
  line "kiln analyze (store)" "$kt" "$kc" "$km"; ratio "$kt" "$kc" "$tt" "$tc" 'tar -t'
  line "kiln analyze docker-archive:" "$at" "$ac" "$am"; ratio "$at" "$ac" "$tt" "$tc" 'tar -t'
  line "tar -t of every layer (the floor)" "$tt" "$tc" "$tm"; echo
  line "tar -tv of every layer" "$vt" "$vc" "$vm"; ratio "$kt" "$kc" "$vt" "$vc" 'tar -tv (kiln store / it)'
  line "sha256sum of every layer" "$st" "$sc" "$sm"; ratio "$kt" "$kc" "$st" "$sc" 'sha256sum (kiln store / it)'
  line "kiln images (node and kiln starting)" "$nt" "$nc" "$nm"; echo
  if command -v dive > /dev/null; then
    read -r dt dc dm < <(best3 env CI=true dive --source docker-archive "$archive" --json "$work/dive.json")
    line "dive (docker-archive)" "$dt" "$dc" "$dm"; ratio "$kt" "$kc" "$dt" "$dc" 'dive (kiln store / it)'
  else
    echo "  dive: not installed, not timed"
  fi
}

# debian: the host's Debian tree as the base layer; a build over it that wastes bytes three ways.
mkdir -p "$work/debian" "$work/ctx"
# Its docs and dpkg's records first (what the build deletes and what a Debian image carries), then
# libraries and programs up to the budget; busybox (static) runs the build's RUN steps.
(cd / && find etc var/lib/dpkg usr/share/doc usr/share/man usr/share usr/lib usr/bin -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
  awk -v budget=$((MB << 20)) 'seen[$2]++ { next } { sum += $1; if (sum > budget) exit; print $2 }' || true) > "$work/list"
echo usr/bin/busybox >> "$work/list"
tar -C / -cf "$work/debian.tar" --no-recursion -T "$work/list" 2>/dev/null || true
kiln import "$work/debian.tar" bench:debian-base > /dev/null
head -c $((8 << 20)) /dev/urandom > "$work/ctx/blob"
cat > "$work/ctx/Dockerfile" <<'EOF'
FROM bench:debian-base
RUN ["/usr/bin/busybox", "rm", "-rf", "/usr/share/doc", "/usr/share/man"]
RUN ["/usr/bin/busybox", "chmod", "-R", "go-w", "/etc"]
COPY blob /opt/blob
COPY blob /opt/again
EOF
kiln build -q -t bench:debian "$work/ctx" > /dev/null
report debian bench:debian

# files: 100,000 small files (0-4 KiB) in 100 directories.
node -e '
const fs = require("fs"), path = require("path");
const root = process.argv[1], bytes = require("crypto").randomBytes(4096);
for (let d = 0; d < 100; d++) {
  fs.mkdirSync(path.join(root, `d${d}`), { recursive: true });
  for (let f = 0; f < 1000; f++) fs.writeFileSync(path.join(root, `d${d}`, `f${f}`), bytes.subarray(0, (d * 1000 + f) % 4096));
}' "$work/files"
tar -C "$work/files" -cf "$work/files.tar" .
kiln import "$work/files.tar" bench:files > /dev/null
report files bench:files
