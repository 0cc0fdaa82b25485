import assert from 'node:assert/strict';
import { chmod, mkdir, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BuildContext, type DigestCache } from '../../src/builder/context.js';
import { MetaDb } from '../../src/meta/db.js';
import type { Digest } from '../../src/oci/digest.js';
import { tempDir } from '../helpers/paths.js';

/** A stat cache in memory that counts its queries and keeps what it was given. */
function memoryCache(): DigestCache & { rows: Map<string, { stat: string; digest: Digest }>; queries: number; hashed: number } {
  const cache = {
    rows: new Map<string, { stat: string; digest: Digest }>(),
    queries: 0,
    hashed: 0,
    under(dir: string) {
      cache.queries++;
      return new Map([...cache.rows].filter(([path]) => path.startsWith(dir)));
    },
    put(files: readonly { path: string; stat: string; digest: Digest }[]) {
      cache.hashed += files.length;
      for (const f of files) cache.rows.set(f.path, { stat: f.stat, digest: f.digest });
    },
  };
  return cache;
}

async function checksumOf(dir: string, cache: DigestCache, source = 'src'): Promise<Digest> {
  const context = await BuildContext.open(dir, cache);
  return context.checksum(context.resolve(source, 'test'));
}

describe('build context checksum and its stat cache', () => {
  it('hashes each file once: a second build reads the cache in one query and hashes nothing', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'src', 'sub'), { recursive: true });
    for (let i = 0; i < 50; i++) await writeFile(join(dir, 'src', 'sub', `f${i}`), `file ${i}\n`);
    const cache = memoryCache();
    const first = await checksumOf(dir, cache);
    assert.equal(cache.hashed, 50);
    assert.equal(cache.queries, 1);
    const second = await checksumOf(dir, cache);
    assert.equal(second, first);
    assert.equal(cache.hashed, 50, 'nothing hashed again');
    assert.equal(cache.queries, 2);
    // The cache is trusted while the stat is unchanged: a digest planted for an unchanged file is used.
    const planted = join(dir, 'src', 'sub', 'f0');
    const row = cache.rows.get(planted);
    assert.ok(row);
    cache.rows.set(planted, { ...row, digest: `sha256:${'0'.repeat(64)}` as Digest });
    assert.notEqual(await checksumOf(dir, cache), first);
  });

  it('changes with a file\'s content (same size and mtime), mode or name, and not with its mtime alone', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'src'), { recursive: true });
    const file = join(dir, 'src', 'a.txt');
    await writeFile(file, 'one\n');
    await utimes(file, 1000, 1000);
    const cache = memoryCache();
    const base = await checksumOf(dir, cache);
    await utimes(file, 2000, 2000);
    assert.equal(await checksumOf(dir, cache), base, 'mtime alone');
    await writeFile(file, 'two\n');
    await utimes(file, 1000, 1000);
    const content = await checksumOf(dir, cache);
    assert.notEqual(content, base, 'content');
    await chmod(file, 0o600);
    const mode = await checksumOf(dir, cache);
    assert.notEqual(mode, content, 'mode');
    await rename(file, join(dir, 'src', 'b.txt'));
    assert.notEqual(await checksumOf(dir, cache), mode, 'name');
    // Without the cache, the same digests.
    assert.equal(await checksumOf(dir, memoryCache()), await checksumOf(dir, cache));
  });

  it('the store\'s cache returns the files below a directory only, and keeps a batch in one put', async () => {
    const db = new MetaDb(join(await tempDir(), 'kiln.db'));
    try {
      const cache = db.fileDigests();
      const digest = (n: number): Digest => `sha256:${String(n).repeat(64)}` as Digest;
      cache.put([
        { path: '/ctx/a', stat: 's1', digest: digest(1) },
        { path: '/ctx/sub/b', stat: 's2', digest: digest(2) },
        { path: '/ctx0/c', stat: 's3', digest: digest(3) },
        { path: '/ctx-other/d', stat: 's4', digest: digest(4) },
        { path: '/ct', stat: 's5', digest: digest(5) },
      ]);
      cache.put([{ path: '/ctx/a', stat: 's6', digest: digest(6) }]);
      assert.deepEqual([...cache.under('/ctx')].sort(), [['/ctx/a', { stat: 's6', digest: digest(6) }], ['/ctx/sub/b', { stat: 's2', digest: digest(2) }]]);
      assert.deepEqual([...cache.under('/ctx/sub/').keys()], ['/ctx/sub/b']);
      assert.equal(cache.under('/').size, 5);
    } finally {
      db.close();
    }
  });
});
