#!/usr/bin/env bash
# Benchmark: how close kiln's start-up is to Node's own. Each command runs in turn with `node -e 0`
# (A B A B …, so a busy machine slows both alike), and the ratio is taken pair by pair:
#   version         kiln version
#   images          kiln images, on a store of 500 images
#   inspect         kiln inspect on one of them
#   build-small     a fully cached build: 7 instructions, 2 RUN (bench/build.sh's small)   } as root: RUN
#   build-stages    a fully cached build: three stages joined by COPY --from (its stages)  } needs runc
# Targets (issue 17): version ≤ 1.3×, images ≤ 1.6×, the cached builds ≤ 1.5× node -e 0.
# kiln runs as users run it, bin/kiln as a program. Where NODE_EXTRA_CA_CERTS is set, that starts Node
# without it (bin/kiln hands the file to kiln, which reads it only for TLS), so the ratios are also given
# against `node -e 0` without it, node as kiln's own starts: the floor the targets mean.
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

commands=(version "bin/kiln --root $store version" images "bin/kiln --root $store images" inspect "bin/kiln --root $store inspect busybox")
if [ "$(id -u)" -eq 0 ] && command -v runc > /dev/null; then
  mkdir -p "$work/small" "$work/stages"
  printf 'a\n' > "$work/small/a.txt"
  printf '%s\n' 'FROM busybox' 'ENV APP=/app' 'WORKDIR /app' 'COPY a.txt .' 'RUN echo one > one && cp a.txt b.txt' 'RUN echo two > two' 'CMD ["cat", "one"]' > "$work/small/Dockerfile"
  printf '%s\n' 'FROM busybox AS one' 'RUN mkdir /out && echo one > /out/one' 'FROM busybox AS two' 'RUN mkdir /out && echo two > /out/two' 'FROM busybox' 'COPY --from=one /out /one' 'COPY --from=two /out /two' > "$work/stages/Dockerfile"
  for w in small stages; do
    bin/kiln --root "$store" build -q --network none -t "bench:$w" "$work/$w" > /dev/null # fills the cache
    commands+=("build-$w" "bin/kiln --root $store build -q --network none -t bench:$w $work/$w")
  done
else
  echo "startup: not root (or no runc), so the cached builds are left out"
fi

node --input-type=module - "${RUNS:-15}" "${commands[@]}" <<'EOF'
import { spawnSync } from 'node:child_process';
const [runs, ...pairs] = process.argv.slice(2);
const time = (argv, env = process.env) => {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const node = [process.execPath, '-e', '0'];
// Where NODE_EXTRA_CA_CERTS is set, Node parses its file as it starts, and kiln's node starts without it
// (bin/kiln hands it on): the floor kiln is judged against is then node as kiln's own starts.
const { NODE_EXTRA_CA_CERTS: extra, ...withoutExtra } = process.env;
const floors = [['node -e 0', process.env], ...(extra ? [['node -e 0 without NODE_EXTRA_CA_CERTS', withoutExtra]] : [])];
const f = (x) => x.toFixed(2).padStart(6);
console.log(`${'command'.padEnd(14)} ${'kiln ms'.padStart(8)} ${floors.map(() => `| ${'node ms'.padStart(7)} ${'ratio'.padStart(6)} ${'min'.padStart(6)} ${'max'.padStart(6)}`).join(' ')}   (median of ${runs} runs)`);
for (let i = 0; i < pairs.length; i += 2) {
  const argv = pairs[i + 1].split(' ');
  time(argv);
  for (const [, env] of floors) time(node, env); // one warm-up each
  const a = [];
  const b = floors.map(() => []);
  for (let run = 0; run < Number(runs); run++) {
    a.push(time(argv));
    floors.forEach(([, env], k) => b[k].push(time(node, env)));
  }
  const cells = floors.map((_, k) => {
    const ratios = a.map((t, j) => t / b[k][j]);
    return `| ${median(b[k]).toFixed(0).padStart(7)} ${f(median(ratios))} ${f(Math.min(...ratios))} ${f(Math.max(...ratios))}`;
  });
  console.log(`${pairs[i].padEnd(14)} ${median(a).toFixed(0).padStart(8)} ${cells.join(' ')}`);
}
console.log(`ratio = kiln wall time / node wall time, run by run (kiln and node in turn); node: ${floors.map(([name]) => name).join(' | ')}`);
EOF
