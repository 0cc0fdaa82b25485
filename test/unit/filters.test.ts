import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { booleanFilter, matchLabels, parseFilterFlags, parseTimestamp } from '../../src/engine/filters.js';
import { isKilnError } from '../../src/errors.js';

describe('filters', () => {
  it('parses repeated key=value flags and rejects unknown keys like Docker', () => {
    const filters = parseFilterFlags(['label=a', 'label=b=c', 'dangling=true'], ['label', 'dangling']);
    assert.deepEqual(filters.get('label'), ['a', 'b=c']);
    assert.equal(booleanFilter(filters, 'dangling'), true);
    assert.throws(() => parseFilterFlags(['foo=bar'], ['label']), (err) => isKilnError(err, 'INVALID_ARGUMENT') && err.message === "invalid filter 'foo'");
    assert.throws(() => parseFilterFlags(['nokey'], ['label']), (err) => isKilnError(err, 'INVALID_ARGUMENT'));
    assert.throws(() => booleanFilter(new Map([['dangling', ['maybe']]]), 'dangling'), (err) => isKilnError(err, 'INVALID_ARGUMENT'));
  });

  it('matches labels by key and by key=value, and negated', () => {
    const labels = { a: '1', b: '2' };
    assert.equal(matchLabels(labels, ['a']), true);
    assert.equal(matchLabels(labels, ['a=1', 'b=2']), true);
    assert.equal(matchLabels(labels, ['a=2']), false);
    assert.equal(matchLabels(labels, ['c'], true), true);
    assert.equal(matchLabels(labels, ['a'], true), false);
  });

  it('reads durations, Unix seconds and RFC 3339 times', () => {
    const now = Date.parse('2026-01-02T00:00:00Z');
    assert.equal(parseTimestamp('24h', now), Date.parse('2026-01-01T00:00:00Z'));
    assert.equal(parseTimestamp('1h30m', now), now - 90 * 60_000);
    assert.equal(parseTimestamp('1700000000', now), 1_700_000_000_000);
    assert.equal(parseTimestamp('2025-12-31T12:00:00Z', now), Date.parse('2025-12-31T12:00:00Z'));
    assert.throws(() => parseTimestamp('yesterday', now), (err) => isKilnError(err, 'INVALID_ARGUMENT'));
  });
});
