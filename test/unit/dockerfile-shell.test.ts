import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MAX_EXPANDED_WORD, MAX_PATTERN_WORK, expandWord, expandWords } from '../../src/dockerfile/shell.js';
import type { VariableLookup } from '../../src/dockerfile/shell.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceCorpus } from '../helpers/paths.js';

// BuildKit's envVarTest and wordsTest vectors: an optional external corpus, read in place.
const corpus = conformanceCorpus('dockerfile-shell');

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

describe('Dockerfile word expansion (BuildKit conformance)', { skip: corpus.skip }, () => {
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
    for (const [index, line] of readFileSync(corpus.path('envVarTest'), 'utf8').split('\n').entries()) {
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
    for (const [index, line] of readFileSync(corpus.path('wordsTest'), 'utf8').split('\n').entries()) {
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

/*
 * The project's own cases, written from BuildKit's word expansion (frontend/dockerfile/shell/lex.go) and
 * the Dockerfile reference ("Environment replacement"). Those marked "BuildKit live" were expanded by
 * dockerd 20.10's BuildKit too (as LABEL values and EXPOSE words of a FROM scratch build) with the same
 * results; that BuildKit predates the -, +, #, % and / modifiers, so their cases follow lex.go.
 */
const ENV = new Map([
  ['NAME', 'kiln'],
  ['EMPTY', ''],
  ['UNICODE', '日本語'],
  ['ÜBER', 'x'],
  ['GREETING', 'hello world'],
  ['SPACED', '  x  y  '],
  ['NBSP', 'a\u00a0b'],
  ['FILE', 'archive.tar.gz'],
  ['EXT', '.gz'],
  ['STARS', 'a**b'],
  ['PATHS', '/usr/local/bin:/usr/bin'],
]);
const lookup = lookupIn(ENV);

/** Expands each word and compares the results as one table, so a failure lists every wrong row. */
function expectWords(cases: readonly (readonly [string, string])[], options?: { escape: '`' }): void {
  const got = cases.map(([word]) => [word, outcome(() => expandWord(word, lookup, options).value)]);
  assert.deepEqual(got, cases.map(([word, want]) => [word, want]));
}

describe('Dockerfile word expansion: one word', () => {
  it('substitutes $NAME and ${NAME}: names of letters (any script), digits and _, unset is empty (BuildKit live)', () => {
    expectWords([
      ['plain', 'plain'],
      ['$NAME', 'kiln'],
      ['${NAME}', 'kiln'],
      ['$NAME.conf', 'kiln.conf'],
      ['${NAME}_x', 'kiln_x'],
      ['$NAME_x', ''],
      ['pre$NAME', 'prekiln'],
      ['$UNSET', ''],
      ['${UNSET}', ''],
      ['$ÜBER', 'x'],
      ['日本$NAME語', '日本'],
      ['"日本${UNICODE}"', '日本日本語'],
    ]);
  });

  it('keeps a $ that starts no name, and takes special and positional parameters as unset (BuildKit live)', () => {
    expectWords([
      ['$', '$'],
      ['a$', 'a$'],
      ['$/x', '$/x'],
      ['$-', ''],
      ['$@', ''],
      ['$*', ''],
      ['$#', ''],
      ['$?', ''],
      ['$$', ''],
      ['$!', ''],
      ['$0', ''],
      ['$1', ''],
      ['$12', ''],
      ['$1x', 'x'],
      ['${1}', ''],
      ['${@}', ''],
      ['$$NAME', 'NAME'],
      ['${#}', ''],
      ['${#:-x}', 'x'],
      ['${@:+x}', ''],
    ]);
  });

  it('takes the character after the escape literally, and drops an escape at the very end (BuildKit live)', () => {
    expectWords([
      ['\\$NAME', '$NAME'],
      ['\\${NAME}', '${NAME}'],
      ['a\\ b', 'a b'],
      ['\\\\', '\\'],
      ['\\a', 'a'],
      ['a\\', 'a'],
    ]);
  });

  it('removes quotes: single quotes keep everything, double quotes expand and escape only " $ and the escape (BuildKit live)', () => {
    expectWords([
      ['"$NAME"', 'kiln'],
      ['"${NAME} and $NAME"', 'kiln and kiln'],
      ["'single $NAME'", 'single $NAME'],
      ["'$NAME'", '$NAME'],
      ["'\\$NAME'", '\\$NAME'],
      ['"\\$NAME"', '$NAME'],
      ['"a\\"b"', 'a"b'],
      ['"a\\\\b"', 'a\\b'],
      ['"a\\b"', 'a\\b'],
      ['"it\'s"', "it's"],
      ['\'say "hi"\'', 'say "hi"'],
      ['a"b"c', 'abc'],
      ['"a \'b\' c"', "a 'b' c"],
      ['""', ''],
      ["''", ''],
      ['"a  b"', 'a  b'],
    ]);
  });

  it('${NAME:-word} and ${NAME:+word} test set and not empty; nested and quoted words expand (BuildKit live)', () => {
    expectWords([
      ['${NAME:-def}', 'kiln'],
      ['${UNSET:-def}', 'def'],
      ['${EMPTY:-def}', 'def'],
      ['${NAME:+alt}', 'alt'],
      ['${UNSET:+alt}', ''],
      ['${EMPTY:+alt}', ''],
      ['${UNSET:-${NAME:-x}}', 'kiln'],
      ['${UNSET:-$NAME}', 'kiln'],
      ['${NAME:+[$NAME]}', '[kiln]'],
      ['${UNSET:-"a b"}', 'a b'],
      ["${UNSET:-'$NAME'}", '$NAME'],
      ['${UNICODE:+ü}', 'ü'],
    ]);
  });

  it('${NAME-word} and ${NAME+word} test set only: an empty value counts as set', () => {
    expectWords([
      ['${NAME-def}', 'kiln'],
      ['${UNSET-def}', 'def'],
      ['${EMPTY-def}', ''],
      ['${NAME+alt}', 'alt'],
      ['${EMPTY+alt}', 'alt'],
      ['${UNSET+alt}', ''],
    ]);
  });

  it('${NAME?} and ${NAME:?message} pass a set value and refuse an unset (or, with :, empty) one with the message (BuildKit live)', () => {
    expectWords([
      ['${NAME?}', 'kiln'],
      ['${NAME:?}', 'kiln'],
      ['${EMPTY?}', ''],
      ['${NAME:?never shown}', 'kiln'],
    ]);
    const message = (word: string): string => {
      try {
        expandWord(word, lookup);
      } catch (err) {
        if (isKilnError(err, 'INVALID_INPUT')) return err.message;
        throw err;
      }
      return 'no error';
    };
    assert.deepEqual(
      ['${UNSET?}', '${UNSET:?}', '${EMPTY:?}', '${UNSET?custom message}', '${EMPTY:?must not be empty}', '${UNSET:?$NAME is needed}'].map(message),
      ['UNSET: is not allowed to be unset', 'UNSET: is not allowed to be unset', 'EMPTY: is not allowed to be empty', 'UNSET: custom message', 'EMPTY: must not be empty', 'UNSET: kiln is needed'],
    );
  });

  it('${NAME#pattern} and ${NAME%pattern} cut the shortest match from the front or back, ## and %% the longest', () => {
    expectWords([
      ['${FILE#*.}', 'tar.gz'],
      ['${FILE##*.}', 'gz'],
      ['${FILE%.*}', 'archive.tar'],
      ['${FILE%%.*}', 'archive'],
      ['${FILE#?}', 'rchive.tar.gz'],
      ['${FILE%??}', 'archive.tar.'],
      ['${FILE#nomatch}', 'archive.tar.gz'],
      ['${FILE#tar}', 'archive.tar.gz'],
      ['${FILE%$EXT}', 'archive.tar'],
      ['${FILE#}', 'archive.tar.gz'],
      ['${FILE%}', 'archive.tar.gz'],
      ['${FILE#*}', 'archive.tar.gz'],
      ['${FILE##*}', ''],
      ['${STARS#a\\*}', '*b'],
      ['${STARS%\\**}', 'a*'],
      ['${STARS%%\\**}', 'a'],
      ['${UNSET#x}', ''],
    ]);
  });

  it('${NAME/pattern/text} replaces the first longest match, ${NAME//pattern/text} every one', () => {
    expectWords([
      ['${PATHS/usr/opt}', '/opt/local/bin:/usr/bin'],
      ['${PATHS//usr/opt}', '/opt/local/bin:/opt/bin'],
      ['${PATHS/:*/}', '/usr/local/bin'],
      ['${PATHS//bin/}', '/usr/local/:/usr/'],
      ['${PATHS/?usr/X}', 'X/local/bin:/usr/bin'],
      ['${PATHS/nomatch/x}', '/usr/local/bin:/usr/bin'],
      ['${PATHS/usr/$NAME}', '/kiln/local/bin:/usr/bin'],
      ['${UNSET/a/b}', ''],
    ]);
  });

  it('refuses what it cannot expand: unterminated quotes, bad or unfinished substitutions, unsupported modifiers (BuildKit live)', () => {
    for (const word of ['"abc', "it's", "'abc", '${}', '${:}', '${{NAME}}', '${NAME', '${NAME:-x', '${NAME:=x}', '${NAME=x}', '${NAME:x}', '${NAME!}', '${FILE:#x}', '${FILE:%x}']) {
      assert.equal(outcome(() => expandWord(word, lookup).value), 'error', word);
    }
  });

  it('with ` as the escape: ` escapes, \\ is plain text, also in double quotes (BuildKit live)', () => {
    expectWords(
      [
        ['`$NAME', '$NAME'],
        ['C:\\dir\\$NAME', 'C:\\dir\\kiln'],
        ['"a`"b`$c``"', 'a"b$c`'],
        ['a``b', 'a`b'],
        ['"x\\y"', 'x\\y'],
      ],
      { escape: '`' },
    );
  });
});

describe('Dockerfile word expansion: a line into words', () => {
  const words = (line: string): string[] | 'error' => {
    try {
      return expandWords(line, lookup).words;
    } catch (err) {
      if (isKilnError(err, 'INVALID_INPUT')) return 'error';
      throw err;
    }
  };

  it('splits unquoted text and unquoted expansions on blanks; quoted ones stay one word (BuildKit live for expansions)', () => {
    const cases: [string, string[] | 'error'][] = [
      ['a b  c', ['a', 'b', 'c']],
      ['  lead trail  ', ['lead', 'trail']],
      ['$GREETING', ['hello', 'world']],
      ['"$GREETING"', ['hello world']],
      ['x${GREETING}y', ['xhello', 'worldy']],
      ['x"${GREETING}"y', ['xhello worldy']],
      ['$SPACED', ['x', 'y']],
      ['$NBSP', ['a', 'b']],
      ["'a  b' c", ['a  b', 'c']],
      ['a\\ b c', ['a b', 'c']],
      ['a\\  b', ['a ', 'b']],
      ['${UNSET:-one two}', ['one', 'two']],
      ['"${UNSET:-one two}"', ['one two']],
    ];
    assert.deepEqual(cases.map(([line]) => [line, words(line)]), cases);
  });

  it('gives no word for an empty expansion or empty quotes', () => {
    const cases: [string, string[] | 'error'][] = [
      ['$EMPTY', []],
      ['"$EMPTY"', []],
      ['""', []],
      ['a "" b', ['a', 'b']],
      ['a $UNSET b', ['a', 'b']],
      ['', []],
    ];
    assert.deepEqual(cases.map(([line]) => [line, words(line)]), cases);
  });

  it('refuses a line with an unterminated quote or substitution', () => {
    assert.deepEqual(['a "b', "a 'b", 'a ${B'].map(words), ['error', 'error', 'error']);
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

describe('Dockerfile word expansion: bounded work on hostile words', () => {
  const tooLong = (err: unknown): boolean => isKilnError(err, 'INVALID_INPUT') && err.message.includes(`more than ${MAX_EXPANDED_WORD} characters`) && err.message.length < 400;

  it('stops a self-doubling variable at the word limit, at once (ARG A=${A}${A} 28 times once took 3.5 GB)', () => {
    const started = Date.now();
    let value = 'x';
    let doublings = 0;
    assert.throws(() => {
      for (; doublings < 28; doublings++) value = expandWord('${A}${A}', (name) => (name === 'A' ? value : undefined)).value;
    }, tooLong);
    assert.equal(doublings, 20);
    assert.equal(value.length, MAX_EXPANDED_WORD);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  it('bounds words and words lists alike, whatever makes them long', () => {
    const big = 'y'.repeat(MAX_EXPANDED_WORD);
    const lookup: VariableLookup = (name) => (name === 'BIG' ? big : name === 'SMALL' ? 'ab' : undefined);
    assert.equal(expandWord('$BIG', lookup).value.length, MAX_EXPANDED_WORD);
    for (const word of ['$BIG$SMALL', '"${BIG}"x', "${BIG}'x'", '${NONE:-$BIG}.', '${BIG/y/zz}', '${BIG//y/zz}', `${'z'.repeat(MAX_EXPANDED_WORD + 1)}`]) {
      assert.throws(() => expandWord(word, lookup), tooLong, word.slice(0, 40));
    }
    assert.throws(() => expandWords('a $BIG$SMALL b', lookup), tooLong);
    // The word in the message is cut short.
    assert.throws(() => expandWord('z'.repeat(MAX_EXPANDED_WORD + 1), lookup), (err: unknown) => tooLong(err) && (err as Error).message.includes(`(${MAX_EXPANDED_WORD + 1} characters)`));
  });

  it('matches patterns in time linear in the value (replacing in 5,000 characters once took minutes)', () => {
    const value = 'a'.repeat(200_000);
    const lookup: VariableLookup = (name) => (name === 'A' ? value : name === 'P' ? '['.repeat(100_000) : name === 'S' ? 'short' : undefined);
    const started = Date.now();
    assert.equal(expandWord('${A//b/c}', lookup).value, value);
    assert.equal(expandWord('${A/a/b}', lookup).value, `b${value.slice(1)}`);
    assert.equal(expandWord('${A//a*b/c}', lookup).value, value);
    assert.equal(expandWord('${A%%b*}', lookup).value, value);
    assert.equal(expandWord('${A%a*}', lookup).value, value.slice(1));
    assert.equal(expandWord('${A##*a}', lookup).value, '');
    assert.equal(expandWord('${A#*b}', lookup).value, value);
    // Thousands of unclosed brackets in a pattern are literal, not each a scan to the end.
    assert.equal(expandWord('${S//$P/x}', lookup).value, 'short');
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    // Leftmost-longest, as before.
    const paths: VariableLookup = (name) => (name === 'V' ? 'ab-ab-abb' : undefined);
    assert.equal(expandWord('${V//a*b/X}', paths).value, 'X');
    assert.equal(expandWord('${V//a?/X}', paths).value, 'X-X-Xb');
    assert.equal(expandWord('${V/b*/X}', paths).value, 'aX');
    assert.equal(expandWord('${V%-*}', paths).value, 'ab-ab');
    assert.equal(expandWord('${V%%-*}', paths).value, 'ab');
    assert.equal(expandWord('${V#*-}', paths).value, 'ab-abb');
    assert.equal(expandWord('${V##*-}', paths).value, 'abb');
  });

  it('refuses a pattern substitution that would be more work than a second or so', () => {
    const value = 'a'.repeat(MAX_EXPANDED_WORD);
    const pattern = 'a'.repeat(Math.ceil(MAX_PATTERN_WORK / MAX_EXPANDED_WORD) + 1);
    const lookup: VariableLookup = (name) => (name === 'A' ? value : name === 'P' ? pattern : undefined);
    for (const word of ['${A//$P/x}', '${A%%$P}', '${A#$P}']) {
      assert.throws(() => expandWord(word, lookup), (err: unknown) => isKilnError(err, 'INVALID_INPUT') && /more than kiln does for one substitution/.test(err.message), word);
    }
  });
});
