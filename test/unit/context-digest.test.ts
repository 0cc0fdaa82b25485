import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BuildContext, type DigestCache } from '../../src/builder/context.js';
import { sys } from '../../src/sys.js';
import { MetaDb } from '../../src/meta/db.js';
import { isKilnError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import { tempDir } from '../helpers/paths.js';

/** A stat cache in memory that counts its queries and keeps what it was given. */
function memoryCache(): DigestCache & { rows: Map<string, { stat: string; digest: Digest }>; checksums: Map<string, { listing: Digest; checksum: Digest }>; queries: number; hashed: number } {
  const cache = {
    rows: new Map<string, { stat: string; digest: Digest }>(),
    checksums: new Map<string, { listing: Digest; checksum: Digest }>(),
    queries: 0,
    hashed: 0,
    checksumOf(sources: string) {
      return cache.checksums.get(sources);
    },
    putChecksum(sources: string, listing: Digest, checksum: Digest) {
      cache.checksums.set(sources, { listing, checksum });
    },
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

async function checksumOf(dir: string, cache: DigestCache, source: string | readonly string[] = 'src', native = true): Promise<Digest> {
  const context = await BuildContext.open(dir, cache, undefined, native);
  return context.checksum((typeof source === 'string' ? [source] : source).flatMap((s) => context.resolve(s, 'test')));
}

/** The context walks to test: native/sys's whole-tree walk when the addon has it, and the JavaScript one. */
const walks = [...(sys()?.walk ? [{ name: 'native walk', native: true }] : []), { name: 'JS walk', native: false }];

describe('build context checksum and its stat cache', () => {
  for (const { name, native } of walks) {
    it(`hashes each file once: a second build reads the cache in one query and hashes nothing (${name})`, async () => {
      const dir = await tempDir();
      await mkdir(join(dir, 'src', 'sub'), { recursive: true });
      for (let i = 0; i < 50; i++) await writeFile(join(dir, 'src', 'sub', `f${i}`), `file ${i}\n`);
      const cache = memoryCache();
      const first = await checksumOf(dir, cache, 'src', native);
      assert.equal(cache.hashed, 50);
      assert.equal(cache.queries, 1);
      const second = await checksumOf(dir, cache, 'src', native);
      assert.equal(second, first);
      assert.equal(cache.hashed, 50, 'nothing hashed again');
      // The native walk's listing is unchanged: its checksum is reused without a query for the files.
      assert.equal(cache.queries, native ? 1 : 2);
      assert.equal(cache.checksums.size, native ? 1 : 0);
      // The cache is trusted while the stat is unchanged: a digest planted for an unchanged file is used.
      const planted = join(dir, 'src', 'sub', 'f0');
      const row = cache.rows.get(planted);
      assert.ok(row);
      cache.rows.set(planted, { ...row, digest: `sha256:${'0'.repeat(64)}` as Digest });
      cache.checksums.clear();
      assert.notEqual(await checksumOf(dir, cache, 'src', native), first);
    });

    it(`changes with a file's content (same size and mtime), mode or name, and not with its mtime alone (${name})`, async () => {
      const dir = await tempDir();
      await mkdir(join(dir, 'src'), { recursive: true });
      const file = join(dir, 'src', 'a.txt');
      await writeFile(file, 'one\n');
      await utimes(file, 1000, 1000);
      const cache = memoryCache();
      const base = await checksumOf(dir, cache, 'src', native);
      await utimes(file, 2000, 2000);
      assert.equal(await checksumOf(dir, cache, 'src', native), base, 'mtime alone');
      await writeFile(file, 'two\n');
      await utimes(file, 1000, 1000);
      const content = await checksumOf(dir, cache, 'src', native);
      assert.notEqual(content, base, 'content');
      await chmod(file, 0o600);
      const mode = await checksumOf(dir, cache, 'src', native);
      assert.notEqual(mode, content, 'mode');
      await rename(file, join(dir, 'src', 'b.txt'));
      assert.notEqual(await checksumOf(dir, cache, 'src', native), mode, 'name');
      // Without the cache, the same digests.
      assert.equal(await checksumOf(dir, memoryCache(), 'src', native), await checksumOf(dir, cache, 'src', native));
    });
  }

  it('both walks give the same context and checksums: entries, their order and their fields', { skip: !sys()?.walk && 'native/sys is not built (or built before walk)' }, async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'src', 'd', 'empty'), { recursive: true });
    // Directories beside d: the native walk hands the later ones to a second thread.
    await mkdir(join(dir, 'src', 'e', 'x'), { recursive: true });
    await mkdir(join(dir, 'src', 'g', 'y', 'z'), { recursive: true });
    await writeFile(join(dir, 'src', 'g', 'y', 'file'), 'g');
    await writeFile(join(dir, 'src', 'e', 'x', 'file'), 'e');
    await writeFile(join(dir, 'src', 'f'), 'x'.repeat(5000));
    await link(join(dir, 'src', 'f'), join(dir, 'src', 'd', 'hard'));
    await symlink('../f', join(dir, 'src', 'd', 'ln'));
    await symlink('src/f', join(dir, 'to-f'));
    // JavaScript orders by UTF-16 code units: U+1F600 (a surrogate pair) before U+E000 and U+FFFD, unlike their UTF-8 bytes.
    for (const name of ['\u{1F600}', '\uE000', '\uFFFD', 'é ü', 'a', 'a b', 'a-b', 'aa', 'B']) await writeFile(join(dir, 'src', name), name);
    await chmod(join(dir, 'src', 'a'), 0o4751);
    await utimes(join(dir, 'src', 'd'), 1234567890.123456, -1.5);
    execFileSync('mkfifo', [join(dir, 'src', 'fifo')]);
    const fast = await BuildContext.open(dir, memoryCache());
    const portable = await BuildContext.open(dir, memoryCache(), undefined, false);
    for (const source of ['.', 'src', 'src/d', 'src/d/empty', 'src/f', 'src/g', 'src/g/y', 'src/g/y/file', 'src/e/x/file', 'src/\u{1F600}', 'to-f']) {
      const [fromFast] = fast.resolve(source, 'test');
      const [fromPortable] = portable.resolve(source, 'test');
      assert.ok(fromFast && fromPortable);
      assert.deepEqual(fast.tree(fromFast), portable.tree(fromPortable), source);
    }
    const [srcTree] = portable.resolve('src', 'test');
    assert.ok(srcTree);
    const names = portable.tree(srcTree).map((e) => e.path.slice(4)).filter((p) => !p.includes('/') && p !== '');
    for (const missing of ['src/nothing', 'src/d/nothing', 'src/g/y/file/x', 'src/dd', 'src/e/x/fil']) {
      assert.throws(() => fast.resolve(missing, 'test'), (err) => isKilnError(err, 'NOT_FOUND'), missing);
    }
    assert.deepEqual(names, [...names].sort(), 'sorted as JS strings');
    assert.ok(names.indexOf('\u{1F600}') < names.indexOf('\uE000'));
    for (const sources of [['.'], ['src'], ['src/d', 'to-f'], ['to-f', 'src/d'], ['src/*'], ['src/g/y'], ['src/e/x/file', 'src/g']]) {
      assert.equal(await checksumOf(dir, memoryCache(), sources), await checksumOf(dir, memoryCache(), sources, false), sources.join(' '));
    }
  });

  it('reuses a checksum only for the same sources at the same listing: any change below them takes it again', { skip: !sys()?.walk && 'native/sys is not built (or built before walk)' }, async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'src', 'deep', 'er'), { recursive: true });
    await mkdir(join(dir, 'other'));
    const deep = join(dir, 'src', 'deep', 'er', 'file');
    await writeFile(deep, 'one\n');
    await writeFile(join(dir, 'src', 'top'), 'top\n');
    await writeFile(join(dir, 'other', 'x'), 'x\n');
    const cache = memoryCache();
    /** The checksum, whether the cached one was reused (no query for the files), and that it is the one a fresh cache gives. */
    const take = async (sources: string | readonly string[] = 'src'): Promise<{ sum: Digest; reused: boolean }> => {
      const before = cache.queries;
      const sum = await checksumOf(dir, cache, sources);
      assert.equal(sum, await checksumOf(dir, memoryCache(), sources, false), 'the JS walk without a cache agrees');
      return { sum, reused: cache.queries === before };
    };
    const first = await take();
    assert.equal(first.reused, false);
    assert.deepEqual(await take(), { sum: first.sum, reused: true });
    // A change outside the sources leaves their checksum alone.
    await writeFile(join(dir, 'other', 'y'), 'y\n');
    assert.deepEqual(await take(), { sum: first.sum, reused: true });
    // Content of the same size with its mtime put back: the ctime moved, so the file is read again.
    const { mtime } = await stat(deep);
    await writeFile(deep, 'two\n');
    await utimes(deep, mtime, mtime);
    const content = await take();
    assert.equal(content.reused, false);
    assert.notEqual(content.sum, first.sum);
    await writeFile(join(dir, 'src', 'deep', 'added'), '');
    const added = await take();
    assert.equal(added.reused, false);
    assert.notEqual(added.sum, content.sum);
    await rm(join(dir, 'src', 'deep', 'added'));
    const removed = await take();
    assert.equal(removed.reused, false);
    assert.equal(removed.sum, content.sum);
    await chmod(join(dir, 'src', 'deep', 'er'), 0o700);
    const mode = await take();
    assert.equal(mode.reused, false);
    assert.notEqual(mode.sum, content.sum);
    // The last file of the last directory (one a second thread of the walk lists): the span reaches it.
    await mkdir(join(dir, 'src', 'zz', 'z'), { recursive: true });
    const last = join(dir, 'src', 'zz', 'z', 'last');
    await writeFile(last, 'one\n');
    const withLast = await take();
    assert.equal(withLast.reused, false);
    assert.deepEqual(await take(), { sum: withLast.sum, reused: true });
    await writeFile(last, 'two\n');
    const lastChanged = await take();
    assert.equal(lastChanged.reused, false);
    assert.notEqual(lastChanged.sum, withLast.sum);
    await rm(join(dir, 'src', 'zz'), { recursive: true });
    assert.equal((await take()).sum, mode.sum);
    // Other sources are remembered apart: each is its own row, and the order of sources counts.
    const both = await take(['src/top', 'other']);
    const swapped = await take(['other', 'src/top']);
    assert.notEqual(both.sum, swapped.sum);
    assert.deepEqual(await take(['src/top', 'other']), { sum: both.sum, reused: true });
    assert.deepEqual(await take(), { sum: mode.sum, reused: true });
    // A .dockerignore walks in JavaScript (it decides per entry) and leaves the ignored file out.
    await writeFile(join(dir, '.dockerignore'), 'src/top\n');
    const ignoring = await take();
    assert.equal(ignoring.reused, false);
    assert.notEqual(ignoring.sum, mode.sum);
    await rm(join(dir, '.dockerignore'));
    assert.deepEqual(await take(), { sum: mode.sum, reused: true });
  });

  it('a name that is not UTF-8 makes the native walk give way to the JS one (which fails on it as it did)', { skip: !sys()?.walk && 'native/sys is not built (or built before walk)' }, async () => {
    const dir = await tempDir();
    // In the last of several directories: the one a second thread of the walk takes.
    for (const sub of ['a', 'b', 'c']) await mkdir(join(dir, sub));
    await writeFile(Buffer.from(`${dir}/c/bad-\xff`, 'latin1'), 'bad\n');
    assert.equal(await sys()?.walk?.(dir), undefined);
    assert.equal(await sys()?.walk?.(join(dir, 'a')) instanceof Buffer, true);
    const failure = async (native: boolean): Promise<string> => BuildContext.open(dir, memoryCache(), undefined, native).then(() => 'opened', (err: NodeJS.ErrnoException) => `${err.code} ${err.message}`);
    assert.equal(await failure(true), await failure(false));
  });

  it('the native walk fails as the JS one does on what it cannot read', { skip: !sys()?.walk && 'native/sys is not built (or built before walk)' }, async () => {
    await assert.rejects(sys()?.walk?.(join(await tempDir(), 'missing')) ?? Promise.reject(new Error('no walk')), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  });

  it('the store\'s cache returns the files below a directory only, keeps a batch in one put, and a checksum apart', async () => {
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
      assert.equal(cache.checksumOf('/ctx\0src'), undefined);
      cache.putChecksum('/ctx\0src', digest(7), digest(8));
      cache.putChecksum('/ctx\0src', digest(9), digest(1));
      assert.deepEqual(cache.checksumOf('/ctx\0src'), { listing: digest(9), checksum: digest(1) });
      assert.equal(cache.checksumOf('/ctx\0other'), undefined);
      assert.equal(cache.under('/').size, 5, 'a checksum is no file below any directory');
    } finally {
      db.close();
    }
  });
});
