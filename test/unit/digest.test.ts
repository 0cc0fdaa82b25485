import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { sha256, sha256Stream, shortId } from '../../src/oci/digest.js';
import { sys } from '../../src/sys.js';

/** node:crypto's digest of the parts one after another: what both paths of sha256 must give. */
function reference(parts: readonly (string | Uint8Array)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return `sha256:${hash.digest('hex')}`;
}

const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255));
const CASES: (string | Uint8Array)[][] = [
  [],
  [''],
  ['abc'],
  ['a', 'bc'],
  ['é✓\u{1F600}'.repeat(3000)], // multibyte, past the addon's 4096-byte stack buffer
  ['x'.repeat(4095)],
  ['x'.repeat(4096)],
  [bytes],
  [bytes.subarray(12_345, 200_001), 'tail', new Uint8Array(bytes.buffer, bytes.byteOffset + 7, 9)],
  Array.from({ length: 20_000 }, (_, i) => `entry ${i}\0file\n`),
];

describe('sha256', () => {
  it('is node:crypto\'s digest for strings (UTF-8), byte views at an offset and lists of them', () => {
    for (const parts of CASES) {
      assert.equal(sha256(parts), reference(parts));
      if (parts.length === 1) assert.equal(sha256(parts[0] as string | Uint8Array), reference(parts));
    }
  });

  it('piece by piece: the same digest, and a peek between pieces that leaves the hash going on', () => {
    for (const parts of CASES) {
      const hash = sha256Stream();
      const seen: (string | Uint8Array)[] = [];
      for (const part of parts.slice(0, 50)) {
        hash.update(part);
        seen.push(part);
        assert.equal(hash.peek(), reference(seen));
      }
      assert.equal(hash.digest(), reference(seen));
    }
  });

  it('native/sys hashes what node:crypto does, and refuses what is neither a string nor bytes', { skip: !sys()?.sha256 && 'native/sys is not built (or built before sha256)' }, () => {
    const native = sys()?.sha256 as (data: unknown) => string;
    for (const parts of CASES) assert.equal(`sha256:${native(parts)}`, reference(parts));
    for (const bad of [1, undefined, [1], [new Uint16Array(2)], { length: 1 }]) assert.throws(() => native(bad), /sha256 hashes a string, a Uint8Array or an array of them/);
    const add = sys()?.sha256Add as (state: unknown, data: unknown) => void;
    assert.throws(() => add(Buffer.alloc(12), 'x'), /not a sha256 state/);
    assert.throws(() => add(sys()?.sha256Start?.(), 7), /sha256 hashes a string/);
  });
});

describe('shortId', () => {
  it('is the first 12 hex digits of a digest, without its algorithm, and of a bare ID (a container\'s)', () => {
    const hex = 'ab'.repeat(32);
    assert.equal(shortId(`sha256:${hex}`), hex.slice(0, 12));
    assert.equal(shortId(hex), hex.slice(0, 12));
    assert.equal(shortId('sha512:0123'), '0123');
    assert.equal(shortId(''), '');
  });
});
