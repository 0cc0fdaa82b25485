#!/usr/bin/env bash
# Sets up (scripts/setup.sh), lints, then runs every test file with node's test runner.
# Node 20's `node --test DIR` finds no compiled files, so the list is explicit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "lint: eslint"
npx eslint --max-warnings=0 src test bench
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
node --test --test-reporter=spec --test-concurrency=2 --test-timeout=300000 "${files[@]}"
