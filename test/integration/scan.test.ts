import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { CataloguedPackage, PackageType, Sbom } from '../../src/analyze/sbom/model.js';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/paths.js';
import { sarifSchema } from '../helpers/schemas.js';

const run = promisify(execFile);

/** A package as kiln sbom catalogues one; `line` null for the base image's layer 0. */
function pkg(name: string, version: string, type: PackageType, purl: string, layer: number, line: number | null, source: { name: string; version: string } | null = null): CataloguedPackage {
  const instruction = line === null ? null : ['', '', '', 'RUN apt-get install -y libfoo1 curl', '', 'RUN npm ci', 'RUN pip install jinja2', '', 'COPY --from=build /out /app'][line] ?? null;
  return {
    name,
    version,
    type,
    purl,
    license: null,
    source,
    foundIn: type === 'deb' ? '/var/lib/dpkg/status' : `/app/${name}`,
    files: [],
    origin: { layerIndex: layer, diffId: `sha256:${String(layer).repeat(64)}`, createdBy: line === null ? '/bin/sh -c #(nop) ADD file:abc in / ' : `${instruction} # buildkit`, file: line === null ? null : 'Dockerfile', line, instruction },
  };
}

/** Shaped like a Debian 12 image's: binary packages with their source packages, and language packages above. */
const SBOM: Sbom = {
  source: 'demo:1',
  imageId: `sha256:${'d'.repeat(64)}`,
  names: ['demo:1'],
  distro: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
  packages: [
    pkg('libssl3', '3.0.11-1~deb12u2', 'deb', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2?distro=debian-12', 0, null, { name: 'openssl', version: '3.0.11-1~deb12u2' }),
    pkg('openssl', '3.0.11-1~deb12u2', 'deb', 'pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12', 0, null, { name: 'openssl', version: '3.0.11-1~deb12u2' }),
    pkg('libc6', '2.36-9+deb12u3', 'deb', 'pkg:deb/debian/libc6@2.36-9+deb12u3', 0, null, { name: 'glibc', version: '2.36-9+deb12u3' }),
    pkg('zlib1g', '1:1.2.13.dfsg-1', 'deb', 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1', 0, null, { name: 'zlib', version: '1:1.2.13.dfsg-1' }),
    // A binNMU: the binary's version is its source's plus +b1.
    pkg('libfoo1', '1.0-1+b1', 'deb', 'pkg:deb/debian/libfoo1@1.0-1+b1', 1, 3, { name: 'foo', version: '1.0-1' }),
    pkg('curl', '7.88.1-10+deb12u5', 'deb', 'pkg:deb/debian/curl@7.88.1-10+deb12u5', 1, 3),
    pkg('lodash', '4.17.20', 'npm', 'pkg:npm/lodash@4.17.20', 2, 5),
    pkg('Jinja2', '3.1.2', 'pypi', 'pkg:pypi/jinja2@3.1.2', 3, 6),
    pkg('golang.org/x/net', 'v0.17.0', 'golang', 'pkg:golang/golang.org/x/net@v0.17.0', 4, 8),
    pkg('log4j-core', '2.14.1', 'maven', 'pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1', 4, 8),
    pkg('bash', '5.1.8-6.el9', 'rpm', 'pkg:rpm/bash@5.1.8-6.el9', 0, null),
  ],
};

/** A zip of a directory as Python's zipfile writes one (osv.dev's exports are made the same way). */
async function zipDirectory(from: string, to: string): Promise<void> {
  await run('python3', ['-c', 'import os, sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:\n    for d, _, fs in os.walk(sys.argv[1]):\n        for f in fs: z.write(os.path.join(d, f), os.path.relpath(os.path.join(d, f), sys.argv[1]))', from, to]);
}

type Event = Record<string, string>;
const permutations = <T>(items: readonly T[]): T[][] => (items.length <= 1 ? [[...items]] : items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])));

function record(id: string, ecosystem: string, name: string, affected: { ranges?: { type: string; events: Event[] }[]; versions?: string[] }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schema_version: '1.6.0', id, modified: '2024-01-01T00:00:00Z', summary: `${name} issue ${id}`, affected: [{ package: { ecosystem, name }, ...affected }], ...extra };
}
const range = (events: Event[], type = 'ECOSYSTEM') => ({ ranges: [{ type, events }] });

/** The records the scan reads, and the (ID, package) pairs it must find: exactly these. */
function database(): { records: Record<string, unknown>[]; expected: string[] } {
  const records: Record<string, unknown>[] = [];
  const expected: string[] = [];
  const high = { database_specific: { severity: 'HIGH' } };
  // Two intervals around the installed openssl, in all 24 orders: affected, fixed in 3.0.13-1~deb12u1.
  permutations<Event>([{ introduced: '0' }, { fixed: '3.0.9-1' }, { introduced: '3.0.10-1' }, { fixed: '3.0.13-1~deb12u1' }]).forEach((events, n) => {
    records.push(record(`DSA-AFFECTED-${n}`, 'Debian:12', 'openssl', range(events), { aliases: [`CVE-2024-${1000 + n}`], ...high }));
    expected.push(`DSA-AFFECTED-${n} libssl3`, `DSA-AFFECTED-${n} openssl`);
  });
  // Fixed exactly at the installed version, and a later interval: not affected, in all 24 orders.
  permutations<Event>([{ introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }, { introduced: '3.1.0' }, { fixed: '3.1.2-1' }]).forEach((events, n) => records.push(record(`DSA-FIXED-${n}`, 'Debian:12', 'openssl', range(events), high)));
  // Advisories name source packages, for this release only; withdrawn ones and GIT ranges do not count.
  records.push(record('DEB-BINARY-NAME', 'Debian:12', 'libssl3', range([{ introduced: '0' }])));
  records.push(record('DEB-OTHER-RELEASE', 'Debian:11', 'openssl', range([{ introduced: '0' }])));
  records.push(record('UBUNTU-1', 'Ubuntu:22.04:LTS', 'openssl', range([{ introduced: '0' }])));
  records.push(record('DEB-WITHDRAWN', 'Debian:12', 'openssl', range([{ introduced: '0' }]), { withdrawn: '2024-02-01T00:00:00Z' }));
  // last_affected is inclusive.
  records.push(record('DEB-GLIBC-LAST', 'Debian:12', 'glibc', range([{ last_affected: '2.36-9+deb12u3' }, { introduced: '0' }])));
  expected.push('DEB-GLIBC-LAST libc6');
  records.push(record('DEB-GLIBC-OLDER', 'Debian:12', 'glibc', range([{ introduced: '0' }, { last_affected: '2.36-9+deb12u2' }])));
  // Epochs: 1:1.2.13 is above any version without one.
  records.push(record('DEB-ZLIB', 'Debian:12', 'zlib', range([{ fixed: '1:1.2.13.dfsg-1+deb12u1' }, { introduced: '0' }])));
  expected.push('DEB-ZLIB zlib1g');
  records.push(record('DEB-ZLIB-NO-EPOCH', 'Debian:12', 'zlib', range([{ introduced: '0' }, { fixed: '1.3.dfsg-1' }])));
  // The source's version counts, not the binNMU's: 1.0-1 < 1.0-1+0 < 1.0-1+b1.
  records.push(record('DEB-FOO', 'Debian:12', 'foo', range([{ introduced: '0' }, { fixed: '1.0-1+0' }])));
  expected.push('DEB-FOO libfoo1');
  // versions[] lists.
  records.push(record('DEB-CURL-LIST', 'Debian:12', 'curl', { versions: ['7.88.1-10+deb12u4', '7.88.1-10+deb12u5'] }));
  expected.push('DEB-CURL-LIST curl');
  records.push(record('DEB-CURL-OTHER', 'Debian:12', 'curl', { versions: ['7.88.1-10+deb12u4'] }));
  // Language ecosystems.
  records.push(record('GHSA-LODASH', 'npm', 'lodash', range([{ fixed: '4.17.21' }, { introduced: '0' }], 'SEMVER'), { severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H' }], aliases: ['CVE-2021-23337'] }));
  expected.push('GHSA-LODASH lodash');
  records.push(record('GHSA-LODASH-LATER', 'npm', 'lodash', range([{ introduced: '4.17.21' }], 'SEMVER')));
  records.push(record('GHSA-LODASH-WITHDRAWN', 'npm', 'lodash', range([{ introduced: '0' }], 'SEMVER'), { withdrawn: '2024-01-01T00:00:00Z' }));
  records.push(record('PYSEC-JINJA', 'PyPI', 'jinja2', range([{ introduced: '0' }, { fixed: '3.1.3' }]), { database_specific: { severity: 'MODERATE' } }));
  expected.push('PYSEC-JINJA Jinja2');
  records.push(record('PYSEC-JINJA-OLD', 'PyPI', 'Jinja2', range([{ introduced: '0' }, { last_affected: '3.1.1' }])));
  records.push(record('GO-NET', 'Go', 'golang.org/x/net', range([{ introduced: '0' }, { fixed: '0.23.0' }], 'SEMVER')));
  expected.push('GO-NET golang.org/x/net');
  records.push(record('GO-NET-GIT', 'Go', 'golang.org/x/net', range([{ introduced: '0' }], 'GIT')));
  records.push(record('GHSA-LOG4J', 'Maven', 'org.apache.logging.log4j:log4j-core', range([{ introduced: '2.0-beta9' }, { fixed: '2.15.0' }]), { severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H' }], aliases: ['CVE-2021-44228'] }));
  expected.push('GHSA-LOG4J log4j-core');
  return { records, expected: expected.sort() };
}

interface JsonReport {
  database: { indexBuilt: boolean; records: number };
  unmatchedPackages: number;
  findings: { id: string; severity: string; score: number | null; package: { name: string }; source: { name: string } | null; installedVersion: string; fixedVersion: string | null; origin: { layerIndex: number; line: number | null }; fromBase: boolean; fix: string }[];
}

const dir = await tempDir();

describe('kiln scan against a generated OSV database', () => {
  const root = join(dir, 'store');
  const dbDir = join(dir, 'osv');
  const dbZip = join(dir, 'all.zip');
  const sbomFile = join(dir, 'sbom.json');
  const { records, expected } = database();
  const scan = (args: readonly string[]) => runKiln(root, ['scan', `sbom:${sbomFile}`, ...args]);
  const pairs = (report: JsonReport): string[] => report.findings.map((f) => `${f.id} ${f.package.name}`).sort();

  before(async () => {
    await writeFile(sbomFile, JSON.stringify(SBOM));
    // Records spread over subdirectories, as an unpacked export may be.
    for (const [n, r] of records.entries()) {
      const sub = join(dbDir, n % 2 === 0 ? 'a' : 'b/c');
      await mkdir(sub, { recursive: true });
      await writeFile(join(sub, `${r.id as string}.json`), JSON.stringify(r, null, n % 3 === 0 ? 2 : undefined));
    }
    await writeFile(join(dbDir, 'README.txt'), 'not a record');
    await zipDirectory(dbDir, dbZip);
  });

  it('finds exactly the expected set in a directory, and indexes it once', async () => {
    const first = await scan(['--db', dbDir, '--format', 'json']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`indexed ${records.length} OSV records`));
    const report = JSON.parse(first.stdout) as JsonReport;
    assert.equal(report.database.indexBuilt, true);
    assert.deepEqual(pairs(report), expected);
    assert.equal(report.unmatchedPackages, 1, 'the rpm package has no ecosystem to match');
    const ssl = report.findings.find((f) => f.id === 'DSA-AFFECTED-7' && f.package.name === 'libssl3');
    assert.deepEqual([ssl?.source?.name, ssl?.installedVersion, ssl?.fixedVersion, ssl?.severity, ssl?.origin.layerIndex, ssl?.fromBase], ['openssl', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1', 'high', 0, true]);
    assert.match(ssl?.fix ?? '', /newer base image .*upgrade libssl3 \(source package openssl\) to 3\.0\.13-1~deb12u1/);
    const lodash = report.findings.find((f) => f.id === 'GHSA-LODASH');
    assert.deepEqual([lodash?.fixedVersion, lodash?.score, lodash?.severity, lodash?.origin.line, lodash?.fromBase], ['4.17.21', 7.2, 'high', 5, false]);
    assert.match(lodash?.fix ?? '', /upgrade lodash to 4\.17\.21 or later in the step at Dockerfile:5/);
    assert.equal(report.findings.find((f) => f.id === 'GHSA-LOG4J')?.severity, 'critical');
    assert.equal(report.findings.find((f) => f.id === 'DEB-GLIBC-LAST')?.fixedVersion, null);
    assert.equal(report.findings.find((f) => f.id === 'GO-NET')?.fixedVersion, '0.23.0');

    // The second scan reuses the index: it says it did not build one, and the index file is untouched.
    const [index] = (await readdir(join(root, 'cache', 'osv'))).filter((f) => f.endsWith('.sqlite'));
    assert.ok(index);
    const before = await stat(join(root, 'cache', 'osv', index));
    const second = await scan(['--db', dbDir, '--format', 'json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stderr, '');
    const again = JSON.parse(second.stdout) as JsonReport;
    assert.equal(again.database.indexBuilt, false);
    assert.deepEqual(pairs(again), expected);
    assert.equal((await stat(join(root, 'cache', 'osv', index))).mtimeMs, before.mtimeMs);
    // A changed database is a different database: a record added is indexed anew.
    await writeFile(join(dbDir, 'a', 'NEW.json'), JSON.stringify(record('NEW-1', 'npm', 'lodash', { versions: ['4.17.20'] })));
    const third = JSON.parse((await scan(['--db', dbDir, '--format', 'json'])).stdout) as JsonReport;
    assert.equal(third.database.indexBuilt, true);
    assert.ok(pairs(third).includes('NEW-1 lodash'));
  });

  it('finds the same in a zip of the records', async () => {
    const result = await scan(['--db', dbZip, '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as JsonReport;
    assert.deepEqual(pairs(report), expected);
    assert.equal(report.database.records, records.length);
    assert.equal((JSON.parse((await scan(['--db', dbZip, '--format', 'json'])).stdout) as JsonReport).database.indexBuilt, false);
    // A zip rewritten in place (its hash is remembered by its stat) is read and indexed anew.
    const own = join(dir, 'own');
    await mkdir(own);
    await writeFile(join(own, 'MINE-1.json'), JSON.stringify(record('MINE-1', 'npm', 'lodash', { versions: ['4.17.20'] })));
    const mine = join(dir, 'mine.zip');
    await zipDirectory(own, mine);
    assert.deepEqual(pairs(JSON.parse((await scan(['--db', mine, '--format', 'json'])).stdout) as JsonReport), ['MINE-1 lodash']);
    await writeFile(join(own, 'MINE-2.json'), JSON.stringify(record('MINE-2', 'PyPI', 'jinja2', { versions: ['3.1.2'] })));
    await zipDirectory(own, `${mine}.new`);
    await rename(`${mine}.new`, mine);
    const rewritten = JSON.parse((await scan(['--db', mine, '--format', 'json'])).stdout) as JsonReport;
    assert.equal(rewritten.database.indexBuilt, true);
    assert.deepEqual(pairs(rewritten), ['MINE-1 lodash', 'MINE-2 Jinja2']);
  });

  it('prints a table: the counts, then each finding with its layer, line and fix', async () => {
    const result = await scan(['--db', dbZip]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.match(lines[0] ?? '', new RegExp(`^demo:1 \\(Debian GNU/Linux 12 \\(bookworm\\)\\): 11 packages, ${expected.length} vulnerabilities \\(critical 1, high 49, medium 1, unknown 5\\)$`));
    assert.match(lines[2] ?? '', /^ID +SEVERITY +PACKAGE +INSTALLED +FIXED +FROM +FIX$/);
    assert.match(lines[3] ?? '', /^GHSA-LOG4J +critical 10\.0 +log4j-core +2\.14\.1 +2\.15\.0 +layer 4, Dockerfile:8 +upgrade log4j-core to 2\.15\.0 or later/);
    assert.ok(lines.some((l) => /^DSA-AFFECTED-0 +high +libssl3 \(openssl\) +3\.0\.11-1~deb12u2 +3\.0\.13-1~deb12u1 +layer 0 \(base image\) +use a newer base image/.test(l)));
    assert.equal(lines.filter((l) => /^[A-Z]+-/.test(l)).length, expected.length);
  });

  it('writes SARIF 2.1.0: a rule per advisory, a result per package with its location', async () => {
    const result = await scan(['--db', dbZip, '--format', 'sarif']);
    assert.equal(result.code, 0, result.stderr);
    const sarif = JSON.parse(result.stdout) as { version: string; $schema: string; runs: { tool: { driver: { name: string; rules: { id: string; properties: Record<string, unknown> }[] } }; results: { ruleId: string; ruleIndex: number; level: string; message: { text: string }; locations: { physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number } } }[] }[] }[] };
    assert.equal(sarif.version, '2.1.0');
    assert.match(sarif.$schema, /sarif-2\.1\.0/);
    assert.equal(sarif.runs.length, 1);
    const first = sarif.runs[0]!;
    const ruleIds = first.tool.driver.rules.map((r) => r.id);
    assert.deepEqual(ruleIds, [...new Set(expected.map((e) => e.split(' ')[0]))].sort());
    assert.equal(first.results.length, expected.length);
    for (const r of first.results) {
      assert.equal(ruleIds[r.ruleIndex], r.ruleId);
      assert.ok(['error', 'warning', 'note'].includes(r.level));
      assert.ok(r.locations[0]?.physicalLocation.artifactLocation.uri);
      assert.ok(r.message.text.length > 0);
    }
    const lodash = first.results.find((r) => r.ruleId === 'GHSA-LODASH');
    assert.deepEqual(lodash?.locations[0]?.physicalLocation, { artifactLocation: { uri: 'Dockerfile' }, region: { startLine: 5 } });
    assert.equal(first.tool.driver.rules.find((r) => r.id === 'GHSA-LOG4J')?.properties['security-severity'], '10.0');
  });

  const schema = sarifSchema();
  it('writes SARIF valid against the SARIF 2.1.0 JSON schema', 'skip' in schema ? { skip: schema.skip } : {}, async () => {
    assert.ok('schema' in schema);
    const validate = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(schema.schema);
    const result = await scan(['--db', dbZip, '--format', 'sarif']);
    const log = JSON.parse(result.stdout) as { runs: { results: { message?: unknown }[] }[] };
    assert.equal(validate(log), true, JSON.stringify(validate.errors?.slice(0, 5)));
    // The schema can fail: a result without its message is refused.
    delete log.runs[0]?.results[0]?.message;
    assert.equal(validate(log), false);
  });

  it('--severity, --ignore-unfixed, --ignore-file and --exit-code', async () => {
    const json = async (args: string[]): Promise<{ code: number; report: JsonReport }> => {
      const r = await scan(['--db', dbZip, '--format', 'json', ...args]);
      return { code: r.code, report: JSON.parse(r.stdout) as JsonReport };
    };
    const all = await json(['--exit-code', '7']);
    assert.equal(all.code, 7);
    const critical = await json(['--severity', 'CRITICAL', '--exit-code', '7']);
    assert.deepEqual([critical.code, pairs(critical.report)], [7, ['GHSA-LOG4J log4j-core']]);
    const low = await json(['--severity', 'low', '--exit-code', '7']);
    assert.deepEqual([low.code, low.report.findings.length], [0, 0]);
    const fixed = await json(['--ignore-unfixed']);
    assert.deepEqual(pairs(fixed.report), expected.filter((e) => !/^(DEB-GLIBC-LAST|DEB-CURL-LIST) /.test(e)));
    const ignoreFile = join(dir, '.kilnignore');
    // log4j ignored until far ahead (by its CVE alias); lodash's entry has expired, so it is reported again.
    await writeFile(ignoreFile, '# accepted\nCVE-2021-44228 2999-12-31\nGHSA-LODASH 2020-01-01\n');
    const ignored = await json(['--ignore-file', ignoreFile, '--severity', 'critical,high', '--exit-code', '3']);
    assert.equal(ignored.code, 3);
    assert.ok(!pairs(ignored.report).includes('GHSA-LOG4J log4j-core'));
    assert.ok(pairs(ignored.report).includes('GHSA-LODASH lodash'));
  });

  it('says what is wrong with bad input, in one line, never a stack', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--db', join(dir, 'missing')], 1, /--db .*missing: no such file or directory/],
      [['--db', sbomFile], 1, /--db .*sbom\.json: not a zip archive nor a directory of OSV JSON records/],
      [['--db', dbZip, '--severity', 'urgent'], 125, /invalid --severity "urgent"/],
      [['--db', dbZip, '--format', 'xml'], 125, /invalid --format "xml"/],
      [['--db', dbZip, '--exit-code', 'x'], 125, /invalid --exit-code "x"/],
      [['--db', dbZip, '--ignore-file', join(dir, 'nope')], 1, /--ignore-file .*nope: no such file/],
    ];
    for (const [args, code, message] of cases) {
      const r = await scan(args);
      assert.deepEqual([r.code, message.test(r.stderr), r.stderr.includes('internal error')], [code, true, false], `${args.join(' ')}: ${r.stderr}`);
    }
    const badDb = join(dir, 'bad');
    await mkdir(badDb);
    await writeFile(join(badDb, 'x.json'), JSON.stringify(record('X', 'npm', 'a', range([{ introduced: '0', fixed: '1.0.0' }], 'SEMVER'))));
    const bad = await scan(['--db', badDb]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\/x\.json: affected\[0\]\.ranges\[0\]\.events\[0\]: an event has one of introduced, fixed, last_affected or limit/);
    await writeFile(join(badDb, 'x.json'), '{"id": ');
    assert.match((await scan(['--db', badDb])).stderr, /bad\/x\.json: not JSON/);
    const badSbom = join(dir, 'bad-sbom.json');
    await writeFile(badSbom, JSON.stringify({ ...SBOM, packages: [{ ...SBOM.packages[0], type: 'cargo' }] }));
    const r = await runKiln(root, ['scan', `sbom:${badSbom}`, '--db', dbZip]);
    assert.deepEqual([r.code, /bad-sbom\.json: packages\[0\]\.type: "cargo" is not one of deb, apk/.test(r.stderr)], [1, true], r.stderr);
    const image = await runKiln(root, ['scan', 'demo:1', '--db', dbZip]);
    assert.deepEqual([image.code, image.stderr], [1, 'Error: No such image: demo:1\n'], 'an image the store lacks, in Docker\'s words');
  });
});
