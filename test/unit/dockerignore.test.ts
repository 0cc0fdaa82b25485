import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, it } from 'node:test';
import {
  type IgnoreState,
  PatternMatcher,
  cleanPath,
  compilePattern,
  filepathMatch,
  legacyMatches,
  parseDockerignore,
} from '../../src/dockerfile/dockerignore.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceDir, tempDir } from '../helpers/paths.js';

interface Row {
  platform?: string;
  patterns?: string[];
  path?: string;
  match?: boolean;
  error?: string | null;
  constructOk?: boolean;
  repeat?: number;
  patternCount?: number;
  hasExclusions?: boolean;
  pattern?: string;
  matchType?: string;
  regexp?: string | null;
  input?: string;
}

interface CasesFile {
  groups: Record<string, { description: string; cases: Row[] }>;
}

const cases = JSON.parse(readFileSync(join(conformanceDir, 'dockerignore/cases.json'), 'utf8')) as CasesFile;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function attempt<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Null when err is the expected error ('ErrBadPattern' or a message fragment), else why not. */
function errorMismatch(err: unknown, expected: string): string | null {
  if (!isKilnError(err, 'INVALID_INPUT')) return `expected KilnError INVALID_INPUT, got ${describeError(err)}`;
  const fragment = expected === 'ErrBadPattern' ? 'syntax error in pattern' : expected;
  return err.message.includes(fragment) ? null : `error ${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`;
}

/** Compares an outcome with a row's expected match/error. */
function checkOutcome(got: Outcome<boolean>, row: Row): string | null {
  const expectedError = row.error ?? null;
  if (expectedError !== null) {
    if (got.ok) return `expected error ${expectedError}, got match=${String(got.value)}`;
    return errorMismatch(got.error, expectedError);
  }
  if (!got.ok) return `unexpected error ${describeError(got.error)}`;
  return got.value === row.match ? null : `expected match=${String(row.match)}, got ${String(got.value)}`;
}

const patternsOf = (row: Row): string[] => row.patterns ?? [];
const pathOf = (row: Row): string => row.path ?? '';

const handlers: Record<string, (row: Row) => string | null> = {
  matchesOrParentMatches(row) {
    const got = attempt(() => new PatternMatcher(patternsOf(row)).matches(pathOf(row)));
    const failure = checkOutcome(got, row);
    if (failure !== null) return failure;
    // decidingPattern must agree: a match is decided by an inclusion pattern.
    const decider = new PatternMatcher(patternsOf(row)).decidingPattern(pathOf(row));
    const decidedMatch = decider !== undefined && !decider.startsWith('!');
    return decidedMatch === row.match ? null : `decidingPattern ${JSON.stringify(decider)} disagrees with match=${String(row.match)}`;
  },

  filepathMatchCompat(row) {
    const failure = checkOutcome(
      attempt(() => legacyMatches(pathOf(row), patternsOf(row))),
      row,
    );
    if (failure !== null) return failure;
    // filepathMatch itself: same syntax errors, and the same answer where no parent is involved.
    const [pattern] = patternsOf(row);
    if (pattern === undefined) return 'row without a pattern';
    const direct = attempt(() => filepathMatch(pattern, pathOf(row)));
    if (row.error === 'ErrBadPattern') {
      if (direct.ok) return `filepathMatch accepted a bad pattern (match=${String(direct.value)})`;
      const mismatch = errorMismatch(direct.error, 'ErrBadPattern');
      return mismatch === null ? null : `filepathMatch: ${mismatch}`;
    }
    if (!direct.ok) return `filepathMatch threw ${describeError(direct.error)}`;
    if (!pathOf(row).includes('/') && direct.value !== row.match) {
      return `filepathMatch gave ${String(direct.value)}`;
    }
    return null;
  },

  legacyMatches(row) {
    return checkOutcome(
      attempt(() => legacyMatches(pathOf(row), patternsOf(row))),
      row,
    );
  },

  badPatternAtMatchTime(row) {
    const built = attempt(() => new PatternMatcher(patternsOf(row)));
    if (row.constructOk === true && !built.ok) return `constructor threw ${describeError(built.error)}`;
    if (!built.ok) return row.error ? errorMismatch(built.error, row.error) : `constructor threw ${describeError(built.error)}`;
    const failures: string[] = [];
    for (let i = 0; i < (row.repeat ?? 1); i++) {
      const failure = checkOutcome(
        attempt(() => built.value.matches(pathOf(row))),
        row,
      );
      if (failure !== null) failures.push(`call ${i + 1}: ${failure}`);
    }
    return failures.length === 0 ? null : failures.join('; ');
  },

  constructor: (row: Row) => {
    const built = attempt(() => new PatternMatcher(patternsOf(row)));
    if (row.error !== undefined && row.error !== null) {
      if (built.ok) return `expected error ${row.error}`;
      return errorMismatch(built.error, row.error);
    }
    if (!built.ok) return `unexpected error ${describeError(built.error)}`;
    const problems: string[] = [];
    if (row.patternCount !== undefined && built.value.patterns.length !== row.patternCount) {
      problems.push(`patternCount ${built.value.patterns.length} != ${row.patternCount}`);
    }
    if (row.hasExclusions !== undefined && built.value.hasExclusions !== row.hasExclusions) {
      problems.push(`hasExclusions ${String(built.value.hasExclusions)} != ${String(row.hasExclusions)}`);
    }
    return problems.length === 0 ? null : problems.join('; ');
  },

  compileClassification(row) {
    const got = attempt(() => compilePattern(row.pattern ?? ''));
    if (!got.ok) return `threw ${describeError(got.error)}`;
    const problems: string[] = [];
    if (got.value.matchType !== row.matchType) problems.push(`matchType ${got.value.matchType}`);
    if (got.value.regexp !== (row.regexp ?? null)) problems.push(`regexp ${String(got.value.regexp)}`);
    if (got.value.regexp !== null) {
      const re = attempt(() => new RegExp(got.value.regexp ?? '', 'us'));
      if (!re.ok) problems.push(`regexp does not compile: ${describeError(re.error)}`);
    }
    return problems.length === 0 ? null : problems.join('; ');
  },

  readIgnoreFile(row) {
    const got = attempt(() => parseDockerignore(row.input ?? ''));
    if (!got.ok) return `threw ${describeError(got.error)}`;
    try {
      assert.deepEqual(got.value, row.patterns);
      return null;
    } catch {
      return `got ${JSON.stringify(got.value)}`;
    }
  },
};

describe('dockerignore conformance (moby/patternmatcher)', () => {
  for (const [name, group] of Object.entries(cases.groups)) {
    it(`${name}: ${group.cases.length} rows`, () => {
      const handler = handlers[name];
      assert.ok(handler, `no handler for group ${name}`);
      const failures: string[] = [];
      let ran = 0;
      for (const [index, row] of group.cases.entries()) {
        if (row.platform !== undefined && row.platform !== 'unix') continue;
        ran++;
        const failure = handler(row);
        if (failure !== null) {
          const { platform: _platform, ...shown } = row;
          failures.push(`#${index} ${JSON.stringify(shown)}: ${failure}`);
        }
      }
      assert.ok(ran > 0, `group ${name} ran no rows`);
      assert.deepEqual(failures, [], `${failures.length}/${ran} rows failed:\n${failures.join('\n')}`);
    });
  }
});

describe('dockerignore extras', () => {
  it('reads CRLF, a BOM and comments only at column 0', () => {
    assert.deepEqual(parseDockerignore('\ufeff# c\r\n  #not-comment\r\n./a/../b/\r\n!/c//d\n'), ['#not-comment', 'b', '!c/d']);
  });

  it('names the deciding rule and rejects bad patterns by name', () => {
    const pm = new PatternMatcher(['docs', '!docs/README.md', '*.tmp']);
    assert.equal(pm.decidingPattern('docs/a.txt'), 'docs');
    assert.equal(pm.decidingPattern('docs/README.md'), '!docs/README.md');
    assert.equal(pm.decidingPattern('src/x.go'), undefined);
    assert.equal(pm.hasExclusions, true);
    assert.throws(() => new PatternMatcher(['ok', 'a[']), (err) => isKilnError(err, 'INVALID_INPUT') && err.message.includes('"a["'));
  });

  it('treats [!...] literally like Go and never lets * or ? cross /', () => {
    const pm = new PatternMatcher(['[!a]x', 'y?z', 'p*q']);
    assert.equal(pm.matches('!x'), true);
    assert.equal(pm.matches('bx'), false);
    assert.equal(pm.matches('y/z'), false);
    assert.equal(pm.matches('p/q'), false);
  });
});

// ---------------------------------------------------------------------------------------------
// The matcher against a model: moby's algorithm run literally, with the regular expressions that
// compilePattern describes. On short paths the model's backtracking is harmless.

/** A small deterministic generator (the same rows on every run). */
function generator(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    return state % n;
  };
}

/** moby's MatchesOrParentMatches, literally: the answer, and the pattern that last changed it. */
function modelMatches(patterns: readonly string[], path: string): { matched: boolean; decider: string | undefined } {
  const compiled = patterns.map((text) => {
    let p = cleanPath(text);
    const exclusion = p.startsWith('!');
    if (exclusion) p = p.slice(1);
    const { matchType, regexp } = compilePattern(p);
    const re = regexp === null ? undefined : new RegExp(regexp, 'us');
    const test = (q: string): boolean => {
      if (matchType === 'exact') return q === p;
      if (matchType === 'prefix') return q.startsWith(p.slice(0, -2));
      if (matchType === 'suffix') return q.endsWith(p.slice(2)) || (p.startsWith('**/') && q === p.slice(3));
      return re?.test(q) ?? false;
    };
    return { text, exclusion, test };
  });
  const parent = cleanPath(path.slice(0, path.lastIndexOf('/') + 1));
  const dirs = parent.split('/');
  let matched = false;
  let decider: string | undefined;
  for (const p of compiled) {
    if (p.exclusion !== matched) continue;
    let hit = p.test(path);
    for (let i = 0; !hit && parent !== '.' && i < dirs.length; i++) hit = p.test(dirs.slice(0, i + 1).join('/'));
    if (hit) {
      matched = !p.exclusion;
      decider = p.text;
    }
  }
  return { matched, decider };
}

const PATTERN_PIECES = ['a', 'b', 'ab', '/', '*', '**', '**/', '?', '[ab]', '[^a]', '[a-c]', '\\*', '.', '..', './', '/a', 'é', '[/]', ']'];
const PATH_PIECES = ['a', 'b', 'ab', 'ba', 'é', '*', '.', '/', '//'];

interface RandomCase {
  readonly patterns: readonly string[];
  readonly matcher: PatternMatcher;
  /** One of the list, at random. */
  readonly pick: <T>(list: readonly T[]) => T;
  /** A number below n, at random. */
  readonly next: (n: number) => number;
}

/** 3,000 random pattern lists made of `pieces` (the same on every run), those that compile. */
function* randomCases(seed: number, pieces: readonly string[], exclusionOneIn: number): Generator<RandomCase> {
  const next = generator(seed);
  const pick = <T>(list: readonly T[]): T => list[next(list.length)] as T;
  for (let round = 0; round < 3000; round++) {
    const patterns = Array.from({ length: 1 + next(5) }, () => (next(exclusionOneIn) === 0 ? '!' : '') + Array.from({ length: 1 + next(4) }, () => pick(pieces)).join(''));
    let matcher: PatternMatcher;
    try {
      matcher = new PatternMatcher(patterns);
    } catch {
      continue;
    }
    yield { patterns, matcher, pick, next };
  }
}

describe('dockerignore: the matcher agrees with a model', () => {
  it('matches and decidingPattern agree with moby\'s algorithm over the regular expressions', () => {
    const failures: string[] = [];
    let compared = 0;
    for (const { patterns, matcher, pick, next } of randomCases(20, PATTERN_PIECES, 4)) {
      for (let k = 0; k < 6; k++) {
        const path = Array.from({ length: 1 + next(5) }, () => pick(PATH_PIECES)).join('');
        const model = modelMatches(patterns, path);
        const got = { matched: matcher.matches(path), decider: matcher.decidingPattern(path) };
        compared++;
        if (JSON.stringify(got) !== JSON.stringify(model)) failures.push(`${JSON.stringify(patterns)} on ${JSON.stringify(path)}: the model says ${JSON.stringify(model)}, not ${JSON.stringify(got)}`);
      }
    }
    assert.deepEqual(failures.slice(0, 5), []);
    assert.ok(compared > 10_000, `only ${compared} comparisons`);
  });

  it('a walk that hands each directory\'s state down agrees with matches, and skips only what stays excluded', () => {
    const segments = ['a', 'b', 'ab', 'ba', 'x'];
    const failures: string[] = [];
    let skips = 0;
    for (const { patterns, matcher, pick, next } of randomCases(7, ['a', 'b', '/', '*', '**', '**/', '?', '[ab]', 'ab', '/a', 'b/'], 3)) {
      for (let k = 0; k < 4; k++) {
        const parts = Array.from({ length: 1 + next(5) }, () => pick(segments));
        let state: IgnoreState | undefined;
        let skippedBelow: string | undefined;
        parts.forEach((_, depth) => {
          const path = parts.slice(0, depth + 1).join('/');
          state = matcher.stateOf(path, state);
          const expected = matcher.matches(path);
          if (state.excluded !== expected) failures.push(`${JSON.stringify(patterns)} on ${path}: the walk says ${String(state.excluded)}`);
          if (skippedBelow !== undefined && !expected) failures.push(`${JSON.stringify(patterns)}: ${skippedBelow} was skipped, but ${path} is sent`);
          if (skippedBelow === undefined && matcher.skipsBelow(path, state)) {
            skippedBelow = path;
            skips++;
          }
        });
      }
    }
    assert.deepEqual(failures.slice(0, 5), []);
    assert.ok(skips > 1000, `only ${skips} skipped directories`);
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile .dockerignore files: each is matched in a worker, which is ended when it takes longer than
// the bound (so a regression fails the test instead of hanging it). The bounds are generous for a
// loaded 2-core machine; a backtracking matcher took hours on the first three and over a minute on
// the last.

const HOSTILE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { PatternMatcher, parseDockerignore } = await import(workerData.dockerignore);
  const { BuildContext } = await import(workerData.context);
  const { readFileSync } = require('node:fs');
  const matcher = new PatternMatcher(parseDockerignore(readFileSync(workerData.dir + '/.dockerignore', 'utf8')));
  const verdicts = workerData.paths.map((path) => matcher.matches(path));
  const context = await BuildContext.open(workerData.dir, { get: () => undefined, put: () => undefined });
  const [root] = context.resolve('.', 'test');
  parentPort.postMessage({ verdicts, sent: context.tree(root).map((e) => e.path) });
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

/** Matches `paths` and walks `dir` by its .dockerignore in a worker, within `seconds`. */
function matchWithin(seconds: number, dir: string, paths: readonly string[]): Promise<{ verdicts: boolean[]; sent: string[] }> {
  const workerData = {
    dockerignore: new URL('../../src/dockerfile/dockerignore.js', import.meta.url).href,
    context: new URL('../../src/build/context.js', import.meta.url).href,
    dir,
    paths,
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(HOSTILE_WORKER, { eval: true, workerData });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`matching took more than ${seconds} s`));
    }, seconds * 1000);
    worker.once('message', (result: { verdicts: boolean[]; sent: string[]; error?: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      if (result.error !== undefined) reject(new Error(result.error));
      else resolve(result);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Writes files (relative paths) under dir, with their parents. */
async function writeFiles(dir: string, files: readonly string[]): Promise<void> {
  for (const file of files) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), '');
  }
}

const DEEP = Array.from({ length: 40 }, () => 'd').join('/');
const LONG = 'a'.repeat(200);

describe('dockerignore: hostile patterns match in time linear in the pattern and the path', () => {
  it('`*`×60 + `b` against long names (thirty `**` in a row: a `b` at any depth)', async () => {
    const dir = await tempDir('kiln-hostile-');
    const kept = `${'a'.repeat(100)}b`;
    await writeFiles(dir, ['Dockerfile', LONG, kept, 'b', `${DEEP}/${LONG}`, `${DEEP}/b`]);
    await writeFile(join(dir, '.dockerignore'), `${'*'.repeat(60)}b\n`);
    const { verdicts, sent } = await matchWithin(10, dir, [LONG, kept, `${DEEP}/${LONG}`, `${DEEP}/b`, 'b', 'Dockerfile']);
    assert.deepEqual(verdicts, [false, false, false, true, true, false]);
    assert.ok(sent.includes(LONG) && sent.includes(kept) && sent.includes(`${DEEP}/${LONG}`) && !sent.includes(`${DEEP}/b`) && !sent.includes('b'));
  });

  it('`a*`×40 + `b` against long names', async () => {
    const dir = await tempDir('kiln-hostile-');
    const excluded = `${'a'.repeat(60)}b`;
    await writeFiles(dir, ['Dockerfile', LONG, excluded, `${'a'.repeat(39)}b`, `${DEEP}/${LONG}`]);
    await writeFile(join(dir, '.dockerignore'), `${'a*'.repeat(40)}b\n`);
    const { verdicts, sent } = await matchWithin(10, dir, [LONG, excluded, `${'a'.repeat(39)}b`, `${DEEP}/${LONG}`]);
    assert.deepEqual(verdicts, [false, true, false, false]);
    assert.ok(sent.includes(LONG) && !sent.includes(excluded) && sent.includes(`${'a'.repeat(39)}b`));
  });

  it('`**/`×30 + `zz` against a deep tree', async () => {
    const dir = await tempDir('kiln-hostile-');
    await writeFiles(dir, ['Dockerfile', `${DEEP}/zz/x`, `${DEEP}/zzz`, `${DEEP}/${LONG}`]);
    await writeFile(join(dir, '.dockerignore'), `${'**/'.repeat(30)}zz\n`);
    const { verdicts, sent } = await matchWithin(10, dir, [`${DEEP}/zz`, `${DEEP}/zz/x`, `${DEEP}/zzz`, DEEP]);
    assert.deepEqual(verdicts, [true, true, false, false]);
    assert.ok(!sent.includes(`${DEEP}/zz/x`) && !sent.includes(`${DEEP}/zz`) && sent.includes(`${DEEP}/zzz`) && sent.includes(`${DEEP}/${LONG}`));
  });

  it('100,000 patterns over a context of 2,000 files', async () => {
    const dir = await tempDir('kiln-hostile-');
    const files = ['Dockerfile', 'a.log', 'a.txt'];
    for (let d = 0; d < 20; d++) for (let f = 0; f < 100; f++) files.push(`dir${d}/${f % 10 === 0 ? 'keep.txt' : `file${f}.c`}`.replace('keep.txt', f === 0 ? 'keep.txt' : `x${f}.log`));
    await writeFiles(dir, files);
    // Patterns of every kind that match nothing here, around four that do.
    const noise = (i: number): string => [`nomatch${i}`, `nomatch${i}/**`, `**/nomatch${i}`, `**/*.nomatch${i}`, `nomatch${i}*.c`, `!nomatch${i}`, `[n]omatch${i}/*`, `*/nomatch${i}?`][i % 8] as string;
    const patterns = Array.from({ length: 100_000 }, (_, i) => noise(i));
    patterns[0] = 'dir1';
    patterns[50_000] = '*.log';
    patterns[70_000] = 'dir2/*.log';
    patterns[99_999] = '!dir1/keep.txt';
    await writeFile(join(dir, '.dockerignore'), patterns.join('\n'));
    const { verdicts, sent } = await matchWithin(30, dir, ['dir1/file1.c', 'dir1/keep.txt', 'dir2/x10.log', 'dir3/x10.log', 'a.log', 'a.txt']);
    assert.deepEqual(verdicts, [true, false, true, false, true, false]);
    const expected = files.filter((f) => !(f.startsWith('dir1/') && f !== 'dir1/keep.txt') && !f.startsWith('dir2/x') && f !== 'a.log');
    assert.deepEqual(sent.filter((path) => files.includes(path)).sort(), expected.sort());
  });
});
