#!/usr/bin/env bash
# Sets up (scripts/setup.sh), lints, makes the image fixtures, then runs every test file with node's test runner.
# Node 20's `node --test DIR` finds no compiled files, so the list is explicit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "lint: eslint"
npx eslint --max-warnings=0 src test bench
# The image fixtures, made once into .cache/fixtures (test/helpers/fixtures.ts) before any test file
# starts its clock; a maker that fails here fails again, with its error, in the tests that need it.
node --input-type=module -e "await (await import('./dist/test/helpers/fixtures.js')).makeFixtures()" || echo "fixtures: a maker failed (above)"
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# Node 20 gives each test file, as a whole, the same time limit as each test: the longest files (the
# differential builds, the container verbs) need minutes on two busy cores; a hang still ends in 15.
node --test --test-reporter=spec --test-concurrency=2 --test-timeout=900000 "${files[@]}"
