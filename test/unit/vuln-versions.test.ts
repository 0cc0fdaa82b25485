import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { compareApk, isApkVersion } from '../../src/analyze/vuln/version/apk.js';
import { compareDpkg } from '../../src/analyze/vuln/version/dpkg.js';
import { compareMaven } from '../../src/analyze/vuln/version/maven.js';
import { comparePep440Values, parsePep440 } from '../../src/analyze/vuln/version/pep440.js';
import { compareSemverValues, parseGoVersion, parseSemver } from '../../src/analyze/vuln/version/semver.js';
import { versionOrder } from '../../src/analyze/vuln/version/order.js';
import { tempDir } from '../helpers/paths.js';
import { prng } from '../helpers/prng.js';

const run = promisify(execFile);
const SYMBOL = { '-1': '<', '0': '=', '1': '>' } as const;
const symbol = (n: number): string => SYMBOL[String(Math.sign(n)) as keyof typeof SYMBOL];

/** Asserts that each `a OP b` row of a table holds, and its mirror too. */
function checkTable(compare: (a: string, b: string) => number, rows: readonly string[]): void {
  for (const row of rows) {
    const [a, op, b] = row.split(' ') as [string, string, string];
    assert.equal(symbol(compare(a, b)), op, row);
    assert.equal(symbol(compare(b, a)), op === '<' ? '>' : op === '>' ? '<' : '=', `mirror of ${row}`);
  }
}

/** A total order must also be one: sorted chains of a table are strictly increasing. */
function checkChain(compare: (a: string, b: string) => number, chain: readonly string[]): void {
  for (let i = 0; i < chain.length; i++) for (let j = i + 1; j < chain.length; j++) assert.equal(compare(chain[i] as string, chain[j] as string), -1, `${chain[i]} < ${chain[j]}`);
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** A Debian version made of pieces that exercise dpkg's rules: epochs, leading zeros, letters, `~`, `+`, revisions. */
function debianVersion(random: () => number): string {
  const pieces = ['0', '1', '2', '9', '10', '01', '00', '123', 'a', 'b', 'z', 'A', 'Z', '.', '.', '+', '~', '~', '~~', 'rc', 'dfsg', '+b1'];
  let upstream = pick(random, ['0', '1', '2', '10', '1.2', '01']);
  for (let n = Math.floor(random() * 5); n > 0; n--) upstream += pick(random, pieces);
  const epoch = random() < 0.15 ? `${pick(random, ['0', '1', '2', '10'])}:` : '';
  const hyphenated = random() < 0.1;
  if (hyphenated) upstream += `-${pick(random, ['1', 'a', '2'])}`;
  let revision = '';
  if (hyphenated || random() < 0.5) {
    revision = pick(random, ['0', '1', '2', '1ubuntu1', 'a', '1~bpo1', '1+deb12u1', '1.1', '0~']);
    if (random() < 0.3) revision += pick(random, pieces.filter((p) => p !== '-'));
  }
  return `${epoch}${upstream}${revision !== '' ? `-${revision}` : ''}`;
}

/** A second version near the first: one piece changed, added or removed, so that many pairs differ late. */
function nearby(random: () => number, version: string): string {
  const edits = [
    (v: string) => v + pick(random, ['~', '+', '.0', 'a', '0', '~rc1', '-1', '.1']),
    (v: string) => v.slice(0, Math.max(1, v.length - 1)),
    (v: string) => v.replace(/\d+/, (d) => (random() < 0.5 ? `0${d}` : String(Number(d) + 1))),
    (v: string) => v.replace(/[a-z~+]/, pick(random, ['~', '+', 'b', '.'])),
    (v: string) => v,
  ];
  return pick(random, edits)(version);
}

describe('dpkg version order', () => {
  it('agrees with dpkg --compare-versions on 5,000 generated pairs', async () => {
    const random = prng(16);
    const pairs: [string, string][] = [];
    while (pairs.length < 5000) {
      const a = debianVersion(random);
      const b = random() < 0.6 ? nearby(random, a) : debianVersion(random);
      if (/^\d+:.*:/.test(b) || /[:-]$/.test(b) || !/^(\d+:)?\d/.test(b)) continue;
      pairs.push([a, b]);
    }
    // dpkg is asked to confirm kiln's answer for each pair, one `dpkg --compare-versions a lt|eq|gt b` per
    // pair, two at a time under one xargs: it exits 0 only when dpkg confirms every one.
    const dir = await tempDir();
    const claims = pairs.map(([a, b]) => `${a} ${({ '<': 'lt', '=': 'eq', '>': 'gt' } as const)[symbol(compareDpkg(a, b)) as '<' | '=' | '>']} ${b}`);
    const file = join(dir, 'claims');
    await writeFile(file, `${claims.join('\n')}\n`);
    const confirmed = await run('bash', ['-c', 'xargs -P 2 -L 1 dpkg --compare-versions < "$1"', 'confirm', file]).then(
      (r) => r.stderr,
      async () => {
        // Some claim failed: find which (slowly; only when there is a disagreement to show).
        const { stdout } = await run('bash', ['-c', 'while read -r a op b; do dpkg --compare-versions "$a" "$op" "$b" 2>/dev/null || echo "kiln says $a $op $b; dpkg does not"; done < "$1"', 'find', file], { maxBuffer: 1 << 24 });
        return stdout;
      },
    );
    assert.equal(confirmed, '', 'dpkg disagreed or warned');
    // The pairs are varied: each answer is common.
    for (const op of [' lt ', ' eq ', ' gt ']) assert.ok(claims.filter((c) => c.includes(op)).length > 300, `${op} answers`);
  });

  it('follows deb-version(7)', () => {
    checkTable(compareDpkg, ['1.0 < 1.1', '1.0~rc1 < 1.0', '1.0~~ < 1.0~', '1.0 < 1.0+b1', '1.0 < 1.0a', '1.0a < 1.0+', '1:0.1 > 9.9', '1.0 = 1.0-0', '1.0-1 < 1.0-1ubuntu1', '1.00 = 1.0', '2.30-1 > 2.4-1', '0:1.2 = 1.2', '1.2-3~bpo11+1 < 1.2-3', '7.88.1-10+deb12u5 < 7.88.1-10+deb12u6', '1.22 < 1.b', '1.rc > 1.2', '1.2+01-1 < 1.2+b1-1']);
  });
});

describe('apk version order (apk-tools)', () => {
  it('orders digits, letters, suffixes, commit hashes and revisions', () => {
    checkTable(compareApk, [
      '1.0 < 1.1', '1.0 < 1.0.1', '1.0a < 1.0.1', '1.0 < 1.0a', '1.0a < 1.0b', '1.9 < 1.10', '1.01 < 1.1', '1.001 < 1.01', '1.0 = 1.0', '1.2-r0 = 1.2-r0',
      '1.0_alpha < 1.0_beta', '1.0_beta < 1.0_pre', '1.0_pre < 1.0_rc', '1.0_rc < 1.0', '1.0 < 1.0_cvs', '1.0_cvs < 1.0_svn', '1.0_svn < 1.0_git', '1.0_git < 1.0_hg', '1.0_hg < 1.0_p',
      '1.0_rc1 < 1.0_rc2', '1.0_rc < 1.0_rc1', '1.0_p1 < 1.0_p2', '1.0_alpha2 < 1.0_beta1', '1.0_p1 < 1.0.1',
      '1.0-r1 < 1.0-r2', '1.0-r9 < 1.0-r10', '1.0 < 1.0-r1', '1.0-r5 < 1.0.1', '1.0_rc1-r3 < 1.0-r0', '1.0~abc < 1.0~abd', '1.0 < 1.0~abc', '1.0-r1 < 1.0~abc',
      '3.0.13-r0 < 3.1.4-r0', '1.36.1-r15 < 1.36.1-r19', '2.4.58-r0 > 2.4.57-r1',
    ]);
  });

  it('accepts only what apk accepts, and sorts what it rejects lowest', () => {
    for (const good of ['1', '1.2.3', '1.2a', '1.2_rc1', '1.2_p1_rc2', '1.2-r0', '1.2a_beta3-r10', '1.0~cafe-r1']) assert.ok(isApkVersion(good), good);
    for (const bad of ['', 'a1', '1.2-3', '1.2_foo', '1.2ab', '1.2a.3', '1..2', '1.2-r', '1.2_rc-r1x', '1.2~']) assert.ok(!isApkVersion(bad), bad);
    assert.equal(compareApk('1.2_foo', '1.2'), -1);
  });
});

describe('semver 2.0.0 order (npm)', () => {
  const compare = (a: string, b: string): number => compareSemverValues(parseSemver(a)!, parseSemver(b)!);
  it('follows the precedence rules of the specification', () => {
    // The specification's own chain (§11) and its rules: numbers by value, build metadata ignored.
    checkChain(compare, ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.1.0', '1.10.0', '2.0.0']);
    checkTable(compare, ['1.0.0+build.1 = 1.0.0+build.2', '1.0.0-1 < 1.0.0-a', '1.0.0-2 < 1.0.0-10', '1.0.0-a.b < 1.0.0-a-b', 'v1.2.3 = 1.2.3', '1.0.0-alpha.1 < 1.0.0-alpha.1.0', '1.0.0-B < 1.0.0-a']);
  });
  it('rejects what is not semver', () => {
    for (const bad of ['1.0', '1.0.0.0', '01.0.0', '1.0.0-01', '1.0.0-', '1.0.0+', 'x.y.z', '1.0.0-a..b']) assert.equal(parseSemver(bad), undefined, bad);
  });
});

describe('Go module version order', () => {
  const compare = (a: string, b: string): number => compareSemverValues(parseGoVersion(a)!, parseGoVersion(b)!);
  it('orders releases, short forms and pseudo-versions as the go command does', () => {
    checkChain(compare, [
      'v0.0.0-20190101000000-aaaaaaaaaaaa', 'v0.0.0-20200101000000-000000000000', 'v0.1.0', 'v1.2.3', 'v1.2.4-0.20220101000000-abcdefabcdef', 'v1.2.4-pre', 'v1.2.4-pre.0.20230101000000-abcdefabcdef', 'v1.2.4', 'v2.0.0+incompatible', 'v2.1.0',
    ]);
    checkTable(compare, ['v1 = v1.0.0', 'v1.2 = 1.2.0', '1.2.3 = v1.2.3', 'v2.0.0+incompatible = v2.0.0']);
  });
});

describe('PEP 440 order (PyPI)', () => {
  /** PEP 440 versions in the many spellings packaging normalises. */
  function pythonVersion(random: () => number): string {
    const epoch = random() < 0.1 ? `${pick(random, ['0', '1', '2'])}!` : '';
    const release = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(random, ['0', '1', '2', '10', '00', '01'])).join('.');
    const pre = random() < 0.35 ? `${pick(random, ['', '.', '-', '_'])}${pick(random, ['a', 'alpha', 'b', 'beta', 'c', 'rc', 'pre', 'preview', 'RC'])}${pick(random, ['', '0', '1', '2', '.1', '-3'])}` : '';
    const post = random() < 0.25 ? pick(random, ['.post1', '.post', '-1', 'post2', '.rev1', '-r3', '_post0']) : '';
    const dev = random() < 0.25 ? pick(random, ['.dev0', '.dev', 'dev1', '-dev2', '.dev10']) : '';
    const local = random() < 0.2 ? `+${pick(random, ['ubuntu1', 'ubuntu.1', '1', '1.a', 'a.1', 'abc-2', 'local_7', '2'])}` : '';
    return `${random() < 0.05 ? 'v' : ''}${epoch}${release}${pre}${post}${dev}${local}`;
  }

  it('agrees with packaging.version on 3,000 generated pairs', async () => {
    const random = prng(440);
    const pairs = Array.from({ length: 3000 }, () => {
      const a = pythonVersion(random);
      return [a, random() < 0.3 ? a.replace(/\d+$/, (d) => String(Number(d) + 1)) : pythonVersion(random)] as [string, string];
    });
    for (const [a, b] of pairs) assert.ok(parsePep440(a) && parsePep440(b), `${a} / ${b} parse`);
    const program = 'import json, sys\nfrom packaging.version import Version\nout = []\nfor a, b in json.load(sys.stdin):\n    x, y = Version(a), Version(b)\n    out.append(-1 if x < y else 1 if x > y else 0)\nprint(json.dumps(out))';
    const child = execFile('python3', ['-c', program], { maxBuffer: 1 << 24 });
    child.stdin?.end(JSON.stringify(pairs));
    const output = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout?.on('data', (chunk: string) => (text += chunk));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`python3 exited ${code}`))));
    });
    const packaging = JSON.parse(output) as number[];
    const disagreements = pairs.flatMap(([a, b], i) => {
      const kiln = comparePep440Values(parsePep440(a)!, parsePep440(b)!);
      return kiln === packaging[i] ? [] : [`${a} vs ${b}: packaging ${packaging[i]}, kiln ${kiln}`];
    });
    assert.deepEqual(disagreements.slice(0, 10), []);
    for (const answer of [-1, 0, 1]) assert.ok(packaging.filter((p) => p === answer).length > 100, `${answer} answers`);
  });

  it('rejects what packaging rejects', () => {
    for (const bad of ['', 'a', '1.0-', '1.0+', '1.0+local/x', '1.0.dev.post1', 'french toast']) assert.equal(parsePep440(bad), undefined, bad);
  });
});

describe("Maven's version order (ComparableVersion)", () => {
  it("follows the POM reference's version order specification", () => {
    checkTable(compareMaven, [
      '1 < 1.1', '1-snapshot < 1', '1 < 1-sp', '1-foo2 < 1-foo10', '1.foo = 1-foo', '1-foo < 1-1', '1-1 < 1.1', '1.ga = 1-ga', '1-ga = 1-0', '1-0 = 1.0', '1.0 = 1', '1-sp > 1-ga', '1-sp.1 > 1-ga.1', '1-sp-1 < 1-ga-1', '1-a1 = 1-alpha-1',
      '1-alpha < 1-beta', '1-beta < 1-milestone', '1-milestone < 1-rc', '1-rc = 1-cr', '1-rc < 1-snapshot', '1-final = 1', '1-release = 1', '1-sp < 1-zzz', '1.0.0.RELEASE = 1', '2.0.0-M1 < 2.0.0-RC1', '2.0.0-RC1 < 2.0.0', '1.10 > 1.9', '1.0-SNAPSHOT < 1.0', '1.0alpha1 = 1-alpha-1', '1.0.0.0 = 1', '1-1.0 = 1-1',
    ]);
  });
});

describe('version orders by ecosystem', () => {
  it('names the scheme and rejects what the scheme rejects', () => {
    assert.equal(versionOrder('Debian').scheme, 'dpkg');
    assert.equal(versionOrder('Ubuntu').compare('1.0-1ubuntu0.1', '1.0-1ubuntu0.2'), -1);
    assert.ok(!versionOrder('Debian').valid('a:1'));
    assert.ok(!versionOrder('npm').valid('latest'));
    assert.ok(versionOrder('Go').valid('v0.0.0-20200101000000-000000000000'));
    assert.ok(versionOrder('PyPI').valid('2.0.post1'));
    assert.equal(versionOrder('Alpine').compare('1.2-r1', '1.2-r0'), 1);
  });
});
