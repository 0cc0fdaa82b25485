#!/usr/bin/env bash
# Benchmark: how close kiln's start-up is to Node's own. Each command runs in turn with `node -e 0`
# (A B A B …, so a busy machine slows both alike), and the ratio is taken pair by pair:
#   version         kiln version
#   images          kiln images, on a store of 500 images
#   inspect         kiln inspect on one of them
#   build-small     a fully cached build: 7 instructions, 2 RUN (bench/build.sh's small)   } as root: RUN
#   build-stages    a fully cached build: three stages joined by COPY --from (its stages)  } needs runc
# Targets (issue 17): version ≤ 1.3×, images ≤ 1.6×, the cached builds ≤ 1.5× node -e 0.
# RUNS (default 15) sets the pairs per command.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/kiln.cjs ] || npm run --silent build
work=$(mktemp -d /tmp/kiln-startup.XXXXXX)
trap 'rm -rf "$work"' EXIT
store="$work/store"

# 500 images, cheaply: one root filesystem imported 500 times in one process, each with its own LABEL
# (so its own config and ID; the layer is shared), under 50 repositories.
bash scripts/busybox-rootfs.sh "$work/rootfs.tar"
node --input-type=module - "$store" "$work/rootfs.tar" <<'EOF'
const [root, tar] = process.argv.slice(2);
const { Engine } = await import(`${process.cwd()}/dist/src/engine/engine.js`);
const { importImage } = await import(`${process.cwd()}/dist/src/engine/import.js`);
const engine = await Engine.open(root);
try {
  await importImage(engine, { path: tar }, { reference: 'busybox:latest', changes: ['CMD ["sh"]'] });
  for (let i = 1; i < 500; i++) await importImage(engine, { path: tar }, { reference: `bench/app${i % 50}:v${i}`, changes: [`LABEL n=${i}`] });
} finally {
  engine.close();
}
EOF

commands=(version "node bin/kiln --root $store version" images "node bin/kiln --root $store images" inspect "node bin/kiln --root $store inspect busybox")
if [ "$(id -u)" -eq 0 ] && command -v runc > /dev/null; then
  mkdir -p "$work/small" "$work/stages"
  printf 'a\n' > "$work/small/a.txt"
  printf '%s\n' 'FROM busybox' 'ENV APP=/app' 'WORKDIR /app' 'COPY a.txt .' 'RUN echo one > one && cp a.txt b.txt' 'RUN echo two > two' 'CMD ["cat", "one"]' > "$work/small/Dockerfile"
  printf '%s\n' 'FROM busybox AS one' 'RUN mkdir /out && echo one > /out/one' 'FROM busybox AS two' 'RUN mkdir /out && echo two > /out/two' 'FROM busybox' 'COPY --from=one /out /one' 'COPY --from=two /out /two' > "$work/stages/Dockerfile"
  for w in small stages; do
    node bin/kiln --root "$store" build -q --network none -t "bench:$w" "$work/$w" > /dev/null # fills the cache
    commands+=("build-$w" "node bin/kiln --root $store build -q --network none -t bench:$w $work/$w")
  done
else
  echo "startup: not root (or no runc), so the cached builds are left out"
fi

node --input-type=module - "${RUNS:-15}" "${commands[@]}" <<'EOF'
import { spawnSync } from 'node:child_process';
const [runs, ...pairs] = process.argv.slice(2);
const time = (argv) => {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const node = [process.execPath, '-e', '0'];
console.log(`${'command'.padEnd(14)} ${'kiln ms'.padStart(8)} ${'node ms'.padStart(8)} ${'ratio'.padStart(6)} ${'min'.padStart(6)} ${'max'.padStart(6)}   (median of ${runs} pairs)`);
for (let i = 0; i < pairs.length; i += 2) {
  const argv = pairs[i + 1].split(' ').map((word) => (word === 'node' ? process.execPath : word));
  time(argv);
  time(node); // one warm-up each
  const a = [];
  const b = [];
  for (let run = 0; run < Number(runs); run++) {
    a.push(time(argv));
    b.push(time(node));
  }
  const ratios = a.map((t, j) => t / b[j]);
  const f = (x) => x.toFixed(2).padStart(6);
  console.log(`${pairs[i].padEnd(14)} ${median(a).toFixed(0).padStart(8)} ${median(b).toFixed(0).padStart(8)} ${f(median(ratios))} ${f(Math.min(...ratios))} ${f(Math.max(...ratios))}`);
}
console.log('ratio = kiln wall time / node -e 0 wall time, pair by pair');
EOF
