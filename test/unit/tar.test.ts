import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { readTar } from '../../src/layer/tar/reader.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function readAll(bytes: Buffer): Promise<{ header: TarHeader; body: Buffer }[]> {
  const out: { header: TarHeader; body: Buffer }[] = [];
  async function* chunks() {
    // Odd chunk sizes exercise headers and bodies that straddle chunk boundaries.
    for (let i = 0; i < bytes.length; i += 777) yield bytes.subarray(i, i + 777);
  }
  for await (const { header, body } of readTar(chunks())) out.push({ header, body: await collect(body) });
  return out;
}

const LONG_DIR = `${'d'.repeat(120)}/${'e'.repeat(90)}`;
const LONGER = `${'x'.repeat(200)}/${'y'.repeat(150)}/file.txt`;
const BINARY_XATTR = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x3d, 0x20, 0]);

const ENTRIES: TarInput[] = [
  { header: { path: 'dir/', type: 'directory', mode: 0o1755, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 } },
  { header: { path: 'dir/setuid', type: 'file', mode: 0o4755, uid: 3_000_000, gid: 3_000_001, uname: 'bigid', gname: 'biggroup', size: 5, mtime: 1_700_000_000.25, xattrs: new Map([['user.bin', BINARY_XATTR], ['security.capability', Buffer.from([1, 0, 0, 2])]]) }, body: Buffer.from('hello') },
  { header: { path: `${LONG_DIR}/file`, type: 'file', mode: 0o644, uid: 1000, gid: 1000, size: 0, mtime: 0 }, body: new Uint8Array(0) },
  { header: { path: LONGER, type: 'file', mode: 0o600, uid: 1, gid: 2, size: 3, mtime: 5 }, body: Buffer.from('abc') },
  { header: { path: 'dir/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, linkname: `/${'t'.repeat(150)}` } },
  { header: { path: 'dir/hard', type: 'hardlink', mode: 0o4755, uid: 0, gid: 0, size: 0, mtime: 0, linkname: 'dir/setuid' } },
  { header: { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 0, devmajor: 1, devminor: 3 } },
  { header: { path: 'dev/sda', type: 'block', mode: 0o660, uid: 0, gid: 6, size: 0, mtime: 0, devmajor: 8, devminor: 0 } },
  { header: { path: 'fifo', type: 'fifo', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } },
  { header: { path: 'ünïcode-name', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1, mtime: 0 }, body: Buffer.from('u') },
];

const PYTHON_DUMP = `
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    for m in t.getmembers():
        x = {k[len('SCHILY.xattr.'):]: v.encode('utf-8', 'surrogateescape').hex() for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')}
        body = t.extractfile(m).read().hex() if m.isreg() else ''
        out.append(dict(path=m.name, type=m.type.decode(), mode=m.mode, uid=m.uid, gid=m.gid, size=m.size, mtime=m.mtime, linkname=m.linkname, devmajor=m.devmajor, devminor=m.devminor, xattrs=x, body=body))
print(json.dumps(out))
`;

describe('tar codec', () => {
  it('round-trips every entry kind, long names, large ids, binary xattrs and fractional times', async () => {
    const bytes = await collect(writeTar(ENTRIES));
    assert.equal(bytes.length % 512, 0);
    const read = await readAll(bytes);
    assert.equal(read.length, ENTRIES.length);
    read.forEach(({ header, body }, i) => {
      const want = ENTRIES[i] as TarInput;
      assert.deepEqual(header, want.header, `entry ${i}`);
      assert.deepEqual(body, Buffer.from((want.body as Uint8Array | undefined) ?? new Uint8Array(0)));
    });
    assert.deepEqual(await collect(writeTar(ENTRIES)), bytes, 'deterministic');
  });

  it("writes what Python's tarfile reads back exactly (uid 3000000, binary xattrs, long paths, devices)", async () => {
    const dir = await tempDir();
    const file = join(dir, 'kiln.tar');
    await writeFile(file, await collect(writeTar(ENTRIES)));
    const members = JSON.parse(execFileSync('python3', ['-c', PYTHON_DUMP, file], { encoding: 'utf8' })) as Record<string, unknown>[];
    const byPath = new Map(members.map((m) => [String(m.path).replace(/\/$/, ''), m]));
    const setuid = byPath.get('dir/setuid') as Record<string, unknown>;
    assert.equal(setuid.uid, 3_000_000);
    assert.equal(setuid.gid, 3_000_001);
    assert.equal(setuid.mode, 0o4755);
    assert.equal(setuid.body, Buffer.from('hello').toString('hex'));
    assert.deepEqual(setuid.xattrs, { 'user.bin': BINARY_XATTR.toString('hex'), 'security.capability': '01000002' });
    assert.equal(setuid.mtime, 1_700_000_000.25);
    assert.ok(byPath.has(`${LONG_DIR}/file`));
    assert.ok(byPath.has(LONGER));
    assert.equal((byPath.get('dir/link') as Record<string, unknown>).linkname, `/${'t'.repeat(150)}`);
    assert.equal((byPath.get('dir/hard') as Record<string, unknown>).type, '1');
    assert.deepEqual([(byPath.get('dev/sda') as Record<string, unknown>).devmajor, (byPath.get('dev/sda') as Record<string, unknown>).devminor], [8, 0]);
    assert.equal((byPath.get('fifo') as Record<string, unknown>).type, '6');
    assert.ok(byPath.has('ünïcode-name'));
    // GNU tar agrees on the listing, including the numeric owner of the large uid.
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
    assert.match(listing, /-rwsr-xr-x 3000000\/3000001\s+5 .* dir\/setuid/);
    assert.ok(listing.includes(LONGER));
  });

  it("reads what Python's tarfile writes in PAX and GNU formats", async () => {
    const dir = await tempDir();
    const script = `
import io, sys, tarfile
for fmt, name in ((tarfile.PAX_FORMAT, 'pax.tar'), (tarfile.GNU_FORMAT, 'gnu.tar')):
    with tarfile.open(sys.argv[1] + '/' + name, 'w', format=fmt, encoding='utf-8', errors='surrogateescape') as t:
        i = tarfile.TarInfo('${'p'.repeat(130)}/${'q'.repeat(130)}'); i.size = 4; i.uid = 3000000; i.gid = 4000000; i.mode = 0o2750; i.mtime = 1234567890
        if fmt == tarfile.PAX_FORMAT:
            i.pax_headers = {'SCHILY.xattr.user.bin': b'\\x00\\xff\\x01'.decode('utf-8', 'surrogateescape')}
        t.addfile(i, io.BytesIO(b'data'))
        l = tarfile.TarInfo('l'); l.type = tarfile.SYMTYPE; l.linkname = '/' + 'z' * 140
        t.addfile(l)
        c = tarfile.TarInfo('c'); c.type = tarfile.CHRTYPE; c.devmajor = 5; c.devminor = 1
        t.addfile(c)
`;
    execFileSync('python3', ['-c', script, dir]);
    for (const name of ['pax.tar', 'gnu.tar']) {
      const read = await readAll(await readFile(join(dir, name)));
      const [file, link, dev] = read.map((r) => r.header);
      assert.equal(file?.path, `${'p'.repeat(130)}/${'q'.repeat(130)}`, name);
      assert.equal(file?.uid, 3_000_000, name);
      assert.equal(file?.gid, 4_000_000, name);
      assert.equal(file?.mode, 0o2750, name);
      assert.equal(file?.mtime, 1234567890, name);
      assert.equal(read[0]?.body.toString(), 'data');
      if (name === 'pax.tar') assert.deepEqual(file?.xattrs?.get('user.bin'), Buffer.from([0, 0xff, 1]));
      assert.equal(link?.linkname, `/${'z'.repeat(140)}`, name);
      assert.deepEqual([dev?.type, dev?.devmajor, dev?.devminor], ['char', 5, 1], name);
    }
  });

  it('lists a GNU tar fixture exactly as tar -t does', async () => {
    const path = join(fixturesDir, 'busybox-rootfs.tar');
    const names = (await readAll(await readFile(path))).map((r) => r.header.path);
    assert.deepEqual(names, execFileSync('tar', ['-tf', path], { encoding: 'utf8' }).trim().split('\n'));
  });

  it('refuses truncated, corrupt and sparse archives with a clear error', async () => {
    const good = await collect(writeTar(ENTRIES));
    const refused = async (bytes: Buffer, message: RegExp): Promise<void> => {
      await assert.rejects(readAll(bytes), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message));
    };
    await refused(good.subarray(0, 700), /unexpected end of data/);
    await refused(good.subarray(0, 300), /unexpected end of data/);
    const corrupt = Buffer.from(good);
    corrupt[10] = 0x7e;
    await refused(corrupt, /bad header checksum/);
    await refused(Buffer.alloc(1024, 0x41), /bad header checksum|invalid/);
    const sparse = Buffer.from(await collect(writeTar([{ header: { path: 's', type: 'fifo', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } }])));
    sparse[156] = 'S'.charCodeAt(0);
    let sum = 0;
    sparse.fill(0x20, 148, 156);
    for (let i = 0; i < 512; i++) sum += sparse[i] as number;
    sparse.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await refused(sparse, /sparse file/);
  });

  it('refuses a body that does not match the declared size when writing', async () => {
    await assert.rejects(collect(writeTar([{ header: { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 }, body: Buffer.from('short') }])), (err) => isKilnError(err, 'INVALID_INPUT'));
  });
});
