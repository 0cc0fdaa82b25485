import assert from 'node:assert/strict';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type SeekableSource, readTar } from '../../src/layer/tar/reader.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { readEntries, reseal } from '../helpers/tar.js';

/** `bytes` cut into `size`-byte chunks, as a stream would deliver them. */
function* chunked(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const write = (entries: TarInput[]): Promise<Buffer> => buffer(writeTar(entries));

/**
 * An archive of one empty file whose PAX header holds exactly `records`, including keys the writer would
 * derive from the header itself: each is written under an upper-case stand-in, then renamed in place.
 */
async function withPaxRecords(records: Record<string, string>): Promise<Buffer> {
  const standIns = Object.fromEntries(Object.entries(records).map(([key, value]) => [key.toUpperCase(), value]));
  const bytes = await write([{ header: { ...base, path: 'n', type: 'file', pax: standIns } }]);
  for (const key of Object.keys(records)) bytes.write(key, bytes.indexOf(` ${key.toUpperCase()}=`) + 1, 'latin1');
  return bytes;
}

const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } as const;
const file = (path: string, content: string, extra: Partial<TarHeader> = {}): TarInput => ({
  header: { ...base, path, type: 'file', size: Buffer.byteLength(content), ...extra },
  body: Buffer.from(content),
});

const LONG_DIR = `${'d'.repeat(120)}/${'e'.repeat(90)}`;
const LONGER = `${'x'.repeat(200)}/${'y'.repeat(150)}/file.txt`;
const BINARY_XATTR = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x3d, 0x20, 0]);

const ENTRIES: TarInput[] = [
  { header: { ...base, path: 'dir/', type: 'directory', mode: 0o1755, mtime: 1_700_000_000 } },
  file('big-body', 'z'.repeat(70_000), { mtime: -1 }),
  file('dir/setuid', 'hello', { mode: 0o4755, uid: 3_000_000, gid: 3_000_001, uname: 'bigid', gname: 'biggroup', mtime: 1_700_000_000.25, xattrs: new Map([['user.bin', BINARY_XATTR], ['security.capability', Buffer.from([1, 0, 0, 2])]]) }),
  { header: { ...base, path: `${LONG_DIR}/file`, type: 'file', uid: 1000, gid: 1000 }, body: new Uint8Array(0) },
  file(LONGER, 'abc', { mode: 0o600, uid: 1, gid: 2, mtime: 5 }),
  { header: { ...base, path: 'dir/link', type: 'symlink', mode: 0o777, linkname: `/${'t'.repeat(150)}` } },
  { header: { ...base, path: 'dir/hard', type: 'hardlink', mode: 0o4755, linkname: 'dir/setuid' } },
  { header: { ...base, path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 } },
  { header: { ...base, path: 'dev/sda', type: 'block', mode: 0o660, gid: 6, devmajor: 8, devminor: 0 } },
  { header: { ...base, path: 'fifo', type: 'fifo', mode: 0o2644 } },
  file('ünïcode-name', 'u', { uname: 'jörg' }),
];

describe('tar codec: round trips', () => {
  it('reads back every entry kind, long names, large ids, binary xattrs and fractional times, however the stream is cut', async () => {
    const bytes = await write(ENTRIES);
    assert.equal(bytes.length % 512, 0);
    for (const size of [5, 511, 512, 777, 65_536, bytes.length]) {
      const read = await readEntries(chunked(bytes, size));
      assert.deepEqual(
        read.map((r) => r.header),
        ENTRIES.map((e) => e.header),
        `chunks of ${size}`,
      );
      assert.deepEqual(
        read.map((r) => r.body),
        ENTRIES.map((e) => Buffer.from((e.body as Uint8Array | undefined) ?? [])),
        `chunks of ${size}`,
      );
    }
  });

  it('writes the same bytes for the same entries', async () => {
    const reordered = ENTRIES.map((e) => (e.header.xattrs ? { ...e, header: { ...e.header, xattrs: new Map([...e.header.xattrs].reverse()) } } : e));
    assert.deepEqual(await write(reordered), await write(ENTRIES));
  });

  it('keeps PAX records it does not interpret, and drops access and change times', async () => {
    const [read] = await readEntries([await withPaxRecords({ comment: 'made by hand', 'LIBARCHIVE.creationtime': '5', atime: '7.5', ctime: '8' })]);
    assert.ok(read);
    assert.deepEqual(read.header.pax, { comment: 'made by hand', 'LIBARCHIVE.creationtime': '5' });
    const [again] = await readEntries([await write([{ header: read.header }])]);
    assert.deepEqual(again?.header, read.header);
  });
});

describe('tar codec: the format chosen on write', () => {
  const flag = (bytes: Buffer, at = 0): string => String.fromCharCode(bytes[at + 156] as number);

  it('writes plain ustar when every value fits, splitting long paths at a slash', async () => {
    const header: TarHeader = { ...base, path: `${'a'.repeat(120)}/${'b'.repeat(99)}`, type: 'fifo', uid: 0o7777777, gid: 0o7777777, mtime: 0o77777777777, uname: 'u'.repeat(32) };
    const bytes = await write([{ header }]);
    assert.equal(bytes.length, 512 * 3, 'one header and the end blocks, no PAX');
    assert.equal(flag(bytes), '6');
    assert.equal(bytes.toString('latin1', 345, 345 + 121), `${'a'.repeat(120)}\0`, 'ustar prefix');
    assert.equal(bytes.toString('latin1', 0, 100), `${'b'.repeat(99)}\0`, 'ustar name');
    assert.deepEqual((await readEntries([bytes]))[0]?.header, header);
  });

  const cases: [string, Partial<TarHeader>, string][] = [
    ['a path longer than 256 bytes', { path: 'p/'.repeat(130) + 'f' }, 'path='],
    ['a path that has no slash to split at', { path: 'q'.repeat(101) }, 'path='],
    ['a non-ASCII path', { path: 'naïve' }, 'path=naïve'],
    ['a uid above 0o7777777', { uid: 0o7777777 + 1 }, 'uid=2097152'],
    ['a gid of 3000000', { gid: 3_000_000 }, 'gid=3000000'],
    ['a fractional mtime', { mtime: 1.5 }, 'mtime=1.5'],
    ['a tiny fractional mtime', { mtime: 1e-7 }, 'mtime=0.0000001'],
    ['a negative mtime', { mtime: -86_400 }, 'mtime=-86400'],
    ['a long owner name', { uname: 'u'.repeat(33) }, `uname=${'u'.repeat(33)}`],
    ['an xattr', { xattrs: new Map([['user.k', Buffer.from('v')]]) }, 'SCHILY.xattr.user.k=v'],
  ];
  for (const [what, extra, record] of cases) {
    it(`adds a PAX header for ${what}`, async () => {
      const bytes = await write([{ header: { ...base, path: 'f', type: 'fifo', ...extra } }]);
      assert.equal(flag(bytes), 'x');
      const records = bytes.toString('utf8', 512, 512 + parseInt(bytes.toString('latin1', 124, 135), 8));
      assert.ok(records.includes(`${record}`), records);
      const [read] = await readEntries([bytes]);
      assert.deepEqual(read?.header, { ...base, path: 'f', type: 'fifo', ...extra });
    });
  }

  it('writes a PAX size for files of 8 GiB and more', async () => {
    const size = 8 * 1024 ** 3;
    const chunk = Buffer.alloc(1 << 24);
    async function* body(): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
    }
    const output = writeTar([{ header: { ...base, path: 'huge', type: 'file', size }, body: body() }])[Symbol.asyncIterator]();
    const first = (await output.next()).value as Buffer;
    assert.equal(String.fromCharCode(first[156] as number), 'x');
    assert.ok(first.toString('latin1', 512, 1024).includes(`size=${size}\n`));
    await output.return(undefined);
  });
});

describe('tar codec: headers from other writers', () => {
  it('reads GNU base-256 numbers, including a negative mtime', async () => {
    const bytes = await write([file('f', 'abc')]);
    Buffer.from([0x80, 0, 0, 0, 0, 0x2d, 0xc6, 0xc0]).copy(bytes, 108); // uid 3000000
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]).copy(bytes, 136); // mtime -2
    const [read] = await readEntries([reseal(bytes)]);
    assert.equal(read?.header.uid, 3_000_000);
    assert.equal(read?.header.mtime, -2);
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]).copy(bytes, 116); // gid -2
    await assert.rejects(readEntries([reseal(bytes)]), (err) => isKilnError(err, 'INVALID_INPUT') && /gid out of range/.test(err.message));
  });

  it('accepts a signed checksum and reads a non-UTF-8 name as latin1', async () => {
    const bytes = await write([file('cafe', 'x')]);
    bytes[3] = 0xe9;
    const [read] = await readEntries([reseal(bytes, 0, true)]);
    assert.equal(read?.header.path, 'café');
  });

  it('reads v7 headers (a trailing slash makes a directory) and ignores the old GNU prefix area', async () => {
    const v7 = await write([{ header: { ...base, path: 'old/', type: 'file', uname: 'ignored' } }]);
    v7.fill(0, 156, 157);
    v7.fill(0, 257, 265);
    const [dir] = await readEntries([reseal(v7)]);
    assert.deepEqual(dir?.header, { ...base, path: 'old/', type: 'directory' });

    const gnu = await write([file('name', 'x', { uname: 'root' })]);
    gnu.write('ustar  \0', 257, 'latin1');
    gnu.write('14515614177\0', 345, 'latin1'); // old GNU keeps the access time where ustar has its prefix
    const [read] = await readEntries([reseal(gnu)]);
    assert.equal(read?.header.path, 'name');
    assert.equal(read?.header.uname, 'root');
  });

  it('reads a contiguous file (type 7) as a regular file', async () => {
    const bytes = await write([file('c', 'data')]);
    bytes.write('7', 156, 'latin1');
    const [read] = await readEntries([reseal(bytes)]);
    assert.deepEqual([read?.header.type, read?.body.toString()], ['file', 'data']);
  });

  it('accepts an archive without its end blocks when it stops at a block boundary', async () => {
    const bytes = await write(ENTRIES);
    for (const cut of [512, 1024]) {
      assert.deepEqual(
        (await readEntries([bytes.subarray(0, bytes.length - cut)])).map((r) => r.header.path),
        ENTRIES.map((e) => e.header.path),
      );
    }
  });
});

describe('tar codec: refusing bad input', () => {
  const refused = async (bytes: Buffer, message: RegExp): Promise<void> => {
    await assert.rejects(readEntries(chunked(bytes, 300)), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message));
  };

  it('names the entry a truncated archive stops in', async () => {
    const bytes = await write([file('a/first', 'x'.repeat(1000)), file('b/second', 'y')]);
    await refused(bytes.subarray(0, 700), /^tar: unexpected end of data in entry "a\/first" \(the archive is truncated/);
    await refused(bytes.subarray(0, 1536 + 100), /^tar: unexpected end of data in the header after entry "a\/first"/);
    await refused(bytes.subarray(0, 300), /^tar: unexpected end of data in the header at the start of the archive/);
    const pax = await write([file('p'.repeat(300), 'x')]);
    await refused(pax.subarray(0, 600), /unexpected end of data in a PAX header at the start/);
  });

  it('refuses a bad checksum, garbage, and an invalid number field', async () => {
    const bytes = await write([file('f', 'x'), file('g', 'y')]);
    const corrupt = Buffer.from(bytes);
    corrupt[1024 + 10] = 0x7e;
    await refused(corrupt, /^tar: bad header checksum after entry "f"/);
    await refused(Buffer.alloc(1024, 0x41), /bad header checksum at the start of the archive/);
    const badMode = Buffer.from(bytes);
    badMode.write('0000abc\0', 100, 'latin1');
    await refused(reseal(badMode), /entry "f" has an invalid mode field "0000abc"/);
  });

  it('refuses sparse files, in GNU and in PAX form, and unknown entry types', async () => {
    const sparse = await write([file('s', 'x')]);
    sparse.write('S', 156, 'latin1');
    await refused(reseal(sparse), /entry "s" is a sparse file/);
    await refused(await write([{ header: { ...base, path: 'GNUSparseFile.0/s', type: 'file', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' } } }]), /sparse file/);
    const unknown = await write([file('u', 'x')]);
    unknown.write('Z', 156, 'latin1');
    await refused(reseal(unknown), /entry "u" has the unsupported type "Z"/);
  });

  it('refuses malformed and oversized PAX headers, and bad PAX numbers', async () => {
    const pax = await write([file('p'.repeat(300), 'x')]);
    const malformed = Buffer.from(pax);
    malformed.write('9', 512, 'latin1'); // the record's length no longer ends at its newline
    await refused(malformed, /malformed PAX record/);
    const huge = Buffer.from(pax);
    huge.write('00100000000\0', 124, 'latin1'); // 16 MiB of "PAX records"
    await refused(reseal(huge), /PAX header of 16777216 bytes at the start of the archive is too large/);
    for (const [key, value] of [['uid', '-1'], ['size', '0x10'], ['mtime', '1e9'], ['gid', '99999999999999999999']] as const) {
      await refused(await withPaxRecords({ [key]: value }), new RegExp(`entry "n" has an invalid PAX ${key} "${value}"`));
    }
  });

  it('falls back to the ustar field when a PAX record is empty', async () => {
    const [read] = await readEntries([await withPaxRecords({ path: '', uid: '' })]);
    assert.deepEqual([read?.header.path, read?.header.uid], ['n', 0]);
  });
});

describe('tar codec: streaming', () => {
  it('skips bodies the consumer leaves unread, and refuses to read them later', async () => {
    const bytes = await write(ENTRIES);
    const bodies: AsyncIterable<Buffer>[] = [];
    const paths: string[] = [];
    for await (const { header, body } of readTar(chunked(bytes, 7))) {
      paths.push(header.path);
      bodies.push(body);
      if (header.path === 'big-body') {
        const part = String((await body[Symbol.asyncIterator]().next()).value);
        assert.ok(part.length > 0 && part.length <= 7 && /^z+$/.test(part), 'a partial read');
      }
    }
    assert.deepEqual(paths, ENTRIES.map((e) => e.header.path));
    await assert.rejects(buffer(bodies[1] as AsyncIterable<Buffer>), (err) => isKilnError(err, 'INTERNAL'));
  });

  it('seeks over unread bodies when the source can, and reports where each body starts', async () => {
    const bytes = await write(ENTRIES);
    let delivered = 0;
    let position = 0;
    const source: AsyncIterator<Uint8Array> & SeekableSource = {
      next: () => {
        const chunk = bytes.subarray(position, position + 512);
        position += chunk.length;
        delivered += chunk.length;
        return Promise.resolve(chunk.length > 0 ? { done: false, value: chunk } : { done: true, value: undefined });
      },
      skipAhead: (n) => {
        const skipped = Math.min(n, bytes.length - position);
        position += skipped;
        return Promise.resolve(skipped);
      },
    };
    for await (const { header, offset } of readTar(source)) {
      if (header.path === 'dir/setuid') assert.equal(bytes.toString('utf8', offset, offset + 5), 'hello');
    }
    assert.ok(delivered < bytes.length - 70_000, `read ${delivered} of ${bytes.length} bytes`);
  });

  it('closes the source when the consumer stops early', async () => {
    let closed = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        yield* chunked(await write(ENTRIES), 512);
      } finally {
        closed = true;
      }
    }
    for await (const _ of readTar(source())) break;
    assert.equal(closed, true);
  });

  it('pulls entries and body chunks only as the output is read', async () => {
    const pulled: string[] = [];
    async function* body(): AsyncGenerator<Buffer> {
      for (const part of ['ab', 'cd']) {
        pulled.push(`chunk ${part}`);
        yield Buffer.from(part);
      }
    }
    async function* entries(): AsyncGenerator<TarInput> {
      pulled.push('entry 1');
      yield { header: { ...base, path: 'one', type: 'file', size: 4 }, body: body() };
      pulled.push('entry 2');
      yield file('two', '');
    }
    const output = writeTar(entries());
    await output.next(); // the header of "one"
    await output.next(); // its first chunk
    assert.deepEqual(pulled, ['entry 1', 'chunk ab']);
    await output.return(undefined);
  });
});

describe('tar codec: refusing what cannot be written', () => {
  const refused = (entries: TarInput[], message: RegExp): Promise<void> =>
    assert.rejects(write(entries), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message));

  it('refuses a body that does not match the declared size', async () => {
    await refused([{ header: { ...base, path: 'f', type: 'file', size: 10 }, body: Buffer.from('short') }], /"f" ended after 5 of its 10 bytes/);
    await refused([{ header: { ...base, path: 'f', type: 'file', size: 2 }, body: (async function* () {
      yield* chunked(Buffer.from('long'), 2);
    })() }], /"f" has more data than its size 2/);
    await refused([{ header: { ...base, path: 'f', type: 'file', size: 1 } }], /ended after 0 of its 1 bytes/);
  });

  it('refuses headers that tar cannot represent', async () => {
    const fifo = (extra: Partial<TarHeader>): TarInput => ({ header: { ...base, path: 'x', type: 'fifo', ...extra } });
    await refused([fifo({ uid: -1 })], /uid -1 is not a non-negative integer/);
    await refused([fifo({ size: 1.5 })], /size 1.5/);
    await refused([fifo({ path: 'a\0b' })], /NUL byte/);
    await refused([fifo({ path: '' })], /path is empty/);
    await refused([fifo({ type: 'symlink' })], /a symlink needs a link target/);
    await refused([fifo({ mtime: Number.NaN })], /mtime NaN is not a time/);
    await refused([fifo({ type: 'char', devmajor: 0o10000000 })], /devmajor 2097152 does not fit/);
    await refused([fifo({ xattrs: new Map([['user.a=b', Buffer.alloc(0)]]) })], /"user.a=b" cannot be written/);
  });
});
