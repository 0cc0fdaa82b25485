import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import type { TarEntryType, TarHeader } from '../../src/layer/tar/header.js';
import { readTar } from '../../src/layer/tar/reader.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { busyboxBinary, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { readEntries } from '../helpers/tar.js';

// What GNU tar and Python's tarfile see in an archive, against what kiln sees in it. Listings are
// compared line by line, with times as numbers so that "22:13:20.5" and 1700000000.5 meet.

const ENV = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };
const run = (command: string, args: string[]): string => execFileSync(command, args, { encoding: 'utf8', env: ENV, maxBuffer: 64 << 20, stdio: 'pipe' });

/** `tar -tv` lines with single spaces and times in seconds since the epoch. */
function gnuListing(file: string): string[] {
  const lines = run('tar', ['--full-time', '--numeric-owner', '--quoting-style=literal', '-tvf', file]).trimEnd().split('\n');
  return lines.map((line) => {
    const match = /^(\S{10}) (\d+\/\d+) +(\S+) (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? +(.*)$/.exec(line);
    assert.ok(match, `unexpected tar -tv line ${JSON.stringify(line)}`);
    const [, mode, owner, size, date, time, fraction, name] = match;
    const seconds = Date.parse(`${date}T${time}Z`) / 1000;
    return `${mode} ${owner} ${size} ${fraction ? Number(`${seconds}.${fraction}`) : seconds} ${name}`;
  });
}

const KIND: Readonly<Record<TarEntryType, string>> = { file: '-', directory: 'd', symlink: 'l', hardlink: 'h', char: 'c', block: 'b', fifo: 'p' };

/** The line GNU tar's `-tv` prints for a header, in {@link gnuListing}'s form. */
function kilnLine(h: TarHeader): string {
  const bits = [...'rwxrwxrwx'].map((c, i) => (h.mode & (0o400 >> i) ? c : '-'));
  for (const [at, bit, letter] of [[2, 0o4000, 's'], [5, 0o2000, 's'], [8, 0o1000, 't']] as const) {
    if (h.mode & bit) bits[at] = bits[at] === 'x' ? letter : letter.toUpperCase();
  }
  const size = h.type === 'char' || h.type === 'block' ? `${h.devmajor},${h.devminor}` : String(h.size);
  const link = h.type === 'symlink' ? ` -> ${h.linkname}` : h.type === 'hardlink' ? ` link to ${h.linkname}` : '';
  return `${KIND[h.type]}${bits.join('')} ${h.uid}/${h.gid} ${size} ${h.mtime} ${h.path}${link}`;
}

interface Member {
  readonly path: string;
  readonly type: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly size: number;
  readonly mtime: number;
  readonly linkname: string;
  readonly dev: string;
  readonly xattrs: Record<string, string>;
  readonly body: string;
}

const PYTHON_MEMBERS = `
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    for m in t.getmembers():
        raw = lambda s: s.encode('utf-8', 'surrogateescape').hex()
        out.append(dict(path=m.name, type='0' if m.isreg() else m.type.decode(), mode=m.mode, uid=m.uid, gid=m.gid,
            uname=m.uname, gname=m.gname, size=m.size, mtime=m.mtime, linkname=m.linkname,
            dev=f'{m.devmajor},{m.devminor}' if m.ischr() or m.isblk() else '',
            xattrs={k[len('SCHILY.xattr.'):]: raw(v) for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')},
            body=t.extractfile(m).read().hex() if m.isreg() else ''))
print(json.dumps(out))
`;

/** What Python's tarfile reads from an archive, one record a member. */
function pythonMembers(file: string): Member[] {
  return JSON.parse(run('python3', ['-c', PYTHON_MEMBERS, file])) as Member[];
}

const TYPE_FLAG: Readonly<Record<TarEntryType, string>> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' };

/** A kiln entry as {@link pythonMembers} reports it (tarfile drops a directory's trailing slash). */
function asMember(h: TarHeader, body: Buffer): Member {
  return {
    path: h.type === 'directory' ? h.path.replace(/\/+$/, '') : h.path,
    type: TYPE_FLAG[h.type],
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname ?? '',
    gname: h.gname ?? '',
    size: h.size,
    mtime: h.mtime,
    linkname: h.linkname ?? '',
    dev: h.type === 'char' || h.type === 'block' ? `${h.devmajor},${h.devminor}` : '',
    xattrs: Object.fromEntries([...(h.xattrs ?? [])].map(([k, v]) => [k, v.toString('hex')])),
    body: body.toString('hex'),
  };
}

const readFileEntries = (file: string) => readEntries(createReadStream(file, { highWaterMark: 1 << 16 }));

/** Checks that kiln, GNU tar and Python's tarfile all see the same entries in `file`. */
async function assertAllAgree(file: string): Promise<{ header: TarHeader; body: Buffer }[]> {
  const entries = await readFileEntries(file);
  assert.deepEqual(
    entries.map((e) => kilnLine(e.header)),
    gnuListing(file),
    `${file}: kiln and GNU tar`,
  );
  assert.deepEqual(
    entries.map((e) => asMember(e.header, e.body)),
    pythonMembers(file),
    `${file}: kiln and Python`,
  );
  return entries;
}

// A tree with every kind of entry a rootfs holds, made as an unprivileged user can (Python for xattrs,
// fifos and nanosecond times).
const MAKE_TREE = `
import os, sys
root = sys.argv[1]
def p(*parts): return os.path.join(root, *parts)
os.makedirs(p('tree', 'dir'))
os.chmod(p('tree', 'dir'), 0o1777)
for name, mode in (('setuid', 0o4755), ('setgid', 0o2750)):
    with open(p('tree', 'dir', name), 'wb') as f: f.write(name.encode())
    os.chmod(p('tree', 'dir', name), mode)
open(p('tree', 'empty'), 'wb').close()
with open(p('tree', 'blob'), 'wb') as f: f.write(bytes(range(256)) * 400)
with open(p('tree', 'xattrs'), 'wb') as f: f.write(b'x')
os.setxattr(p('tree', 'xattrs'), 'user.bin', b'\\x00\\xff\\x01=\\n \\x00')
os.setxattr(p('tree', 'xattrs'), 'user.text', b'plain')
os.utime(p('tree', 'xattrs'), ns=(1700000000123456789, 1700000000123456789))
medium = p('tree', 'm' * 90, 'n' * 40)
os.makedirs(os.path.dirname(medium)); open(medium, 'w').close()
deep = p('tree', 'a' * 60, 'b' * 60, 'c' * 80, 'd' * 70, 'file')
os.makedirs(os.path.dirname(deep)); open(deep, 'w').close()
os.symlink('dir/setuid', p('tree', 'sym'))
os.symlink('t' * 150, p('tree', 'longlink'))
os.link(p('tree', 'dir', 'setuid'), p('tree', 'hard'))
os.mkfifo(p('tree', 'fifo'))
with open(p('tree', 'ünïcödé'), 'w') as f: f.write('u')
`;

const ARCHIVES = ['busybox-docker20-save.tar', 'whiteouts-docker20-save.tar', 'whiteouts-oci-archive.tar'] as const;
const noRootfs = await fixturesUnavailable('busybox-rootfs.tar');
const noArchives = await fixturesUnavailable(...ARCHIVES);

describe('tar interop: fixtures made by real tools', () => {
  it('lists busybox-rootfs.tar exactly as GNU tar and Python do', { skip: noRootfs }, async () => {
    const entries = await assertAllAgree(await fixture('busybox-rootfs.tar'));
    const body = entries.find((e) => e.header.path === './bin/busybox')?.body ?? Buffer.alloc(0);
    const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    assert.equal(sha256(body), sha256(await readFile(busyboxBinary)), "./bin/busybox is Debian's busybox, byte for byte");
  });

  for (const name of ARCHIVES) {
    it(`lists ${name} as GNU tar does, and every layer.tar inside it, read as it streams by`, { skip: noArchives }, async () => {
      const file = await fixture(name);
      const dir = await tempDir();
      const layers: string[] = [];
      const outer: string[] = [];
      for await (const { header, body } of readTar(createReadStream(file))) {
        outer.push(kilnLine(header));
        if (!header.path.endsWith('/layer.tar')) continue;
        const inner = (await readEntries(body)).map((e) => kilnLine(e.header));
        const copy = join(dir, `${layers.length}.tar`);
        await writeFile(copy, execFileSync('tar', ['-xOf', file, header.path], { maxBuffer: 64 << 20 }));
        assert.deepEqual(inner, gnuListing(copy), header.path);
        layers.push(header.path);
      }
      assert.deepEqual(outer, gnuListing(file));
      if (name.includes('docker20')) assert.ok(layers.length > 0, 'the save holds layers');
    });
  }

  it('re-writes busybox-rootfs.tar into an archive GNU tar and Python list the same', { skip: noRootfs }, async () => {
    const file = await fixture('busybox-rootfs.tar');
    const copy = join(await tempDir(), 'copy.tar');
    await writeFile(copy, await buffer(writeTar((await readFileEntries(file)) as TarInput[])));
    assert.deepEqual(gnuListing(copy), gnuListing(file));
    assert.deepEqual(pythonMembers(copy), pythonMembers(file));
  });
});

describe('tar interop: archives GNU tar writes', () => {
  const archives = async (): Promise<{ dir: string; create: (name: string, args: string[]) => string }> => {
    const dir = await tempDir();
    run('python3', ['-c', MAKE_TREE, dir]);
    const create = (name: string, args: string[]): string => {
      run('tar', ['-C', dir, '--sort=name', '-cf', join(dir, name), ...args]);
      return join(dir, name);
    };
    return { dir, create };
  };

  it('reads PAX, GNU and old GNU archives of a tree with xattrs, long names, links, a fifo and uid 3000000', async () => {
    const { dir, create } = await archives();
    const owner = ['--owner=3000000', '--group=3000001', '--numeric-owner'];
    for (const [name, args] of [
      ['pax.tar', ['--format=pax', '--xattrs', '--xattrs-include=*', ...owner, 'tree']],
      ['gnu.tar', ['--format=gnu', ...owner, 'tree']],
      ['oldgnu.tar', ['--format=oldgnu', 'tree']],
    ] as const) {
      const entries = await assertAllAgree(create(name, [...args]));
      const byPath = new Map(entries.map((e) => [e.header.path, e]));
      const deep = `tree/${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(80)}/${'d'.repeat(70)}/file`;
      assert.ok(byPath.has(deep), `${name}: the 279-byte path`);
      assert.equal(byPath.get('tree/longlink')?.header.linkname, 't'.repeat(150), name);
      assert.deepEqual(byPath.get('tree/blob')?.body, await readFile(join(dir, 'tree/blob')), name);
      if (name !== 'oldgnu.tar') assert.equal(byPath.get('tree/dir/setuid')?.header.uid, 3_000_000, name);
      if (name === 'pax.tar') {
        const xattrs = byPath.get('tree/xattrs')?.header;
        assert.deepEqual(xattrs?.xattrs, new Map([['user.bin', Buffer.from([0, 0xff, 1, 0x3d, 0x0a, 0x20, 0])], ['user.text', Buffer.from('plain')]]));
        assert.equal(xattrs?.mtime, Number('1700000000.123456789'), 'the PAX time to the precision of a double');
      }
    }
  });

  it('reads ustar and v7 archives', async () => {
    const { create } = await archives();
    const short = ['tree/dir', 'tree/empty', 'tree/blob', 'tree/sym', 'tree/hard'];
    await assertAllAgree(create('ustar.tar', ['--format=ustar', ...short, `tree/${'m'.repeat(90)}`]));
    await assertAllAgree(create('v7.tar', ['--format=v7', ...short]));
  });

  it('refuses the sparse files GNU tar writes, in GNU and in PAX form', async () => {
    const dir = await tempDir();
    const sparse = join(dir, 'sparse');
    await writeFile(sparse, '');
    execFileSync('truncate', ['-s', '4M', sparse]);
    execFileSync('dd', ['of=' + sparse, 'bs=1', 'seek=1048576', 'conv=notrunc', 'status=none'], { input: 'data' });
    for (const format of ['gnu', 'pax']) {
      const file = join(dir, `${format}.tar`);
      run('tar', ['-C', dir, '--sparse', `--format=${format}`, '-cf', file, 'sparse']);
      await assert.rejects(readFileEntries(file), (err) => isKilnError(err, 'INVALID_INPUT') && /entry ".*sparse" is a sparse file/.test(err.message), format);
    }
  });
});

const PYTHON_WRITE = `
import io, sys, tarfile
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[sys.argv[2]]
big = fmt != tarfile.USTAR_FORMAT
extra = {'pax_headers': {'comment': 'a global header'}} if fmt == tarfile.PAX_FORMAT else {}
with tarfile.open(sys.argv[1], 'w', format=fmt, encoding='utf-8', errors='surrogateescape', **extra) as t:
    def add(name, type=tarfile.REGTYPE, data=None, **attrs):
        i = tarfile.TarInfo(name); i.type = type; i.mtime = 1234567890
        for k, v in attrs.items(): setattr(i, k, v)
        if data is not None: i.size = len(data)
        t.addfile(i, io.BytesIO(data) if data is not None else None)
    add('dir', tarfile.DIRTYPE, mode=0o1777)
    add('dir/file', data=b'data', uid=3000000 if big else 1000, gid=4000000 if big else 1000, mode=0o2750, uname='user', gname='group')
    add('dir/empty', data=b'')
    add(('p' * 130 + '/' + 'q' * 130) if big else ('p' * 130 + '/' + 'q' * 90), data=b'long')
    add('dir/sym', tarfile.SYMTYPE, linkname=('/' + 'z' * 140) if big else 'file')
    add('dir/hard', tarfile.LNKTYPE, linkname='dir/file')
    add('dev/char', tarfile.CHRTYPE, devmajor=5, devminor=1, mode=0o620)
    add('dev/block', tarfile.BLKTYPE, devmajor=8, devminor=16, mode=0o660)
    add('dev/fifo', tarfile.FIFOTYPE, mode=0o4644)
    if fmt == tarfile.PAX_FORMAT:
        add('dir/xattrs', data=b'x', mtime=1700000000.5, pax_headers={
            'SCHILY.xattr.user.bin': b'\\x00\\xff\\x01\\n'.decode('utf-8', 'surrogateescape'),
            'SCHILY.xattr.security.capability': b'\\x01\\x00\\x00\\x02'.decode('utf-8', 'surrogateescape')})
        add('ünïcödé', data=b'u', uname='jörg')
`;

describe("tar interop: archives Python's tarfile writes", () => {
  for (const format of ['pax', 'gnu', 'ustar']) {
    it(`reads ${format} archives with devices, fifos, links, long names${format === 'ustar' ? '' : ', uid 3000000'}${format === 'pax' ? ', binary xattrs and a global header' : ''}`, async () => {
      const file = join(await tempDir(), `${format}.tar`);
      run('python3', ['-c', PYTHON_WRITE, file, format]);
      const entries = await assertAllAgree(file);
      if (format === 'pax') {
        const xattrs = entries.find((e) => e.header.path === 'dir/xattrs')?.header;
        assert.deepEqual(xattrs?.xattrs?.get('user.bin'), Buffer.from([0, 0xff, 1, 0x0a]));
        assert.equal(xattrs?.mtime, 1700000000.5);
        assert.equal(entries[0]?.header.pax, undefined, 'the global header describes the archive, not its first entry');
      }
    });
  }
});

const BINARY = Buffer.from([0, 0xff, 0xfe, 0x0a, 0x3d, 0x20, 0]);
const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 } as const;
const DEEP = `${'k'.repeat(100)}/${'l'.repeat(100)}/${'m'.repeat(100)}`;

const KILN_ENTRIES: TarInput[] = [
  { header: { ...base, path: 'out/', type: 'directory', mode: 0o1777 } },
  { header: { ...base, path: 'out/setuid', type: 'file', mode: 0o4755, uid: 3_000_000, gid: 3_000_001, size: 5, mtime: 1_700_000_000.5, xattrs: new Map([['user.bin', BINARY], ['user.empty', Buffer.alloc(0)]]) }, body: Buffer.from('hello') },
  { header: { ...base, path: 'out/setgid', type: 'file', mode: 0o2750, uname: 'someone', gname: 'others', size: 0 } },
  { header: { ...base, path: `out/${DEEP}/`, type: 'directory', mode: 0o755 } },
  { header: { ...base, path: `out/${DEEP}/file`, type: 'file', size: 3 }, body: Buffer.from('abc') },
  { header: { ...base, path: 'out/longlink', type: 'symlink', mode: 0o777, linkname: `/${'t'.repeat(150)}` } },
  { header: { ...base, path: 'out/sym', type: 'symlink', mode: 0o777, linkname: 'setuid' } },
  { header: { ...base, path: 'out/hard', type: 'hardlink', mode: 0o4755, uid: 3_000_000, gid: 3_000_001, linkname: 'out/setuid' } },
  { header: { ...base, path: 'out/fifo', type: 'fifo' } },
  { header: { ...base, path: 'out/ünïcödé', type: 'file', size: 1 }, body: Buffer.from('u') },
  { header: { ...base, path: 'out/blob', type: 'file', size: 100_000 }, body: Buffer.alloc(100_000, 'b') },
  { header: { ...base, path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 } },
  { header: { ...base, path: 'dev/sda', type: 'block', mode: 0o660, devmajor: 8, devminor: 0 } },
];

describe('tar interop: archives kiln writes', () => {
  it('are listed by GNU tar and read by Python exactly as kiln wrote them', async () => {
    const file = join(await tempDir(), 'kiln.tar');
    await writeFile(file, await buffer(writeTar(KILN_ENTRIES)));
    const entries = await assertAllAgree(file);
    assert.deepEqual(
      entries.map((e) => e.header),
      KILN_ENTRIES.map((e) => e.header),
    );
  });

  it('extract with GNU tar to the same files, modes, links, times and binary xattrs', async () => {
    const dir = await tempDir();
    const file = join(dir, 'kiln.tar');
    await writeFile(file, await buffer(writeTar(KILN_ENTRIES)));
    // Devices need mknod; owners need root.
    run('tar', ['-C', dir, '--xattrs', '--xattrs-include=*', '-p', ...(isRoot ? ['--same-owner', '--numeric-owner'] : []), '--exclude=dev', '-xf', file]);
    const out = (path: string): string => join(dir, 'out', path);
    assert.equal(await readFile(out('setuid'), 'utf8'), 'hello');
    assert.equal(await readFile(out(`${DEEP}/file`), 'utf8'), 'abc');
    assert.equal(await readFile(out('ünïcödé'), 'utf8'), 'u');
    assert.deepEqual(await readFile(out('blob')), Buffer.alloc(100_000, 'b'));
    assert.equal(await readlink(out('longlink')), `/${'t'.repeat(150)}`);
    assert.equal(await readlink(out('sym')), 'setuid');
    const [setuid, hard, fifo, top, setgid] = await Promise.all(['setuid', 'hard', 'fifo', '', 'setgid'].map((p) => lstat(out(p))));
    assert.equal(setuid?.ino, hard?.ino, 'a hardlink to the same inode');
    assert.ok(fifo?.isFIFO());
    assert.equal((top?.mode ?? 0) & 0o7777, 0o1777);
    assert.equal((setgid?.mode ?? 0) & 0o7777, 0o2750);
    assert.equal(setuid?.mtimeMs, 1_700_000_000_500);
    if (isRoot) {
      assert.equal((setuid?.mode ?? 0) & 0o7777, 0o4755);
      assert.deepEqual([setuid?.uid, setuid?.gid], [3_000_000, 3_000_001]);
    }
    const xattrs = run('python3', ['-c', 'import os, sys, json; print(json.dumps({k: os.getxattr(sys.argv[1], k).hex() for k in os.listxattr(sys.argv[1])}))', out('setuid')]);
    assert.deepEqual(JSON.parse(xattrs), { 'user.bin': BINARY.toString('hex'), 'user.empty': '' });
  });
});
