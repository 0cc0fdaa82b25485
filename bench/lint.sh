#!/usr/bin/env bash
# Benchmark: kiln lint of a generated 500-line Dockerfile whose every RUN goes through ShellCheck (one-line,
# continued and heredoc scripts, in four stages), against ShellCheck alone on the same scripts (the floor:
# kiln adds its own rules and the parse) and hadolint when it is installed (it is not a Debian package).
# The target is under 2 s. Prints the best of 3 runs of each.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
command -v shellcheck > /dev/null || { echo "bench/lint.sh needs shellcheck (Debian: apt-get install shellcheck)"; exit 1; }
work=$(mktemp -d /tmp/kiln-bench-lint.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts"

# The Dockerfile and, beside it, each RUN's script as ShellCheck would get it standing alone.
node - "$work" <<'EOF'
const { writeFileSync } = require('node:fs');
const dir = process.argv[2];
const lines = [];
let script = 0;
const alone = (text) => writeFileSync(`${dir}/scripts/run${++script}.sh`, `#!/bin/sh\nexport VERSION=1\n${text}\n`);
for (let stage = 0; lines.length < 500; stage++) {
  lines.push(`FROM debian:12.${stage} AS stage${stage}`, 'ARG VERSION=1.0', 'WORKDIR /src');
  for (let i = 0; i < 40 && lines.length < 490; i++) {
    switch (i % 4) {
      case 0:
        lines.push(`RUN echo "step ${i}" > /tmp/step${i} && ls /tmp | grep step`);
        alone(`echo "step ${i}" > /tmp/step${i} && ls /tmp | grep step`);
        break;
      case 1:
        lines.push('RUN apt-get update \\', `    && apt-get install -y --no-install-recommends curl=7.88.1-10 pkg${i}=$VERSION \\`, '    && rm -rf /var/lib/apt/lists/*');
        alone(`apt-get update \\\n    && apt-get install -y --no-install-recommends curl=7.88.1-10 pkg${i}=$VERSION \\\n    && rm -rf /var/lib/apt/lists/*`);
        break;
      case 2:
        lines.push('RUN <<SCRIPT', 'set -e', `for f in /etc/*.conf; do echo $f; done`, `cd /tmp && tar -czf out${i}.tgz /etc`, 'SCRIPT');
        alone(`set -e\nfor f in /etc/*.conf; do echo $f; done\ncd /tmp && tar -czf out${i}.tgz /etc`);
        break;
      default:
        lines.push(`COPY file${i}.txt /src/`, `ENV STEP_${i}=${i}`);
    }
  }
}
lines.push('USER nobody', 'CMD ["/bin/sh"]');
writeFileSync(`${dir}/Dockerfile`, lines.slice(0, 500).join('\n') + '\n');
EOF
lines=$(wc -l < "$work/Dockerfile")
runs=$(grep -c '^RUN' "$work/Dockerfile")

now() { date +%s.%N; }
best() { # best wall time of 3 runs of a command, in seconds
  local best_time=
  for _ in 1 2 3; do
    local t0 t1 took
    t0=$(now); "$@" > /dev/null 2>&1 || true; t1=$(now)
    took=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best_time" ] || [ "$(echo "$took < $best_time" | bc -l)" = 1 ]; then best_time=$took; fi
  done
  printf '%.3f' "$best_time"
}

kiln_time=$(best bin/kiln --root "$work/store" lint "$work/Dockerfile")
json=$(bin/kiln --root "$work/store" lint --format json "$work/Dockerfile" || true) # exit 1: it has findings
findings=$(node -e 'console.log(JSON.parse(process.argv[1]).length)' "$json")
shellcheck_time=$(best bash -c "cd '$work/scripts' && shellcheck --format=json1 --exclude=SC2187,SC1090 *.sh")
echo "kiln lint: ${kiln_time} s for a ${lines}-line Dockerfile with ${runs} RUN scripts (${findings} findings; target < 2 s)"
echo "shellcheck alone on the same scripts, one process: ${shellcheck_time} s (kiln/shellcheck: $(echo "$kiln_time / $shellcheck_time" | bc -l | xargs printf '%.2f'))"
if command -v hadolint > /dev/null; then
  hadolint_time=$(best hadolint --no-fail "$work/Dockerfile")
  echo "hadolint: ${hadolint_time} s (kiln/hadolint: $(echo "$kiln_time / $hadolint_time" | bc -l | xargs printf '%.2f'))"
else
  echo "hadolint: not installed (not a Debian package), not measured"
fi
if [ "$(echo "$kiln_time < 2" | bc -l)" != 1 ]; then echo "bench/lint.sh: over the 2 s target"; exit 1; fi
