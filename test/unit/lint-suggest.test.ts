import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { distanceWithin, suggester } from '../../src/analyze/lint/suggest.js';
import { levenshtein } from '../../src/dockerfile/instructions.js';

describe("UndefinedVar's suggestion, bounded", () => {
  it('gives the edit distance when it is within the bound and bound + 1 otherwise (random words against the full distance)', () => {
    let state = 20261204;
    const next = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % n;
    };
    const word = (): string => Array.from({ length: next(9) }, () => 'ab_C'[next(4)]).join('');
    for (let i = 0; i < 5000; i++) {
      const a = word();
      const b = word();
      const bound = next(4);
      assert.equal(distanceWithin(a, b, bound), Math.min(levenshtein(a, b), bound + 1), `${JSON.stringify(a)} ${JSON.stringify(b)} within ${bound}`);
    }
  });

  it("suggests as BuildKit does: the first name at the smallest distance under 3, case-sensitively, none for the name itself", () => {
    const suggest = suggester();
    assert.equal(suggest('PAHT', ['HOME', 'PATH']), 'PATH');
    assert.equal(suggest('FOO', ['FOO_1', 'FOO_2']), 'FOO_1');
    assert.equal(suggest('FOO', ['FOOBA', 'FOOB']), 'FOOB');
    assert.equal(suggest('ABC', ['XYZ', 'ABCDEF']), '');
    assert.equal(suggest('foo', ['FOO']), '');
    assert.equal(suggest('Foo', ['FOO']), 'FOO');
    assert.equal(suggest('FOO', ['FO', 'FOO']), '');
    assert.equal(suggest('X', []), '');
  });

  it('stops suggesting once the work a lint may spend is spent', () => {
    // One name read and one distance of 7-letter words: 1 + 7 × 7 of the 60.
    const suggest = suggester(60);
    assert.equal(suggest('NAME_0x', ['NAME_0']), 'NAME_0');
    assert.equal(suggest('NAME_0x', ['NAME_0']), '');
  });
});
