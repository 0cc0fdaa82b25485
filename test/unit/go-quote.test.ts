import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goQuote, goQuotedList } from '../../src/builder/history.js';

describe('goQuote (Go\'s strconv.Quote, as BuildKit\'s history lines use it)', () => {
  it('keeps printable characters and escapes the rest as Go does', () => {
    assert.equal(goQuote('echo "hi" \\ ok'), '"echo \\"hi\\" \\\\ ok"');
    assert.equal(goQuote('a\tb\nc\x07\x7f\x01'), '"a\\tb\\nc\\a\\x7f\\x01"');
    // Past ASCII: letters, marks, symbols stay; a format character and a private-use one are escaped.
    assert.equal(goQuote('caf\u00e9 e\u0301 \u{1F600} \u20ac'), '"caf\u00e9 e\u0301 \u{1F600} \u20ac"');
    assert.equal(goQuote('a\u200bb\u00a0c'), '"a\\u200bb\\u00a0c"');
    assert.equal(goQuote('\u{10FFFD}'), '"\\U0010fffd"');
    assert.equal(goQuotedList(['sh', '-c', 'echo \u00e9']), '["sh" "-c" "echo \u00e9"]');
  });
});
