import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, it } from 'node:test';
import { BuildContext } from '../../src/builder/context.js';
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

/**
 * moby/patternmatcher's vectors, restated as JSON: from $KILN_CONFORMANCE_DIR/dockerignore, else from
 * ../shared/conformance/dockerignore beside the repository when it is there. A clone without either
 * skips them; kiln's own cases below cover the same behaviour.
 */
function conformanceCases(): { cases: CasesFile; skip?: undefined } | { cases?: undefined; skip: string } {
  const named = process.env.KILN_CONFORMANCE_DIR;
  const dir = named ? join(named, 'dockerignore') : join(conformanceDir, 'dockerignore');
  const file = join(dir, 'cases.json');
  if (named && !existsSync(file)) throw new Error(`KILN_CONFORMANCE_DIR=${named}, but ${file} does not exist`);
  if (!existsSync(file)) return { skip: `no conformance corpus: set KILN_CONFORMANCE_DIR to a directory holding dockerignore/cases.json (moby/patternmatcher's vectors)` };
  return { cases: JSON.parse(readFileSync(file, 'utf8')) as CasesFile };
}

const corpus = conformanceCases();

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

describe('dockerignore conformance (moby/patternmatcher)', { skip: corpus.skip }, () => {
  for (const [name, group] of Object.entries(corpus.cases?.groups ?? {})) {
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
// kiln's own cases, written from Docker's .dockerignore documentation and Go's filepath.Match rules,
// so that a clone without the corpus still tests .dockerignore.

/** Whether `path` is left out of the context by a .dockerignore with this text. */
function ignoredBy(text: string, path: string): boolean {
  return new PatternMatcher(parseDockerignore(text)).matches(path);
}

/** [what the rows show, .dockerignore text, path, excluded?] */
type MatchRow = readonly [string, string, string, boolean];

const MATCH_ROWS: readonly MatchRow[] = [
  ['* is any run of characters within one segment', '*.go', 'main.go', true],
  ['* is any run of characters within one segment', '*.go', '.go', true],
  ['* is any run of characters within one segment', 'a*b', 'axxb', true],
  ['* never crosses /', '*.go', 'src/main.go', false],
  ['* never crosses /', 'a*b', 'a/b', false],
  ['* never crosses /', '*/b', 'x/y/b', false],
  ['* matches a directory, and so everything in it', '*', 'src/deep/file', true],
  ['? is one character', 'a?c', 'abc', true],
  ['? is one character', 'a?c', 'ac', false],
  ['? is one character', 'a?c', 'abbc', false],
  ['? is one code point, not one UTF-16 unit', '?.txt', 'é.txt', true],
  ['? is one code point, not one UTF-16 unit', '?.txt', '😀.txt', true],
  ['? is one code point, not one UTF-16 unit', '??.txt', '😀.txt', false],
  ['? never matches /', 'a?c', 'a/c', false],
  ['[...] is one character of a set', '[abc].txt', 'b.txt', true],
  ['[...] is one character of a set', '[abc].txt', 'd.txt', false],
  ['[a-z] is a range', 'v[0-9]', 'v7', true],
  ['[a-z] is a range', 'v[0-9]', 'vx', false],
  ['[a-z] is a range', '[a-cx-z]', 'y', true],
  ['[^...] is any character but these', '[^a].txt', 'b.txt', true],
  ['[^...] is any character but these', '[^a].txt', 'a.txt', false],
  ['[^...] is any character but these, even /', 'x[^a]y', 'x/y', true],
  ["[!...] is not a negation in Go: '!' is a member", '[!a]x', '!x', true],
  ["[!...] is not a negation in Go: '!' is a member", '[!a]x', 'ax', true],
  ["[!...] is not a negation in Go: '!' is a member", '[!a]x', 'bx', false],
  ['an escaped ] or - is a class member', '[\\]]', ']', true],
  ['an escaped ] or - is a class member', '[\\-]', '-', true],
  ['a class holds code points', '[é]', 'é', true],
  ['\\ escapes a wildcard', 'a\\*b', 'a*b', true],
  ['\\ escapes a wildcard', 'a\\*b', 'axb', false],
  ['\\ escapes a wildcard', 'q\\?', 'q?', true],
  ['\\ escapes a wildcard', 'q\\?', 'qx', false],
  ['\\ escapes a wildcard', '\\[x\\]', '[x]', true],
  ['\\ escapes a backslash', 'a\\\\b', 'a\\b', true],
  ['regular-expression characters are literal', 'a.b', 'axb', false],
  ['regular-expression characters are literal', 'a.b', 'a.b', true],
  ['regular-expression characters are literal', 'a+', 'aa', false],
  ['regular-expression characters are literal', 'a+', 'a+', true],
  ['regular-expression characters are literal', '(a|b)', 'a', false],
  ['regular-expression characters are literal', '(a|b)', '(a|b)', true],
  ['regular-expression characters are literal', '{a}$^', '{a}$^', true],
  ['**/ at the start is any number of directories, none too', '**/x', 'x', true],
  ['**/ at the start is any number of directories, none too', '**/x', 'a/b/x', true],
  ['**/ at the start is any number of directories, none too', '**/x', 'ax', false],
  ['**/ at the start is any number of directories, none too', '**/x', 'x/y', true],
  ['/**/ in the middle is any number of directories, none too', 'a/**/b', 'a/b', true],
  ['/**/ in the middle is any number of directories, none too', 'a/**/b', 'a/x/y/b', true],
  ['/**/ in the middle is any number of directories, none too', 'a/**/b', 'a/xb', false],
  ['/**/ in the middle is any number of directories, none too', 'a/**/*.go', 'a/m.go', true],
  ['/**/ in the middle is any number of directories, none too', 'a/**/*.go', 'a/b/c/m.go', true],
  ['/**/ in the middle is any number of directories, none too', 'a/**/*.go', 'b/m.go', false],
  ['/** at the end is everything below, not the directory itself', 'a/**', 'a/b', true],
  ['/** at the end is everything below, not the directory itself', 'a/**', 'a/b/c', true],
  ['/** at the end is everything below, not the directory itself', 'a/**', 'a', false],
  ['/** at the end is everything below, not the directory itself', 'a/**', 'ab', false],
  ['** alone is everything', '**', 'any/where/at/all', true],
  ['a pattern that matches a directory excludes what is in it', 'docs', 'docs/a/b.txt', true],
  ['a pattern that matches a directory excludes what is in it', '*.d', 'conf.d/x', true],
  ['a pattern that matches a directory excludes what is in it', 'docs', 'docsx', false],
  ['a pattern is anchored at the context root', 'b.txt', 'a/b.txt', false],
  ['! re-includes what an earlier pattern excluded', '*.md\n!README.md', 'README.md', false],
  ['! re-includes what an earlier pattern excluded', '*.md\n!README.md', 'CHANGES.md', true],
  ['the last pattern that matches decides', '!README.md\n*.md', 'README.md', true],
  ['the last pattern that matches decides', '*.md\n!*.md\nREADME*', 'README.md', true],
  ['the last pattern that matches decides', '*.md\n!*.md\nREADME*', 'x.md', false],
  ['an exception alone excludes nothing', '!a', 'a', false],
  ['an exception re-includes a file in an excluded directory', 'docs\n!docs/README.md', 'docs/README.md', false],
  ['an exception re-includes a file in an excluded directory', 'docs\n!docs/README.md', 'docs/other.md', true],
  ['an exception re-includes a file in an excluded directory', 'docs\n!docs/README.md', 'docs', true],
  ['an exception re-includes a directory with its contents', '*\n!src', 'src/a/b.c', false],
  ['an exception re-includes a directory with its contents', '*\n!src\nsrc/tmp', 'src/tmp/x', true],
  ['a leading / is the context root', '/a.txt', 'a.txt', true],
  ['a leading ./ is the context root', './a.txt', 'a.txt', true],
  ['a trailing / changes nothing (not directories only)', 'docs/', 'docs/a', true],
  ['a trailing / changes nothing (not directories only)', 'a.txt/', 'a.txt', true],
  ['patterns are cleaned like filepath.Clean', 'a/../b', 'b', true],
  ['patterns are cleaned like filepath.Clean', 'a/../b', 'a', false],
  ['patterns are cleaned like filepath.Clean', 'a//b', 'a/b', true],
  ['patterns are cleaned like filepath.Clean', './a/./b', 'a/b', true],
  ['patterns are cleaned like filepath.Clean', '../a.txt', 'a.txt', false],
  ['spaces around a pattern (and after !) are trimmed', '   *.go   ', 'main.go', true],
  ['spaces around a pattern (and after !) are trimmed', '*\n!   keep', 'keep', false],
  ['a space inside a pattern is kept', 'sp ace.txt', 'sp ace.txt', true],
  ['# starts a comment only in column 0', '# a.txt', 'a.txt', false],
  ['# starts a comment only in column 0', '# a.txt', '# a.txt', false],
  ['# starts a comment only in column 0', '  #x', '#x', true],
  ['# starts a comment only in column 0', 'a # not a comment', 'a', false],
  ['blank lines are skipped', '\n\n   \nb\n\n', 'b', true],
];

describe('dockerignore: kiln\'s own cases', () => {
  it(`matches ${MATCH_ROWS.length} paths as Docker does`, () => {
    const failures = MATCH_ROWS.filter(([, text, path, excluded]) => ignoredBy(text, path) !== excluded).map(([what, text, path, excluded]) => `${what}: ${JSON.stringify(text)} on ${JSON.stringify(path)} should ${excluded ? '' : 'not '}exclude it`);
    assert.deepEqual(failures, []);
  });

  it('reads the file as ignorefile.ReadAll does: comments, blank lines, trimming, cleaning, a leading /', () => {
    assert.deepEqual(parseDockerignore('# comment\n\n  a.txt  \n/b\n./c/../d/\n!  /e//f\n #g\n!\n'), ['a.txt', 'b', 'd', '!e/f', '#g', '!']);
    assert.deepEqual(parseDockerignore('\ufeffx\r\ny\r\n'), ['x', 'y']);
    assert.deepEqual(parseDockerignore(''), []);
    // Go's TrimSpace: U+0085 and U+3000 are space, U+FEFF (past the first line) is not.
    assert.deepEqual(parseDockerignore('\u0085a\u3000\n\ufeffb'), ['a', '\ufeffb']);
  });

  it('keeps the non-empty patterns, trimmed, and notes whether any is an exception', () => {
    const pm = new PatternMatcher(['', '  ', ' a* ', '\t!ab\t']);
    assert.deepEqual(pm.patterns, ['a*', '!ab']);
    assert.equal(pm.hasExclusions, true);
    assert.deepEqual([pm.matches('ab'), pm.matches('ac')], [false, true]);
    assert.equal(new PatternMatcher(['a', 'b/**']).hasExclusions, false);
    assert.deepEqual(new PatternMatcher([]).patterns, []);
    assert.equal(new PatternMatcher([]).matches('a'), false);
  });

  it('cleans paths like Go filepath.Clean', () => {
    const rows: [string, string][] = [['', '.'], ['a/b/', 'a/b'], ['a//b', 'a/b'], ['./a', 'a'], ['a/./b', 'a/b'], ['a/../b', 'b'], ['../a', '../a'], ['/../a', '/a'], ['/', '/'], ['a/..', '.'], ['.hidden/.x', '.hidden/.x'], ['a/b/../../..', '..']];
    assert.deepEqual(rows.map(([path]) => [path, cleanPath(path)]), rows);
  });

  it('refuses malformed patterns by Go filepath.Match rules, naming the pattern', () => {
    for (const bad of ['[', 'a[', '[]a]', '[-]', '[x-]', '[a-b-c]', '[^]', '\\', 'a/[']) {
      assert.throws(() => new PatternMatcher(['ok', bad]), (err) => isKilnError(err, 'INVALID_INPUT') && err.message === `syntax error in pattern ${JSON.stringify(bad)}`, bad);
    }
    assert.throws(() => new PatternMatcher(['!']), (err) => isKilnError(err, 'INVALID_INPUT') && err.message.includes('illegal exclusion pattern'));
    // An inverted range passes Go's syntax check but is refused whenever it is used, every time.
    const inverted = new PatternMatcher(['[z-a]']);
    for (let i = 0; i < 2; i++) assert.throws(() => inverted.matches('x'), (err) => isKilnError(err, 'INVALID_INPUT') && err.message.includes('"[z-a]"'));
    // ...but not when the answer is settled before it: an exception while nothing is excluded.
    assert.equal(new PatternMatcher(['![z-a]']).matches('x'), false);
  });

  it('filepathMatch follows Go: * and ? stay in a segment, classes and escapes', () => {
    const rows: [string, string, boolean][] = [['*', 'abc', true], ['*', 'a/b', false], ['a*/b', 'abc/b', true], ['a*b*c', 'axxbyyc', true], ['a*b*c', 'axxbyy', false], ['?', 'é', true], ['[a-c]', 'b', true], ['[^a-c]', 'b', false], ['\\*', '*', true], ['a*', 'a', true]];
    assert.deepEqual(rows.map(([pattern, name]) => [pattern, name, filepathMatch(pattern, name)]), rows);
  });

  it('sorts patterns into exact, prefix, suffix and regexp matching', () => {
    assert.deepEqual(compilePattern('a/b'), { matchType: 'exact', regexp: null });
    assert.deepEqual(compilePattern('a/**'), { matchType: 'prefix', regexp: null });
    assert.deepEqual(compilePattern('**/a'), { matchType: 'suffix', regexp: null });
    assert.deepEqual(compilePattern('a/*.go'), { matchType: 'regexp', regexp: '^a/[^/]*\\.go$' });
    assert.deepEqual(compilePattern('**/a/**/b?'), { matchType: 'regexp', regexp: '^(.*/)?a/(.*/)?b[^/]$' });
    assert.deepEqual(compilePattern('a*/**'), { matchType: 'regexp', regexp: '^a[^/]*/.*$' });
    assert.deepEqual(compilePattern('[^a-c\\]]'), { matchType: 'regexp', regexp: '^[^a-c\\]]$' });
  });

  it('legacyMatches (moby\'s deprecated Matches) looks only at the parent at the pattern\'s depth', () => {
    assert.equal(legacyMatches('a/b/c', ['a']), true);
    assert.equal(legacyMatches('a/b/c', ['a/b']), true);
    assert.equal(legacyMatches('a/b/c', ['**/a']), false);
    assert.equal(new PatternMatcher(['**/a']).matches('a/b/c'), true);
    assert.equal(legacyMatches('.', ['*']), false);
    assert.equal(legacyMatches('./a', ['a']), true);
    assert.equal(legacyMatches('a', []), false);
  });

  it('names the rule that decided, and none when an exception did', () => {
    const pm = new PatternMatcher(parseDockerignore('docs\n*.md\n!docs/README.md\n'));
    assert.equal(pm.decidingPattern('docs/a.md'), 'docs');
    assert.equal(pm.decidingPattern('docs/README.md'), '!docs/README.md');
    assert.equal(pm.decidingPattern('src/x.go'), undefined);
  });
});

/**
 * A context tree for .dockerignore cases, and what each case leaves out of it. Every row was checked
 * against Docker 20.10.24's BuildKit (DOCKER_BUILDKIT=1, `FROM scratch` + `COPY . /`, exported with
 * `-o type=local`), except where the row says otherwise.
 */
const TREE = [
  'Dockerfile', '.dockerignore', 'a.txt', 'b.txt', 'ab.txt', 'abc.md', '.hidden', 'x.go', 'README.md', 'README-secret.md',
  'docs/README.md', 'docs/a.txt', 'docs/sub/deep.txt', 'docs/sub/keep.md',
  'src/main.go', 'src/util/helper.go', 'src/util/helper_test.go', 'src/vendor/lib.go',
  'temp1', 'temp12', 'tempa/f', 'lib/x.tmp', 'lib/y.txt',
  'a/b/c/d.txt', 'a/x/b/c.txt', 'b/c.txt', 'node_modules/pkg/index.js', '[x]', 'a*b', 'axb', 'q?', 'emptydir/',
];
const GO_FILES = ['x.go', 'src/main.go', 'src/util/helper.go', 'src/util/helper_test.go', 'src/vendor/lib.go'];

/** [.dockerignore text, the files of TREE it leaves out] */
const TREE_ROWS: readonly (readonly [string, readonly string[]])[] = [
  ['*.txt', ['a.txt', 'b.txt', 'ab.txt']],
  ['*/*.txt', ['docs/a.txt', 'lib/y.txt', 'b/c.txt']],
  ['**/*.txt', ['a.txt', 'b.txt', 'ab.txt', 'docs/a.txt', 'docs/sub/deep.txt', 'lib/y.txt', 'a/b/c/d.txt', 'a/x/b/c.txt', 'b/c.txt']],
  ['?.txt', ['a.txt', 'b.txt']],
  ['[ab].txt', ['a.txt', 'b.txt']],
  ['[a-b]?.txt', ['ab.txt']],
  ['[^a].txt', ['b.txt']],
  ['[!a]xb', ['axb']],
  ['temp?', ['temp1', 'tempa/f']],
  ['temp*', ['temp1', 'temp12', 'tempa/f']],
  ['a?b', ['a*b', 'axb']],
  ['a\\*b', ['a*b']],
  ['\\[x\\]', ['[x]']],
  ['[[]x]', ['[x]']],
  ['q\\?', ['q?']],
  ['**/README.md', ['README.md', 'docs/README.md']],
  ['src/**/*.go', ['src/main.go', 'src/util/helper.go', 'src/util/helper_test.go', 'src/vendor/lib.go']],
  ['a/**/c.txt', ['a/x/b/c.txt']],
  ['a/**/b/**/d.txt', ['a/b/c/d.txt']],
  ['**/b/c.txt', ['a/x/b/c.txt', 'b/c.txt']],
  ['src/**/util', ['src/util/helper.go', 'src/util/helper_test.go']],
  ['src/**/helper*', ['src/util/helper.go', 'src/util/helper_test.go']],
  ['**/sub', ['docs/sub/deep.txt', 'docs/sub/keep.md']],
  ['**/sub/*.md', ['docs/sub/keep.md']],
  ['docs/**', ['docs/README.md', 'docs/a.txt', 'docs/sub/deep.txt', 'docs/sub/keep.md']],
  ['*/b', ['a/b/c/d.txt']],
  ['a/*/c.txt', []],
  ['*/*/*', ['docs/sub/deep.txt', 'docs/sub/keep.md', 'src/util/helper.go', 'src/util/helper_test.go', 'src/vendor/lib.go', 'a/b/c/d.txt', 'a/x/b/c.txt', 'node_modules/pkg/index.js']],
  ['**', TREE],
  ['*', TREE],
  ['*\n!src', TREE.filter((f) => !f.startsWith('src/'))],
  ['*\n!*.go', TREE.filter((f) => f !== 'x.go')],
  // Today's BuildKit (fsutil walks into src/ when an exception has a wildcard); 20.10's skipped src/ and kept only x.go.
  ['*\n!**/*.go', TREE.filter((f) => !GO_FILES.includes(f))],
  ['*.md\n!README.md', ['abc.md', 'README-secret.md']],
  ['!README.md\n*.md', ['abc.md', 'README.md', 'README-secret.md']],
  ['*.md\n!*.md\nREADME*', ['README.md', 'README-secret.md']],
  ['docs\n!docs/README.md', ['docs/a.txt', 'docs/sub/deep.txt', 'docs/sub/keep.md']],
  ['docs\n!docs/sub', ['docs/README.md', 'docs/a.txt']],
  ['docs\n!docs/sub\ndocs/sub/keep.md', ['docs/README.md', 'docs/a.txt', 'docs/sub/keep.md']],
  ['docs/*\n!docs/sub', ['docs/README.md', 'docs/a.txt']],
  ['src/*\n!src/util', ['src/main.go', 'src/vendor/lib.go']],
  ['lib/*.tmp\nlib\n!lib/y.txt', ['lib/x.tmp']],
  ['**/*.go\n!src/**', ['x.go']],
  ['/a.txt\n./docs/a.txt', ['a.txt', 'docs/a.txt']],
  ['docs/\nREADME.md/', ['README.md', 'docs/README.md', 'docs/a.txt', 'docs/sub/deep.txt', 'docs/sub/keep.md']],
  ['# *.txt\n\n   *.go   \n  #x', ['x.go']],
  ['docs/../a.txt\nsrc//main.go\n./src/./util/helper.go', ['a.txt', 'src/main.go', 'src/util/helper.go']],
  ['../a.txt', []],
  ['! README.md', []],
  ['node_modules', ['node_modules/pkg/index.js']],
  ['emptydir', ['emptydir/']],
  // The Dockerfile and .dockerignore still drive the build, but a COPY does not see them.
  ['Dockerfile\n.dockerignore', ['Dockerfile', '.dockerignore']],
];

async function writeTree(dir: string, ignore: string): Promise<void> {
  for (const file of TREE) {
    if (file.endsWith('/')) await mkdir(join(dir, file), { recursive: true });
    else {
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), file === '.dockerignore' ? ignore : file);
    }
  }
}

const noDigests = { under: () => new Map(), put: () => undefined, checksumOf: () => undefined, putChecksum: () => undefined };

/** The entries of TREE (files, and directories with a final '/') that a COPY of the whole context would see. */
async function visibleFiles(dir: string): Promise<string[]> {
  const context = await BuildContext.open(dir, noDigests, join(dir, 'Dockerfile'));
  const [root] = context.resolve('.', 'test');
  assert.ok(root);
  return context
    .tree(root)
    .map((e) => (e.type === 'directory' ? `${e.path}/` : e.path))
    .filter((path) => TREE.includes(path));
}

describe('dockerignore: a build context leaves out what Docker leaves out', () => {
  it(`${TREE_ROWS.length} .dockerignore files over one tree`, async () => {
    const dir = await tempDir('kiln-ignore-tree-');
    await writeTree(dir, '');
    const failures: string[] = [];
    for (const [ignore, hidden] of TREE_ROWS) {
      await writeFile(join(dir, '.dockerignore'), ignore);
      const expected = TREE.filter((f) => !hidden.includes(f)).sort();
      const got = (await visibleFiles(dir)).sort();
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        failures.push(`${JSON.stringify(ignore)}: sent ${JSON.stringify(got.filter((f) => !expected.includes(f)))} too, left out ${JSON.stringify(expected.filter((f) => !got.includes(f)))} too`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('says which rule hid a COPY source, and refuses a malformed .dockerignore by pattern', async () => {
    const dir = await tempDir('kiln-ignore-rule-');
    await writeTree(dir, 'Dockerfile\ndocs\n!docs/README.md\n');
    const context = await BuildContext.open(dir, noDigests, join(dir, 'Dockerfile'));
    assert.throws(() => context.resolve('Dockerfile', 'COPY'), (err) => isKilnError(err, 'NOT_FOUND') && err.message.includes('excluded by the rule "Dockerfile"'));
    assert.throws(() => context.resolve('docs/a.txt', 'COPY'), (err) => isKilnError(err, 'NOT_FOUND') && err.message.includes('excluded by the rule "docs"'));
    assert.equal(context.resolve('docs/README.md', 'COPY').length, 1);
    await writeFile(join(dir, '.dockerignore'), 'a.txt\nsrc/[\n');
    await assert.rejects(BuildContext.open(dir, noDigests), (err) => isKilnError(err, 'INVALID_INPUT') && err.message === 'syntax error in pattern "src/["');
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

describe('dockerignore: compiling in steps', () => {
  it('PatternMatcher.compile pauses while it works and gives the constructor\'s matcher', async () => {
    const patterns = Array.from({ length: 20_000 }, (_, i) => [`n${i}`, `**/*.x${i}`, `*/y${i}?`, `d${i}/**`, `!k${i}`][i % 5] as string);
    patterns.push('*.log', 'd7', '!d7/keep', '**');
    let pauses = 0;
    const stepwise = await PatternMatcher.compile(patterns, async () => {
      pauses++;
    });
    const direct = new PatternMatcher(patterns);
    assert.ok(pauses >= 20_000 / 256, `only ${pauses} pauses`);
    assert.deepEqual(stepwise.patterns, direct.patterns);
    for (const path of ['a.log', 'd7/x', 'd7/keep', 'q/y5z', 'n0', 'n1', 'k4', 'anything']) {
      assert.equal(stepwise.decidingPattern(path), direct.decidingPattern(path), path);
    }
    await assert.rejects(PatternMatcher.compile(['ok', 'a['], async () => undefined), (err) => isKilnError(err, 'INVALID_INPUT') && err.message.includes('"a["'));
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile .dockerignore files: each is matched in a worker, which is ended when it takes longer than
// the bound (so a regression fails the test instead of hanging it). The bounds are generous for a
// loaded 2-core machine (the matcher needs milliseconds, and under a second of CPU for the last); a
// backtracking matcher took hours on the first three and about 100 s of CPU on the last.

const HOSTILE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { PatternMatcher, parseDockerignore } = await import(workerData.dockerignore);
  const { BuildContext } = await import(workerData.context);
  const { readFileSync } = require('node:fs');
  const matcher = new PatternMatcher(parseDockerignore(readFileSync(workerData.dir + '/.dockerignore', 'utf8')));
  const verdicts = workerData.paths.map((path) => matcher.matches(path));
  const context = await BuildContext.open(workerData.dir, { under: () => new Map(), put: () => undefined, checksumOf: () => undefined, putChecksum: () => undefined });
  const [root] = context.resolve('.', 'test');
  parentPort.postMessage({ verdicts, sent: context.tree(root).map((e) => e.path) });
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

/** Matches `paths` and walks `dir` by its .dockerignore in a worker, within `seconds`. */
function matchWithin(seconds: number, dir: string, paths: readonly string[]): Promise<{ verdicts: boolean[]; sent: string[] }> {
  const workerData = {
    dockerignore: new URL('../../src/dockerfile/dockerignore.js', import.meta.url).href,
    context: new URL('../../src/builder/context.js', import.meta.url).href,
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
    const { verdicts, sent } = await matchWithin(45, dir, ['dir1/file1.c', 'dir1/keep.txt', 'dir2/x10.log', 'dir3/x10.log', 'a.log', 'a.txt']);
    assert.deepEqual(verdicts, [true, false, true, false, true, false]);
    const expected = files.filter((f) => !(f.startsWith('dir1/') && f !== 'dir1/keep.txt') && !f.startsWith('dir2/x') && f !== 'a.log');
    assert.deepEqual(sent.filter((path) => files.includes(path)).sort(), expected.sort());
  });
});
