import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImageSource } from '../../src/engine/analyze.js';
import { isKilnError } from '../../src/errors.js';

describe('kiln analyze: sources as skopeo names its transports', () => {
  it('reads archives, layouts and registry references; anything else is a store image', () => {
    assert.deepEqual(parseImageSource('docker-archive:/tmp/a.tar'), { kind: 'docker-archive', path: '/tmp/a.tar' });
    assert.deepEqual(parseImageSource('docker-archive:a.tar:app:1'), { kind: 'docker-archive', path: 'a.tar', ref: 'app:1' });
    assert.deepEqual(parseImageSource('docker-archive:a.tar:@1'), { kind: 'docker-archive', path: 'a.tar', ref: '@1' });
    assert.deepEqual(parseImageSource('oci-archive:/x/img.tar'), { kind: 'oci-archive', path: '/x/img.tar' });
    assert.deepEqual(parseImageSource('oci:layout'), { kind: 'oci', path: 'layout' });
    assert.deepEqual(parseImageSource('oci:layout:v1.2'), { kind: 'oci', path: 'layout', ref: 'v1.2' });
    assert.deepEqual(parseImageSource('oci:layout:'), { kind: 'oci', path: 'layout' });
    assert.deepEqual(parseImageSource('docker://localhost:5000/app:1'), { kind: 'docker', ref: 'localhost:5000/app:1' });
    for (const name of ['busybox', 'busybox:latest', 'localhost:5000/app:1', 'sha256:0123', '0123abcd', 'docker.io/library/oci:1']) {
      assert.deepEqual(parseImageSource(name), { kind: 'store', name });
    }
  });

  it('refuses what it cannot read, saying what it reads', () => {
    assert.throws(() => parseImageSource('docker:busybox'), (err) => isKilnError(err, 'INVALID_ARGUMENT') && /docker:\/\/NAME/.test(err.message));
    assert.throws(() => parseImageSource('oci-archive:'), (err) => isKilnError(err, 'INVALID_ARGUMENT') && /give a path, as oci-archive:PATH\[:REF\]/.test(err.message));
    assert.throws(
      () => parseImageSource('docker-daemon:busybox:latest'),
      (err) => isKilnError(err, 'UNSUPPORTED') && err.message === 'kiln analyze does not read docker-daemon: sources; it reads a store image (NAME or ID), docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF], docker://REF',
    );
  });
});
