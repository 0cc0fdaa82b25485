import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  PatternMatcher,
  compilePattern,
  filepathMatch,
  legacyMatches,
  parseDockerignore,
} from '../../src/dockerfile/dockerignore.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceDir } from '../helpers/paths.js';

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
