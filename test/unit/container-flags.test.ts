import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCpus, parseMemoryBytes } from '../../src/cli/container-flags.js';

describe('container flags: sizes and CPUs as the docker CLI reads them', () => {
  it('--memory in binary units, with or without b, i and a space (go-units\' RAMInBytes)', () => {
    for (const [text, bytes] of [
      ['100', 100],
      ['512m', 512 * 1024 ** 2],
      ['64MiB', 64 * 1024 ** 2],
      ['1.5g', 1.5 * 1024 ** 3],
      ['2 kb', 2048],
      ['1T', 1024 ** 4],
    ] as const) {
      assert.equal(parseMemoryBytes(text, '-m, --memory'), bytes, text);
    }
    for (const text of ['', 'm', '-1', '1x', '1.5.5q']) assert.throws(() => parseMemoryBytes(text, '-m, --memory'), /invalid size/, text);
  });

  it('--cpus as billionths of a CPU, exactly, and refused when finer', () => {
    assert.deepEqual(['1', '1.5', '.5', '0.000000001', '2.'].map(parseCpus), [1e9, 1.5e9, 5e8, 1, 2e9]);
    assert.throws(() => parseCpus('0.0000000001'), /value is too precise/);
    assert.throws(() => parseCpus('-1'), /failed to parse -1 as a rational number/);
  });
});
