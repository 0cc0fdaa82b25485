import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCacheSpec } from '../../src/engine/build-cache.js';
import { type ErrorCode, isKilnError } from '../../src/errors.js';

function refused(flag: '--cache-from' | '--cache-to', value: string, code: ErrorCode, message: RegExp): void {
  assert.throws(() => parseCacheSpec(flag, value), (err: unknown) => isKilnError(err, code) && message.test(err.message));
}

describe('--cache-from/--cache-to values, parsed as buildx parses them', () => {
  it('a bare reference: an image of the store or registry to read; a registry cache (mode=min) to write', () => {
    assert.deepEqual(parseCacheSpec('--cache-from', 'registry.example/app:cache'), { type: 'image', ref: 'registry.example/app:cache' });
    assert.deepEqual(parseCacheSpec('--cache-to', 'registry.example/app:cache'), { type: 'registry', ref: 'registry.example/app:cache', mode: 'min', ignoreError: false });
  });

  it('type=registry and type=local with their attributes; no type is registry; BuildKit\'s compression attributes are accepted', () => {
    assert.deepEqual(parseCacheSpec('--cache-to', 'type=registry,ref=r.example/c:main,mode=max,ignore-error=true,compression=zstd,oci-mediatypes=true'), { type: 'registry', ref: 'r.example/c:main', mode: 'max', ignoreError: true });
    assert.deepEqual(parseCacheSpec('--cache-from', 'ref=r.example/c:main'), { type: 'registry', ref: 'r.example/c:main', mode: 'min', ignoreError: false });
    assert.deepEqual(parseCacheSpec('--cache-to', 'type=local,dest=/tmp/c,mode=max'), { type: 'local', dir: '/tmp/c', tag: 'latest', mode: 'max', ignoreError: false });
    assert.deepEqual(parseCacheSpec('--cache-from', 'type=local,src=/tmp/c,tag=main'), { type: 'local', dir: '/tmp/c', tag: 'main', mode: 'min', ignoreError: false });
    assert.deepEqual(parseCacheSpec('--cache-to', 'type=inline'), { type: 'inline' });
  });

  it('refuses what would silently do nothing: a missing ref/src/dest, a bad mode, an unknown attribute, a field without =, a digest to write to', () => {
    refused('--cache-to', 'type=registry,mode=max', 'INVALID_ARGUMENT', /type=registry needs ref=/);
    refused('--cache-from', 'type=local,dest=/tmp/c', 'INVALID_ARGUMENT', /type=local takes no dest/);
    refused('--cache-to', 'type=local,src=/tmp/c', 'INVALID_ARGUMENT', /type=local takes no src/);
    refused('--cache-to', 'type=local,dest=/tmp/c,mode=all', 'INVALID_ARGUMENT', /mode must be min or max, not "all"/);
    refused('--cache-to', 'type=local,dest=/tmp/c,mdoe=max', 'INVALID_ARGUMENT', /type=local takes no mdoe/);
    refused('--cache-to', 'type=local,dest', 'INVALID_ARGUMENT', /"dest" is not key=value/);
    refused('--cache-to', 'type=local,dest=/tmp/c,ignore-error=yes', 'INVALID_ARGUMENT', /ignore-error must be true or false/);
    refused('--cache-to', `ref=r.example/c@sha256:${'a'.repeat(64)}`, 'INVALID_ARGUMENT', /under a tag, not a digest/);
    refused('--cache-from', '', 'INVALID_ARGUMENT', /empty value/);
  });

  it('caches kiln cannot reach (gha, s3, azblob) are refused with what to use instead', () => {
    for (const type of ['gha', 's3', 'azblob']) refused('--cache-to', `type=${type}`, 'UNSUPPORTED', new RegExp(`type=registry\\) or a directory \\(type=local\\), not type=${type}`));
  });
});
