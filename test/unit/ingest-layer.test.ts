import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { KilnError, isKilnError } from '../../src/errors.js';
import { scanLayer } from '../../src/layer/scan.js';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type TarInput, encodeLayer, writeTar } from '../../src/layer/tar/writer.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { LocalStore } from '../../src/transport/store.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';

/** `bytes` in chunks of 64 KiB to their end, or until `failure.error` is thrown after `failure.after` bytes. */
async function* source(bytes: Buffer, failure?: { after: number; error: Error }): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += 64 << 10) {
    if (failure && at >= failure.after) throw failure.error;
    yield bytes.subarray(at, at + (64 << 10));
  }
}

/** Ingests `chunks` as the busybox layer (uncompressed, so digest and diffID are the file's hash) and returns the error. */
async function ingestError(chunks: AsyncIterable<Uint8Array>, layer: Buffer): Promise<unknown> {
  const root = await tempDir('kiln-ingest-');
  const store = await LocalStore.open(root);
  const digest = sha256(layer);
  const failure = await store
    .withLease((lease) => store.ingestLayer(lease, chunks, { mediaType: MediaType.ociLayer, digest, size: layer.length, diffId: digest }, 'layer'))
    .then(() => undefined, (err: unknown) => err);
  assert.deepEqual([await readdir(join(root, 'ingest')), await readdir(join(root, 'blobs', 'sha256'))], [[], []], 'nothing is left behind or made visible');
  store.close();
  return failure;
}

describe('ingestLayer names the real cause of a failed layer', { skip: await fixturesUnavailable('busybox-rootfs.tar') }, () => {
  it('a source that fails (a network fault) fails with its own error, not as a digest mismatch', async () => {
    const layer = await readFile(await fixture('busybox-rootfs.tar'));
    const dropped = new KilnError('NETWORK', 'the registry closed the connection while sending blob sha256:…');
    assert.equal(await ingestError(source(layer, { after: layer.length >> 1, error: dropped }), layer), dropped);
    const early = new KilnError('NETWORK', 'timeout: the registry sent nothing for 60 s');
    assert.equal(await ingestError(source(layer, { after: 0, error: early }), layer), early, 'before any byte');
  });

  it('bytes that came whole but are not the blob are a digest mismatch, whether they are a valid tar or not', async () => {
    const layer = await readFile(await fixture('busybox-rootfs.tar'));
    const cut = await ingestError(source(layer.subarray(0, layer.length >> 1)), layer);
    assert.ok(isKilnError(cut, 'DIGEST_MISMATCH'), String(cut));
    assert.match(cut.message, /^layer: the blob's bytes do not match sha256:[a-f0-9]{64} \(they hash to sha256:[a-f0-9]{64}\)$/);
    const flipped = Buffer.from(layer);
    flipped[flipped.length - 1] = 0x41;
    assert.ok(isKilnError(await ingestError(source(flipped), layer), 'DIGEST_MISMATCH'));
  });
});

describe('putEncodedLayer stores a layer kiln encoded as a scan of it would record it', () => {
  const header = (path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarHeader => ({ path, type, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, ...extra });
  const entries = (): TarInput[] => [
    { header: header('app/', 'directory') },
    { header: header('app/data.bin', 'file', { size: 5 }), body: Buffer.from('hello') },
    { header: header('app/link', 'symlink', { linkname: 'dätä.bin' }) },
    { header: header('app/again', 'hardlink', { linkname: 'app/data.bin' }) },
    { header: header(`app/${'long-name/'.repeat(20)}file`, 'file', { size: 3 }), body: Buffer.from('abc') },
    { header: header('app/pipe', 'fifo') },
  ];

  it('with the digest as its diffID and the diffSize the scan counts', async () => {
    const bytes = await buffer(writeTar(entries()));
    const digest = sha256(bytes);
    const root = await tempDir('kiln-encoded-');
    const store = await LocalStore.open(root);
    try {
      const encoded = encodeLayer(entries());
      const row = await store.withLease((lease) => store.putEncodedLayer(lease, encoded.tar, () => ({ mediaType: MediaType.ociLayer, diffSize: encoded.diffSize() }), { digest, size: bytes.length }));
      const scanned = await scanLayer(source(bytes), () => Promise.resolve(), 'layer');
      assert.deepEqual({ digest: row.digest, size: row.size, diffId: row.diffId, diffSize: row.diffSize }, { digest, size: bytes.length, diffId: scanned.diffId, diffSize: scanned.diffSize });
      assert.equal(row.diffSize, 5 + 3 + Buffer.byteLength('dätä.bin'), 'files once, symlinks by their target, nothing for the rest');
      assert.deepEqual(await readFile(join(root, 'blobs', 'sha256', digest.slice('sha256:'.length))), bytes);
    } finally {
      store.close();
    }
  });

  it('refuses bytes that are not the digest it was told, leaving nothing behind', async () => {
    const root = await tempDir('kiln-encoded-');
    const store = await LocalStore.open(root);
    try {
      const encoded = encodeLayer(entries());
      const wrong = sha256(Buffer.from('not this layer'));
      await assert.rejects(
        store.withLease((lease) => store.putEncodedLayer(lease, encoded.tar, () => ({ mediaType: MediaType.ociLayer, diffSize: encoded.diffSize() }), { digest: wrong })),
        (err: unknown) => isKilnError(err, 'DIGEST_MISMATCH'),
      );
      assert.deepEqual([await readdir(join(root, 'ingest')), await readdir(join(root, 'blobs', 'sha256'))], [[], []]);
    } finally {
      store.close();
    }
  });
});
