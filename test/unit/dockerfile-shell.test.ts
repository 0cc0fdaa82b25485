import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { expandWord, expandWords } from '../../src/dockerfile/shell.js';
import type { VariableLookup } from '../../src/dockerfile/shell.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceDir } from '../helpers/paths.js';

const corpus = join(conformanceDir, 'dockerfile-shell');

function lookupIn(env: ReadonlyMap<string, string>): VariableLookup {
  return (name) => env.get(name);
}

/** Runs one expansion; `error` when it throws the expected KilnError. */
function outcome(run: () => string): string {
  try {
    return run();
  } catch (err) {
    if (isKilnError(err, 'INVALID_INPUT')) return 'error';
    throw err;
  }
}

describe('Dockerfile word expansion (BuildKit conformance)', () => {
  it('envVarTest: expands single words', () => {
    const env = new Map([
      ['PWD', '/home'],
      ['SHELL', 'bash'],
      ['KOREAN', '한국어'],
      ['NULL', ''],
    ]);
    const lookup = lookupIn(env);
    const failures: string[] = [];
    let passed = 0;
    for (const [index, line] of readFileSync(join(corpus, 'envVarTest'), 'utf8').split('\n').entries()) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      const [platform, input, expected] = line.split('|').map((field) => field.trim());
      assert.ok(platform !== undefined && input !== undefined && expected !== undefined, `line ${index + 1}: ${line}`);
      if (platform !== 'A' && platform !== 'U') continue;
      const actual = outcome(() => expandWord(input, lookup).value);
      if (actual === expected) passed++;
      else failures.push(`line ${index + 1}: ${input} → ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.equal(passed, 228);
  });

  it('wordsTest: expands lines into words', () => {
    const env = new Map<string, string>();
    const lookup = lookupIn(env);
    const failures: string[] = [];
    let passed = 0;
    for (const [index, line] of readFileSync(join(corpus, 'wordsTest'), 'utf8').split('\n').entries()) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      if (line.startsWith('ENV ')) {
        const assignment = line.slice('ENV '.length);
        const eq = assignment.indexOf('=');
        env.set(assignment.slice(0, eq), assignment.slice(eq + 1));
        continue;
      }
      const bar = line.indexOf('|');
      assert.ok(bar >= 0, `line ${index + 1}: ${line}`);
      const input = line.slice(0, bar).trim();
      const expected = line.slice(bar + 1).trimStart();
      const actual = outcome(() => expandWords(input, lookup).words.join(','));
      if (actual === expected) passed++;
      else failures.push(`line ${index + 1}: ${input} → ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.equal(passed, 24);
  });
});

describe('Dockerfile word expansion', () => {
  const env = new Map([
    ['PWD', '/home'],
    ['EMPTY', ''],
    ['FILE', 'archive.tar.gz'],
    ['PATHS', '/usr/local/bin:/usr/bin'],
  ]);
  const lookup = lookupIn(env);

  it('lists the variables referenced, set or not, in first-seen order', () => {
    assert.deepEqual(expandWord('$PWD/${XXX:-$PWD}${YYY:+$ZZZ}"$EMPTY"$1$@', lookup), {
      value: '/home//home',
      used: ['PWD', 'XXX', 'YYY', 'ZZZ', 'EMPTY'],
    });
    assert.deepEqual(expandWord("'$PWD'\\$XXX", lookup).used, []);
    assert.deepEqual(expandWords('a ${#FILE} b', lookup), { words: ['a', '14', 'b'], used: ['FILE'] });
  });

  it('honours the backtick escape character', () => {
    const options = { escape: '`' } as const;
    assert.equal(expandWord('`$PWD', lookup, options).value, '$PWD');
    assert.equal(expandWord('C:\\dir\\$PWD', lookup, options).value, 'C:\\dir\\/home');
    assert.equal(expandWord('"a`"b`$c``"', lookup, options).value, 'a"b$c`');
    assert.deepEqual(expandWords('a` b c', lookup, options).words, ['a b', 'c']);
    assert.deepEqual(expandWord('`$PWD', lookup, options).used, []);
  });

  it('trims and replaces shell patterns', () => {
    assert.equal(expandWord('${FILE%.*}', lookup).value, 'archive.tar');
    assert.equal(expandWord('${FILE%%.*}', lookup).value, 'archive');
    assert.equal(expandWord('${FILE#*.}', lookup).value, 'tar.gz');
    assert.equal(expandWord('${FILE##*.}', lookup).value, 'gz');
    assert.equal(expandWord('${FILE#[a-c]?}', lookup).value, 'chive.tar.gz');
    assert.equal(expandWord('${FILE%"*"}', lookup).value, 'archive.tar.gz');
    assert.equal(expandWord('${PATHS/\\/usr/\\/opt}', lookup).value, '/opt/local/bin:/usr/bin');
    assert.equal(expandWord('${PATHS//usr/opt}', lookup).value, '/opt/local/bin:/opt/bin');
    assert.equal(expandWord('${PATHS//:*}', lookup).value, '/usr/local/bin');
    assert.equal(expandWord('${#PWD}${#XXX}', lookup).value, '50');
  });

  it('rejects malformed words with readable INVALID_INPUT errors', () => {
    const rejects = (word: string, message: RegExp | string): void => {
      assert.throws(
        () => expandWord(word, lookup),
        (err: unknown) =>
          isKilnError(err, 'INVALID_INPUT') &&
          (typeof message === 'string' ? err.message === message : message.test(err.message)),
        word,
      );
    };
    rejects('"abc', /unterminated quote/);
    rejects("it's", /unterminated quote/);
    rejects('${}', /bad substitution/);
    rejects('${PWD', /missing '}'/);
    rejects('${PWD:=x}', /unsupported modifier \(:=\)/);
    rejects('${XXX:?is required}', 'XXX: is required');
    rejects('${XXX?}', 'XXX: is not allowed to be unset');
    rejects('${EMPTY:?}', 'EMPTY: is not allowed to be empty');
    assert.equal(expandWord('${EMPTY?}', lookup).value, '');
  });
});
