import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { Analysis } from '../../src/analyze/analysis.js';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot, tempDir } from '../helpers/paths.js';

const skip = isRoot ? false : 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root';

const APT_LISTS = 400 * 1024;
const APT_CACHE = 600 * 1024;

/** A Dockerfile that wastes bytes four ways: line 3 chmods what line 2 copied, line 5 removes what line 4 cached, line 7 chowns what line 6 copied. */
const WASTEFUL = `FROM busybox
COPY app.bin /app/app.bin
RUN chmod 755 /app/app.bin
RUN mkdir -p /var/lib/apt/lists /var/cache/apt/archives && dd if=/dev/urandom of=/var/lib/apt/lists/deb_Packages bs=1024 count=${APT_LISTS / 1024} && dd if=/dev/urandom of=/var/cache/apt/archives/tool.deb bs=1024 count=${APT_CACHE / 1024}
RUN rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY data /data
RUN chown -R 1000:1000 /data
`;
/** The same image with the fixes the findings suggest. */
const FIXED = `FROM busybox
COPY --chmod=755 app.bin /app/app.bin
RUN mkdir -p /var/lib/apt/lists /var/cache/apt/archives && dd if=/dev/urandom of=/var/lib/apt/lists/deb_Packages bs=1024 count=${APT_LISTS / 1024} && dd if=/dev/urandom of=/var/cache/apt/archives/tool.deb bs=1024 count=${APT_CACHE / 1024} && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --chown=1000:1000 data /data
`;
const APP = 300_000;
const DATA = [200_000, 100_000];

type Kiln = (args: readonly string[], env?: NodeJS.ProcessEnv) => Promise<RunResult>;

/** kiln on a store, with CI unset (CI=true would turn --ci on, as with dive), in `cwd` when given. */
function kilnOn(root: string, cwd?: string): Kiln {
  return (args, env = {}) => runKiln(root, args, undefined, { CI: '', ...env }, cwd);
}

async function analysisOf(kiln: Kiln, args: readonly string[]): Promise<Analysis> {
  return JSON.parse((await ok(kiln(['analyze', '--format', 'json', ...args]))).stdout) as Analysis;
}

// Made here, at the file's level: temporary directories live until the file's tests end.
const { root } = await newKiln();
const kiln = kilnOn(root);
const context = await tempDir('kiln-ctx-');

describe('kiln analyze: an image kiln built', { skip }, () => {
  let wasteful: Analysis;

  before(async () => {
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox']));
    await writeFile(join(context, 'app.bin'), randomBytes(APP));
    await mkdir(join(context, 'data'));
    await Promise.all(DATA.map((size, i) => writeFile(join(context, 'data', `f${i}`), randomBytes(size))));
    await writeFile(join(context, 'Dockerfile'), WASTEFUL);
    await writeFile(join(context, 'Dockerfile.fixed'), FIXED);
    await ok(kiln(['build', '-q', '-t', 'waste:1', context]));
    wasteful = await analysisOf(kiln, ['waste:1']);
  });

  it('names each finding with the line that wrote the bytes, the line to fix with it, the bytes and the fix', () => {
    const { kiln: figures } = wasteful;
    assert.equal(figures.attribution, 'recorded');
    assert.equal(figures.dockerfile, join(context, 'Dockerfile'));
    assert.deepEqual(figures.base, { layers: 1, sizeBytes: figures.layers[0]?.sizeBytes, how: 'recorded', image: 'busybox:latest' });
    assert.deepEqual(
      figures.findings.map((f) => ({ rule: f.rule, line: f.line, fixLine: f.fixLine, bytes: f.bytes, paths: [...f.paths].sort() })),
      [
        { rule: 'package-cache', line: 4, fixLine: 5, bytes: APT_LISTS + APT_CACHE, paths: ['/var/cache/apt/archives/tool.deb', '/var/lib/apt/lists/deb_Packages'] },
        { rule: 'chown-chmod', line: 2, fixLine: 3, bytes: APP, paths: ['/app/app.bin'] },
        { rule: 'chown-chmod', line: 6, fixLine: 7, bytes: (DATA[0] ?? 0) + (DATA[1] ?? 0), paths: ['/data/f0', '/data/f1'] },
      ],
    );
    const messages = figures.findings.map((f) => f.message);
    assert.match(messages[0] ?? '', /removed at line 5, too late.*rm -rf \/var\/lib\/apt\/lists\/\*/);
    assert.match(messages[1] ?? '', /`COPY --chmod=755` at line 2, and drop the chmod at line 3/);
    assert.match(messages[2] ?? '', /`COPY --chown=1000:1000` at line 6, and drop the chown at line 7/);
    assert.equal(figures.reclaimableBytes, APT_LISTS + APT_CACHE + APP + (DATA[0] ?? 0) + (DATA[1] ?? 0));
    assert.equal(figures.userReclaimableBytes, figures.reclaimableBytes);
    assert.deepEqual(
      figures.layers.map((l) => [l.line, l.instruction?.split(' ')[0] ?? null]),
      [[null, null], [2, 'COPY'], [3, 'RUN'], [4, 'RUN'], [5, 'RUN'], [6, 'COPY'], [7, 'RUN']],
    );
  });

  it('after the fixes, the rebuilt image has reclaimable 0 and is smaller by the reported bytes (±1 %)', async () => {
    await ok(kiln(['build', '-q', '-f', join(context, 'Dockerfile.fixed'), '-t', 'waste:2', context]));
    const fixed = await analysisOf(kiln, ['waste:2']);
    assert.equal(fixed.kiln.reclaimableBytes, 0);
    assert.deepEqual(fixed.kiln.findings, []);
    assert.equal(fixed.image.inefficientBytes, 0);
    const size = async (image: string): Promise<number> => Number((await ok(kiln(['inspect', '-f', '{{.Size}}', image]))).stdout.trim());
    const saved = (await size('waste:1')) - (await size('waste:2'));
    const reported = wasteful.kiln.reclaimableBytes;
    assert.ok(Math.abs(saved - reported) <= reported * 0.01, `saved ${saved} bytes, reported ${reported}`);
  });

  it('dive’s figures: the wasted bytes count every copy of a path written twice', () => {
    const { image } = wasteful;
    const references = Object.fromEntries(image.fileReference.map((r) => [r.file, [r.count, r.sizeBytes]]));
    assert.deepEqual(references['/app/app.bin'], [2, 2 * APP]);
    assert.deepEqual(references['/data/f0'], [2, 2 * (DATA[0] ?? 0)]);
    // A deleted file: its whiteout weighs 0 (it was a file), so its cum is what was written. A deleted
    // directory (rm -rf /var/cache/apt/* took archives/ whole) is a leaf only where it is deleted: dive
    // does not count it.
    assert.deepEqual(references['/var/lib/apt/lists/deb_Packages'], [2, APT_LISTS]);
    assert.equal(references['/var/cache/apt/archives'], undefined);
    assert.equal(references['/var/cache/apt/archives/tool.deb'], undefined);
    assert.equal(image.inefficientBytes, image.fileReference.reduce((sum, r) => sum + r.sizeBytes, 0));
    assert.ok(image.efficiencyScore > 0 && image.efficiencyScore < 1);
  });

  it('--ci fails by dive’s rules with one line per failed rule, and passes within thresholds; exit codes 1, 0 and 125', async () => {
    const failed = await kiln(['analyze', '--ci', 'waste:1']);
    assert.equal(failed.code, 1, failed.stderr);
    const lines = failed.stderr.trim().split('\n');
    assert.deepEqual(lines.map((l) => l.replace(/ \(.*$/, '')), ['kiln analyze: FAIL: highestUserWastedPercent: too many bytes wasted, relative to the user bytes added', 'kiln analyze: FAIL: lowestEfficiency: image efficiency is too low']);
    assert.match(failed.stdout, /\n {2}SKIP: highestWastedBytes: rule disabled\n/);
    assert.match(failed.stdout, /Result:FAIL \[Total:3\] \[Passed:0\] \[Failed:2\] \[Warn:0\] \[Skipped:1\]/);
    const passed = await kiln(['analyze', '--ci', '--lowest-efficiency', '0.5', '--highest-user-wasted-percent', '0.9', '--highest-wasted-bytes', '20MB', 'waste:1']);
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stdout, /Result:PASS \[Total:3\] \[Passed:3\]/);
    const wasted = wasteful.image.inefficientBytes;
    const bytes = await kiln(['analyze', '--ci', '--lowest-efficiency', 'off', '--highest-user-wasted-percent', 'disabled', '--highest-wasted-bytes', String(wasted - 1), 'waste:1']);
    assert.equal(bytes.code, 1);
    assert.equal(bytes.stderr, `kiln analyze: FAIL: highestWastedBytes: too many bytes wasted (wasted-bytes=${wasted} > threshold=${wasted - 1})\n`);
    const env = await kiln(['analyze', 'waste:2'], { CI: 'true' });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stdout, /Result:PASS/);
    const bad = await kiln(['analyze', '--ci', '--highest-wasted-bytes', 'lots', 'waste:1']);
    assert.equal(bad.code, 125);
    assert.equal(bad.stderr, "Error: --highest-wasted-bytes: invalid config value ('lots'): not a byte count (such as 20MB, 20MiB or 20000000)\n");
  });

  it('--ci reads .dive-ci in the current directory or --ci-config, flags overriding it', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '.dive-ci'), 'rules:\n  lowestEfficiency: 0.5\n  highestUserWastedPercent: 0.95 # generous\n');
    const here = kilnOn(root, dir);
    assert.equal((await here(['analyze', '--ci', 'waste:1'])).code, 0);
    const overridden = await here(['analyze', '--ci', '--lowest-efficiency', '0.99', 'waste:1']);
    assert.equal(overridden.code, 1);
    assert.match(overridden.stderr, /^kiln analyze: FAIL: lowestEfficiency: image efficiency is too low \(efficiency=0\.\d+ < threshold=0\.99\)\n$/);
    const other = join(dir, 'strict.yaml');
    await writeFile(other, "rules:\n  highestWastedBytes: '1MiB'\n  lowestEfficiency: disabled\n  highestUserWastedPercent: off\n");
    const strict = await here(['analyze', '--ci', '--ci-config', other, 'waste:1']);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /threshold=1048576\)\n$/);
    await writeFile(join(dir, '.dive-ci'), 'rules:\n  lowestEfficency: 0.5\n');
    const typo = await here(['analyze', '--ci', 'waste:1']);
    assert.equal(typo.code, 1);
    assert.equal(typo.stderr, 'Error: .dive-ci:2: unknown rule "lowestEfficency" (dive\'s rules are highestUserWastedPercent, highestWastedBytes, lowestEfficiency)\n');
    const missing = await here(['analyze', '--ci', '--ci-config', join(dir, 'nope'), 'waste:1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: --ci-config .*nope: no such file\n$/);
  });

  it('a one-layer image: the user-wasted ratio is n/a, not NaN, and its rule is skipped', async () => {
    const report = await ok(kiln(['analyze', '--ci', 'busybox']));
    assert.match(report.stdout, /user wasted n\/a/);
    assert.match(report.stdout, /SKIP: highestUserWastedPercent: n\/a: the image has no bytes beyond its first layer/);
    assert.doesNotMatch(report.stdout, /NaN/);
    const { kiln: figures } = await analysisOf(kiln, ['busybox']);
    assert.equal(figures.diveUserWastedRatio, null);
    assert.equal(figures.efficiencyScore, null);
  });

  it('another store has no record of the build: --dockerfile gives the lines back, matched by created_by', async () => {
    const archive = join(await tempDir(), 'waste.tar');
    await ok(kiln(['save', '-o', archive, 'waste:1']));
    const other = { kiln: kilnOn((await newKiln()).root) };
    await ok(other.kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox']));
    await ok(other.kiln(['load', '-i', archive]));
    const bare = await analysisOf(other.kiln, ['waste:1']);
    assert.equal(bare.kiln.attribution, 'none');
    assert.deepEqual(bare.kiln.base, { ...wasteful.kiln.base, how: 'store' });
    assert.ok(bare.kiln.findings.every((f) => f.line === null));
    const matched = await analysisOf(other.kiln, ['--dockerfile', join(context, 'Dockerfile'), 'waste:1']);
    assert.equal(matched.kiln.attribution, 'dockerfile');
    assert.deepEqual(
      matched.kiln.findings.map((f) => [f.rule, f.line, f.fixLine, f.bytes]),
      wasteful.kiln.findings.map((f) => [f.rule, f.line, f.fixLine, f.bytes]),
    );
  });
});
