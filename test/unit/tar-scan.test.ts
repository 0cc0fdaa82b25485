import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { readTar } from '../../src/layer/tar/reader.js';
import { scanTarHeaders } from '../../src/layer/tar/scan.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { tempDir } from '../helpers/paths.js';
import { reseal } from '../helpers/tar.js';

/**
 * The headers-only scan decodes plain headers itself and hands the rest to the full reader's decoder: on
 * every archive, it must see what the full reader sees (the same entries, fields and body offsets) and
 * refuse what it refuses, with the same words.
 */
type Seen = readonly [string, string, string, number, number, number, number, number];

const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } as const;
const file = (path: string, size: number, extra: Partial<TarHeader> = {}): TarInput => ({ header: { ...base, path, type: 'file', size, ...extra }, body: Buffer.alloc(size, 0x61) });
const entry = (path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarInput => ({ header: { ...base, path, type, ...extra } });
const write = (entries: readonly TarInput[]): Promise<Buffer> => buffer(writeTar(entries));

async function byReader(bytes: Buffer): Promise<Seen[] | string> {
  const seen: Seen[] = [];
  try {
    for await (const { header, offset } of readTar([bytes])) seen.push([header.path, header.type, header.linkname ?? '', header.size, header.mode, header.uid, header.gid, offset]);
  } catch (err) {
    return (err as Error).message;
  }
  return seen;
}

async function byScan(bytes: Buffer, dir: string): Promise<Seen[] | string> {
  // Behind a few bytes of something else, as a layer lies inside an archive.
  const path = join(dir, 'archive');
  await writeFile(path, Buffer.concat([Buffer.from('lead'), bytes]));
  const handle = await open(path, 'r');
  const seen: Seen[] = [];
  try {
    await scanTarHeaders(handle.fd, 4, 4 + bytes.length, (...fields) => seen.push(fields));
  } catch (err) {
    return (err as Error).message;
  } finally {
    await handle.close();
  }
  return seen;
}

async function same(bytes: Buffer): Promise<Seen[] | string> {
  const expected = await byReader(bytes);
  assert.deepEqual(await byScan(bytes, await tempDir()), expected);
  return expected;
}

describe('tar scan: headers as the full reader reads them', () => {
  it('every entry kind, long and non-ASCII names, PAX numbers, bodies across its reads, big bodies skipped', async () => {
    const many = Array.from({ length: 600 }, (_, i) => file(`many/f${i}`, (i * 37) % 1500));
    const bytes = await write([
      entry('dir/', 'directory', { mode: 0o755 }),
      file('dir/file', 10),
      file('dir/empty', 0, { mode: 0o4755, uid: 1000, gid: 1000 }),
      entry('dir/link', 'symlink', { linkname: '../target' }),
      entry('dir/hard', 'hardlink', { linkname: 'dir/file' }),
      entry('dir/fifo', 'fifo'),
      entry('dev/null', 'char', { devmajor: 1, devminor: 3 }),
      file(`long/${'segment/'.repeat(20)}name`, 5),
      entry('long-link', 'symlink', { linkname: 'x'.repeat(150) }),
      file('ünïcode/名前', 3),
      file('big-ids', 1, { uid: 9_000_000, gid: 9_000_001 }),
      file('xattrs', 2, { xattrs: new Map([['user.a', Buffer.from('b')]]) }),
      file('big', 700_000),
      ...many,
      file('after-big', 1),
    ]);
    const seen = await same(bytes);
    assert.equal(typeof seen === 'string' ? 0 : seen.length, 614);
  });

  it('headers from other writers: base-256, a signed checksum, latin1, v7, old GNU, contiguous files', async () => {
    const base256 = await write([file('f', 3)]);
    Buffer.from([0x80, 0, 0, 0, 0, 0x2d, 0xc6, 0xc0]).copy(base256, 108);
    assert.notEqual(typeof (await same(reseal(base256))), 'string');
    const signed = await write([file('cafe', 1)]);
    signed[3] = 0xe9;
    assert.deepEqual(((await same(reseal(signed, 0, true))) as Seen[])[0]?.[0], 'café');
    const v7 = await write([entry('old/', 'file')]);
    v7.fill(0, 156, 157);
    v7.fill(0, 257, 265);
    assert.deepEqual(((await same(reseal(v7))) as Seen[])[0]?.slice(0, 2), ['old/', 'directory']);
    const gnu = await write([file('name', 1, { uname: 'root' })]);
    gnu.write('ustar  \0', 257, 'latin1');
    gnu.write('14515614177\0', 345, 'latin1');
    assert.deepEqual(((await same(reseal(gnu))) as Seen[])[0]?.[0], 'name');
    const contiguous = await write([file('c', 4)]);
    contiguous.write('7', 156, 'latin1');
    assert.deepEqual(((await same(reseal(contiguous))) as Seen[])[0]?.[1], 'file');
    const unterminated = await write([file('a', 1), file('b', 1)]);
    assert.equal(((await same(unterminated.subarray(0, 2048))) as Seen[]).length, 2);
  });

  it('refuses what the full reader refuses, in its words', async () => {
    const bytes = await write([file('a/first', 1000), file('b/second', 1)]);
    assert.match(String(await same(bytes.subarray(0, 700))), /^tar: unexpected end of data in entry "a\/first"/);
    assert.match(String(await same(bytes.subarray(0, 1536 + 100))), /^tar: unexpected end of data in the header after entry "a\/first"/);
    const pax = await write([file('p'.repeat(300), 1)]);
    assert.match(String(await same(pax.subarray(0, 600))), /in a PAX header at the start/);
    const corrupt = Buffer.from(bytes);
    corrupt[1536 + 10] = 0x7e;
    assert.match(String(await same(corrupt)), /^tar: bad header checksum after entry "a\/first"/);
    const badMode = Buffer.from(bytes);
    badMode.write('0000abc\0', 100, 'latin1');
    assert.match(String(await same(reseal(badMode))), /invalid mode field/);
    const sparse = await write([file('s', 1)]);
    sparse.write('S', 156, 'latin1');
    assert.match(String(await same(reseal(sparse))), /sparse file/);
  });
});
