import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ContentStore } from '../../src/content/store.js';
import { isKilnError } from '../../src/errors.js';
import { sha256 } from '../../src/oci/digest.js';
import { tempDir } from '../helpers/paths.js';

async function newStore(): Promise<ContentStore> {
  const store = new ContentStore(await tempDir());
  store.init();
  return store;
}

async function readAll(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe('content store', () => {
  it('commits a verified blob at blobs/sha256/<hex> and reads it back', async () => {
    const store = await newStore();
    const data = Buffer.from('hello kiln');
    const info = await store.put(data, { digest: sha256(data), size: data.length });
    assert.equal(info.digest, sha256(data));
    assert.deepEqual(await readdir(store.blobsDir), [info.digest.slice(7)]);
    assert.deepEqual(await readAll(await store.open(info.digest)), data);
    assert.equal(await store.verify(info.digest), true);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  it('refuses a digest mismatch and leaves nothing behind', async () => {
    const store = await newStore();
    const wrong = sha256('something else');
    await assert.rejects(store.put(Buffer.from('payload'), { digest: wrong }), (err) => isKilnError(err, 'DIGEST_MISMATCH'));
    assert.equal(await store.has(wrong), false);
    assert.deepEqual(await readdir(store.blobsDir), []);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  it('refuses a size mismatch', async () => {
    const store = await newStore();
    const data = Buffer.from('12345');
    await assert.rejects(store.put(data, { size: 4 }), (err) => isKilnError(err, 'DIGEST_MISMATCH'));
    assert.equal(await store.has(sha256(data)), false);
  });

  it('takes concurrent ingests of the same content', async () => {
    const store = await newStore();
    const data = Buffer.alloc(3 << 20, 7);
    async function* chunks() {
      for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
    }
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => store.ingest(chunks(), { digest: sha256(data) }, `same-${i}`)));
    assert.ok(results.every((r) => r.digest === sha256(data) && r.size === data.length));
    assert.equal((await readdir(store.blobsDir)).length, 1);
    assert.equal(await store.verify(sha256(data)), true);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  it('reports a missing blob as NOT_FOUND and a stray ingest file as a left-over', async () => {
    const store = await newStore();
    await assert.rejects(store.read(sha256('absent')), (err) => isKilnError(err, 'NOT_FOUND'));
    const writer = store.writer('abandoned');
    await writer.write(Buffer.from('half'));
    assert.equal((await store.strays()).length, 1);
    await writer.abort();
    assert.deepEqual(await store.strays(), []);
  });
});
