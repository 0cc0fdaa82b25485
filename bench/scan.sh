#!/usr/bin/env bash
# Benchmark: `kiln scan` of a Debian-shaped SBOM (this machine's own dpkg packages, with their source
# packages) against a generated OSV database of BENCH_RECORDS records (default 100,000) in one zip, as
# osv.dev exports them: cold (the index is built) and warm (the index is reused); wall time, CPU and
# peak memory (max RSS). The floor beside it is `kiln version` (node and kiln starting). Target: a warm
# scan within 0.5 s. As root, also `kiln sbom` of a debootstrapped Debian image (the tests' fixture,
# made once and cached; target 1 s) and a warm `kiln scan` of that image.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npx tsc -p .
RECORDS=${BENCH_RECORDS:-100000}
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KILN_ROOT="$work/store"

# shellcheck source=bench/measure.sh
source bench/measure.sh

# The SBOM: every package dpkg lists here, with its source package, as kiln sbom would catalogue them.
dpkg-query -W -f '${Package}\t${Version}\t${source:Package}\t${source:Version}\n' > "$work/packages.tsv"
python3 - "$work/packages.tsv" "$work/sbom.json" <<'EOF'
import json, sys
packages = []
for line in open(sys.argv[1]):
    name, version, source, source_version = line.rstrip('\n').split('\t')
    packages.append({'name': name, 'version': version, 'type': 'deb', 'purl': f'pkg:deb/debian/{name}@{version}', 'license': None,
                     'source': {'name': source, 'version': source_version}, 'foundIn': '/var/lib/dpkg/status', 'files': [],
                     'origin': {'layerIndex': 0, 'diffId': 'sha256:' + '0' * 64, 'createdBy': 'ADD rootfs.tar /', 'file': None, 'line': None, 'instruction': None}})
json.dump({'source': 'bench', 'imageId': 'sha256:' + 'b' * 64, 'names': ['bench:debian'], 'distro': {'id': 'debian', 'versionId': '12', 'prettyName': 'Debian 12'}, 'packages': packages}, open(sys.argv[2], 'w'))
EOF

# The database: a record for every source package here (ranges around its version), the rest spread over
# npm, PyPI, Go and made-up Debian names, each with a CVSS vector, aliases and a summary as real ones have.
python3 - "$work/packages.tsv" "$work/osv.zip" "$RECORDS" <<'EOF'
import json, random, sys, zipfile
random.seed(16)
sources = sorted({line.split('\t')[2] for line in open(sys.argv[1])})
versions = {line.split('\t')[2]: line.rstrip('\n').split('\t')[3] for line in open(sys.argv[1])}
total = int(sys.argv[3])
vector = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'
with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:
    for n in range(total):
        if n < len(sources) * 4:
            name = sources[n % len(sources)]
            fixed = versions[name] + ('+fix1' if n % 2 else '~old')
            affected = {'package': {'ecosystem': 'Debian:12', 'name': name}, 'ranges': [{'type': 'ECOSYSTEM', 'events': [{'introduced': '0'}, {'fixed': fixed}]}]}
        else:
            eco = ['npm', 'PyPI', 'Go', 'Debian:12'][n % 4]
            name = f'pkg{n % 20000}' if eco != 'Go' else f'example.com/mod{n % 20000}'
            affected = {'package': {'ecosystem': eco, 'name': name}, 'ranges': [{'type': 'SEMVER' if eco in ('npm', 'Go') else 'ECOSYSTEM', 'events': [{'introduced': '1.0.0'}, {'fixed': f'1.{n % 7}.{n % 13}'}]}], 'versions': [f'1.0.{k}' for k in range(n % 5)]}
        record = {'schema_version': '1.6.0', 'id': f'BENCH-{n}', 'modified': '2024-01-01T00:00:00Z', 'aliases': [f'CVE-2024-{n}'],
                  'summary': f'a generated advisory number {n} for {name}', 'details': 'x' * 300, 'severity': [{'type': 'CVSS_V3', 'score': vector}], 'affected': [affected]}
        z.writestr(f'{affected["package"]["ecosystem"].split(":")[0]}/BENCH-{n}.json', json.dumps(record))
EOF
echo "kiln scan: $(wc -l < "$work/packages.tsv") packages (this machine's dpkg list) against $RECORDS OSV records ($(( $(stat -c %s "$work/osv.zip") >> 20 )) MiB zip)"
bin/kiln version > /dev/null # the store exists before timing starts

line() { printf '  %-40s %6ss wall %6ss cpu %8d KiB\n' "$@"; }
read -r ct cc cm < <(measure bin/kiln scan "sbom:$work/sbom.json" --db "$work/osv.zip" --format json)
read -r wt wc wm < <(best3 bin/kiln scan "sbom:$work/sbom.json" --db "$work/osv.zip" --format json)
read -r ft fc fm < <(best3 bin/kiln version)
line "cold: the index built" "$ct" "$cc" "$cm"
line "warm: the index reused (best of 3)" "$wt" "$wc" "$wm"
line "kiln version (node and kiln starting)" "$ft" "$fc" "$fm"
found=$(bin/kiln scan "sbom:$work/sbom.json" --db "$work/osv.zip" --format json | node -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.parse(s).findings.length))')
echo "  findings: $found; index: $(du -h "$KILN_ROOT"/cache/osv/*.sqlite | cut -f1)"
awk -v w="$wt" 'BEGIN { if (w <= 0.5) print "  warm scan within the 0.5 s target"; else print "  warm scan over the 0.5 s target" }'

# The sbom half: the Debian image the tests catalogue (debootstrap, as root; the fixture cache keeps it).
debian=$(node -e 'import("./dist/test/helpers/fixtures.js").then(async (m) => { const why = await m.fixturesUnavailable("debian-bookworm-rootfs.tar"); console.log(why ? `skip: ${why}` : await m.fixture("debian-bookworm-rootfs.tar")); })')
case "$debian" in
  skip:*) echo "kiln sbom of a Debian image: ${debian#skip: }" ;;
  *)
    bin/kiln import "$debian" bench:bookworm > /dev/null
    echo "kiln sbom of a debootstrapped bookworm ($(bin/kiln sbom --format json bench:bookworm | node -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.parse(s).packages.length))') packages)"
    read -r st sc sm < <(best3 bin/kiln sbom --format json bench:bookworm)
    read -r it ic im < <(best3 bin/kiln scan --db "$work/osv.zip" --format json bench:bookworm)
    line "kiln sbom (best of 3)" "$st" "$sc" "$sm"
    line "kiln scan of the image, warm (best of 3)" "$it" "$ic" "$im"
    awk -v s="$st" 'BEGIN { if (s <= 1) print "  sbom within the 1 s target"; else print "  sbom over the 1 s target" }'
    ;;
esac
