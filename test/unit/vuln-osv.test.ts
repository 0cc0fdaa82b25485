import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { cvss3BaseScore, cvssLevel } from '../../src/analyze/vuln/cvss.js';
import { affects } from '../../src/analyze/vuln/match.js';
import { type Advisory, advisoriesOf } from '../../src/analyze/vuln/osv.js';
import { applyPolicy, parseIgnoreFile, parseSeverities } from '../../src/analyze/vuln/policy.js';
import { versionOrder } from '../../src/analyze/vuln/version/order.js';
import { readZip } from '../../src/analyze/vuln/zip.js';
import { isKilnError } from '../../src/errors.js';
import { tempDir } from '../helpers/paths.js';

const run = promisify(execFile);

describe('CVSS v3 base scores', () => {
  it("computes the specification's formula, with v3.1's and v3.0's rounding", () => {
    const cases: [string, number][] = [
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
      ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
      ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N', 5.9],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H', 7.5],
      ['CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4],
      ['CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N', 1.6],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O', 9.8],
    ];
    for (const [vector, score] of cases) assert.equal(cvss3BaseScore(vector), score, vector);
    for (const bad of ['', 'CVSS:2.0/AV:N', 'CVSS:3.1/AV:N/AC:L', 'CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 'AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H']) assert.equal(cvss3BaseScore(bad), undefined, bad);
    assert.deepEqual([0, 0.1, 3.9, 4, 6.9, 7, 8.9, 9, 10].map(cvssLevel), ['none', 'low', 'low', 'medium', 'medium', 'high', 'high', 'critical', 'critical']);
  });
});

describe('OSV records', () => {
  it('reads severity from the vector, the affected entry, or the database word', () => {
    const base = { id: 'X-1', affected: [{ package: { ecosystem: 'npm', name: 'a' }, versions: ['1.0.0'] }] };
    assert.deepEqual(advisoriesOf({ ...base, severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }] }, 'x.json')[0]?.severity, { level: 'critical', score: 9.8, vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' });
    assert.equal(advisoriesOf({ ...base, database_specific: { severity: 'MODERATE' } }, 'x.json')[0]?.severity.level, 'medium');
    assert.equal(advisoriesOf({ ...base, affected: [{ ...base.affected[0], severity: [{ type: 'Ubuntu', score: 'high' }] }] }, 'x.json')[0]?.severity.level, 'high');
    assert.equal(advisoriesOf(base, 'x.json')[0]?.severity.level, 'unknown');
    assert.deepEqual(advisoriesOf({ ...base, withdrawn: '2024-01-01T00:00:00Z' }, 'x.json'), []);
    // Ecosystems kiln does not match are left out; GIT ranges are dropped.
    assert.deepEqual(advisoriesOf({ id: 'X-2', affected: [{ package: { ecosystem: 'crates.io', name: 'a' } }] }, 'x.json'), []);
    assert.deepEqual(advisoriesOf({ id: 'X-3', affected: [{ package: { ecosystem: 'Go', name: 'a' }, ranges: [{ type: 'GIT', repo: 'r', events: [{ introduced: 'abc' }] }] }] }, 'x.json')[0]?.ranges, []);
  });

  it('names the file and the field of a record that is not OSV', () => {
    const cases: [unknown, RegExp][] = [
      [[], /r\.json: the record: is not a JSON object/],
      [{ summary: 'x' }, /r\.json: id: missing/],
      [{ id: 'A', affected: {} }, /r\.json: affected: not a list/],
      [{ id: 'A', affected: [{ package: { ecosystem: 'npm' } }] }, /affected\[0\]\.package: needs ecosystem and name/],
      [{ id: 'A', affected: [{ package: { ecosystem: 'npm', name: 'a' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0', fixed: '1' }] }] }] }, /affected\[0\]\.ranges\[0\]\.events\[0\]: an event has one of/],
      [{ id: 'A', affected: [{ package: { ecosystem: 'npm', name: 'a' }, versions: [1] }] }, /affected\[0\]\.versions: not a list of strings/],
    ];
    for (const [record, message] of cases) assert.throws(() => advisoriesOf(record, 'r.json'), (err: unknown) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message), JSON.stringify(record));
  });
});

describe('affected by ranges and versions', () => {
  const advisory = (events: Record<string, string>[], versions: string[] = []): Advisory => ({ id: 'A', aliases: [], summary: '', severity: { level: 'unknown', score: null, vector: null }, ecosystem: 'npm', name: 'a', versions, ranges: [{ type: 'SEMVER', events: events.map((e) => ({ kind: Object.keys(e)[0] as 'introduced', version: Object.values(e)[0] as string })) }] });
  const npm = versionOrder('npm');
  /** Every order of a list (the events of a range may come in any). */
  const permutations = <T>(items: readonly T[]): T[][] => (items.length <= 1 ? [[...items]] : items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])));

  it('walks the events of a range in any order', () => {
    const events: Record<string, string>[] = [{ introduced: '0' }, { fixed: '1.2.0' }, { introduced: '2.0.0' }, { fixed: '2.3.0' }];
    const expected: [string, boolean, string | null][] = [['1.0.0', true, '1.2.0'], ['1.2.0', false, null], ['1.9.9', false, null], ['2.0.0', true, '2.3.0'], ['2.3.0-rc.1', true, '2.3.0'], ['2.3.0', false, null], ['3.0.0', false, null]];
    const orders = permutations(events);
    assert.equal(orders.length, 24);
    for (const order of orders) for (const [version, affected, fixed] of expected) assert.deepEqual(affects(advisory(order), version, npm), { affected, fixed }, `${version} in ${JSON.stringify(order)}`);
  });

  it('last_affected is inclusive, fixed exclusive, versions[] exact', () => {
    assert.deepEqual(affects(advisory([{ last_affected: '1.5.0' }, { introduced: '1.0.0' }]), '1.5.0', npm), { affected: true, fixed: null });
    assert.deepEqual(affects(advisory([{ introduced: '1.0.0' }, { last_affected: '1.5.0' }]), '1.5.1', npm), { affected: false, fixed: null });
    assert.deepEqual(affects(advisory([{ introduced: '1.0.0' }, { last_affected: '1.5.0' }]), '0.9.0', npm), { affected: false, fixed: null });
    assert.deepEqual(affects(advisory([], ['1.0.0', '1.0.1']), '1.0.1', npm), { affected: true, fixed: null });
    assert.deepEqual(affects(advisory([], ['1.0.0']), '1.0.2', npm), { affected: false, fixed: null });
    // Event versions the order cannot read make the range unusable rather than wrong.
    assert.deepEqual(affects(advisory([{ introduced: '0' }, { fixed: 'latest' }]), '1.0.0', npm), { affected: false, fixed: null });
    // PyPI's versions[] compare as versions: 1.0 is 1.0.0.
    assert.equal(affects({ ...advisory([], ['1.0']), ecosystem: 'PyPI' }, '1.0.0', versionOrder('PyPI')).affected, true);
  });
});

describe('the scan policy', () => {
  const finding = (id: string, severity: 'high' | 'low', fixed: string | null, aliases: string[] = []) => ({ id, aliases, severity, fixedVersion: fixed }) as unknown as Parameters<typeof applyPolicy>[0][number];

  it('ignore files: IDs and aliases, expiry dates, comments; bad lines named', () => {
    const entries = parseIgnoreFile('# accepted risks\nCVE-1\nCVE-2 2026-01-31  # until the rebuild\nGHSA-3 exp:2099-12-31\n\n', '.kilnignore');
    assert.deepEqual(entries.map((e) => [e.id, e.until]), [['CVE-1', null], ['CVE-2', '2026-01-31'], ['GHSA-3', '2099-12-31']]);
    const findings = [finding('DSA-1', 'high', '1', ['CVE-1']), finding('CVE-2', 'high', '1'), finding('GHSA-3', 'low', null), finding('CVE-4', 'low', null)];
    const onDay = (day: string) => applyPolicy(findings, { ignore: entries, now: new Date(`${day}T12:00:00Z`) }).kept.map((f) => f.id);
    assert.deepEqual(onDay('2026-01-31'), ['CVE-4']);
    assert.deepEqual(onDay('2026-02-01'), ['CVE-2', 'CVE-4'], 'an expired entry ignores no longer');
    assert.deepEqual(applyPolicy(findings, { ignoreUnfixed: true, now: new Date() }).kept.map((f) => f.id), ['DSA-1', 'CVE-2']);
    assert.deepEqual(applyPolicy(findings, { severities: parseSeverities('HIGH,critical'), now: new Date() }).kept.map((f) => f.id), ['DSA-1', 'CVE-2']);
    assert.throws(() => parseIgnoreFile('CVE-1\nCVE-2 31/01/2026\n', '.kilnignore'), /\.kilnignore:2: "CVE-2 31\/01\/2026"/);
    assert.throws(() => parseIgnoreFile('CVE-2 2026-02-30\n', 'f'), /f:1/);
    assert.throws(() => parseSeverities('high,urgent'), /invalid --severity/);
  });
});

describe('the zip reader', () => {
  /** A zip written by Python's zipfile: the entries given, deflated. */
  async function pythonZip(path: string, entries: Record<string, string>): Promise<void> {
    const program = 'import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:\n    for name, text in json.load(sys.stdin).items(): z.writestr(name, text)';
    const child = execFile('python3', ['-c', program, path]);
    child.stdin?.end(JSON.stringify(entries));
    await new Promise<void>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`python3 exited ${code}`)))));
  }
  const limits = { maxEntryBytes: 1 << 20, maxTotalBytes: 4 << 20 };

  it("reads Python's zips and Info-ZIP's forced ZIP64 ones", async () => {
    const dir = await tempDir();
    await pythonZip(join(dir, 'a.zip'), { 'a.json': '{"id":"A"}', 'sub/b.json': 'x'.repeat(5000) });
    const entries = readZip(await readFile(join(dir, 'a.zip')), 'a.zip', limits);
    assert.deepEqual(entries.map((e) => [e.name, e.read().toString().length]), [['a.json', 10], ['sub/b.json', 5000]]);
    await writeFile(join(dir, 'c.json'), '{"id":"C"}');
    await run('zip', ['-q', '-fz', join(dir, 'z64.zip'), 'c.json'], { cwd: dir });
    assert.deepEqual(readZip(await readFile(join(dir, 'z64.zip')), 'z64.zip', limits).map((e) => e.read().toString()), ['{"id":"C"}']);
  });

  it('refuses zip-slip names, bombs, lies about sizes, damage and non-zips, naming the archive', async () => {
    const dir = await tempDir();
    const refuse = (zip: Buffer, message: RegExp, bounds = limits): void => {
      assert.throws(() => readZip(zip, 'db.zip', bounds).forEach((e) => e.read()), (err: unknown) => isKilnError(err) && /^db\.zip/.test(err.message) && message.test(err.message), String(message));
    };
    await pythonZip(join(dir, 'slip.zip'), { '../../etc/evil.json': '{}' });
    refuse(await readFile(join(dir, 'slip.zip')), /climbs out with \.\./);
    await pythonZip(join(dir, 'abs.zip'), { '/etc/evil.json': '{}' });
    // Python strips a leading slash when it writes; put it back in the central directory to make a hostile one.
    const abs = await readFile(join(dir, 'abs.zip'));
    refuse(Buffer.from(abs.toString('latin1').replaceAll('etc/evil.json', '/tc/evil.json'), 'latin1'), /is absolute/);
    await pythonZip(join(dir, 'bomb.zip'), { 'big.json': ' '.repeat(3 << 20) });
    const bomb = await readFile(join(dir, 'bomb.zip'));
    assert.ok(bomb.length < 10000);
    refuse(bomb, /over the 1048576-byte bound/);
    refuse(bomb, /over 2097152 bytes uncompressed in all/, { maxEntryBytes: 8 << 20, maxTotalBytes: 2 << 20 });
    // The central directory says 100 bytes: inflating stops one byte past that.
    const liar = Buffer.from(bomb);
    const central = liar.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    liar.writeUInt32LE(100, central + 24);
    refuse(liar, /inflates to more than the 100 bytes it declares/);
    const damaged = Buffer.from(bomb);
    damaged.writeUInt32LE(damaged.readUInt32LE(central + 16) ^ 1, central + 16);
    refuse(damaged, /CRC-32 mismatch/, { maxEntryBytes: 8 << 20, maxTotalBytes: 8 << 20 });
    refuse(bomb.subarray(0, bomb.length - 30), /not a readable zip archive/);
    refuse(Buffer.from('not a zip at all, just some text that is long enough'), /no end of central directory/);
  });
});
