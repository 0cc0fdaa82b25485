import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, link, lstat, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BuildContext, type DigestCache, listDirectory } from '../../src/builder/context.js';
import { copyAsLayer, mkdirAsLayer, runCopy, runMkdir } from '../../src/builder/ops.js';
import type { Operation } from '../../src/builder/plan.js';
import { overlayLayerEntries } from '../../src/layer/diff.js';
import { sys } from '../../src/sys.js';
import type { TarInput } from '../../src/layer/tar/writer.js';
import { MetaDb } from '../../src/meta/db.js';
import { Snapshotter, entryInLayers, mount, unmount } from '../../src/snapshot/snapshotter.js';
import { isRoot, tempDir } from '../helpers/paths.js';

type CopyOp = Extract<Operation, { kind: 'copy' }>;

const EPOCH = Date.UTC(2010, 0, 1) / 1000;
const BASE_TIME = Date.UTC(2001, 0, 1) / 1000;
const CONTEXT_TIME = Date.UTC(2002, 0, 1) / 1000;

const noCache: DigestCache = { under: () => new Map(), put: () => undefined, checksumOf: () => undefined, putChecksum: () => undefined };

function copy(sources: string[], destination: string, extra: Partial<CopyOp> = {}): CopyOp {
  return { kind: 'copy', from: { kind: 'context' }, sources, inline: [], destination, destinationIsDir: destination.endsWith('/'), add: false, excludes: [], ...extra };
}

/** Headers (times clamped as a SOURCE_DATE_EPOCH build clamps them) and bodies, in order. */
async function read(entries: AsyncIterable<TarInput> | Iterable<TarInput>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const { header, body } of entries) {
    const chunks: Uint8Array[] = [];
    if (body instanceof Uint8Array) chunks.push(body);
    else if (body) for await (const chunk of body) chunks.push(chunk);
    out.push({ ...header, mtime: Math.min(header.mtime, EPOCH), body: Buffer.concat(chunks).toString() });
  }
  return out;
}

/**
 * A base of two layers (the upper one deletes /gone and makes /lnk a symlink), a context of files,
 * directories, a symlink and hardlinks, with old times, so that a clamped layer tells each time apart.
 */
async function setUp(): Promise<{ snapshots: Snapshotter; context: BuildContext; ignoring: BuildContext; dir: string }> {
  const dir = await tempDir('kiln-copy-layer-');
  const snapshots = new Snapshotter(dir, new MetaDb(join(dir, 'kiln.db')), 'overlay');
  await snapshots.prepare('tmp1', undefined);
  const one = snapshots.dir('tmp1');
  await mkdir(join(one, 'etc'), { mode: 0o750 });
  await chown(join(one, 'etc'), 5, 6);
  await chmod(join(one, 'etc'), 0o750);
  await writeFile(join(one, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await mkdir(join(one, 'gone'));
  await mkdir(join(one, 'usr', 'share'), { recursive: true });
  for (const path of ['etc', 'usr/share', 'usr', 'gone']) await utimes(join(one, path), BASE_TIME, BASE_TIME);
  snapshots.commit('one', 'tmp1');
  await snapshots.prepare('tmp2', 'one');
  const two = snapshots.dir('tmp2');
  whiteout(two, 'gone');
  await symlink('etc', join(two, 'lnk'));
  snapshots.commit('two', 'tmp2');

  const context = join(dir, 'context');
  await mkdir(join(context, 'src', 'sub'), { recursive: true });
  await writeFile(join(context, 'a.txt'), 'a\n');
  await writeFile(join(context, 'src', 'z'), 'z\n');
  await writeFile(join(context, 'src', 'sub', 'one'), 'one\n');
  await link(join(context, 'src', 'sub', 'one'), join(context, 'src', 'sub', 'two'));
  await symlink('sub/one', join(context, 'src', 'ln'));
  await chmod(join(context, 'src', 'z'), 0o640);
  for (const path of ['a.txt', 'src/z', 'src/sub/one', 'src/sub', 'src']) await utimes(join(context, path), CONTEXT_TIME, CONTEXT_TIME);
  // A .dockerignore that leaves a directory out and keeps a file below it.
  const ignoring = join(dir, 'ignoring');
  await mkdir(join(ignoring, 'dir', 'sub'), { recursive: true });
  await writeFile(join(ignoring, 'dir', 'sub', 'two'), '2\n');
  await writeFile(join(ignoring, 'dir', 'one'), '1\n');
  await writeFile(join(ignoring, '.dockerignore'), 'dir\n!dir/sub/two\n');
  return { snapshots, context: await BuildContext.open(context, noCache), ignoring: await BuildContext.open(ignoring, noCache), dir };
}

/** An overlay whiteout (a 0/0 character device), which node:fs cannot make. */
function whiteout(dir: string, name: string): void {
  execFileSync('mknod', [join(dir, name), 'c', '0', '0']);
}

let counter = 0;
/** Runs `work` on a new build snapshot over `two`, mounted; the upper directory and the lowers after. */
async function onStep<T>(setup: Awaited<ReturnType<typeof setUp>>, work: (rootfs: string, lowers: string[]) => Promise<T>): Promise<{ result: T; upper: string; lowers: string[] }> {
  const key = `step-${counter++}`;
  const [spec] = await setup.snapshots.prepare(key, 'two', 'build');
  const rootfs = join(setup.dir, `${key}-rootfs`);
  await mkdir(rootfs);
  assert.ok(spec);
  await mount(spec, rootfs);
  const lowers = setup.snapshots.lowerDirs(key);
  try {
    return { result: await work(rootfs, lowers), upper: setup.snapshots.dir(key), lowers };
  } finally {
    await unmount(rootfs);
  }
}

describe('a COPY made into its layer without writing files', { skip: !isRoot && 'mounting overlay needs root' }, () => {
  const plain: [string, CopyOp][] = [
    ['a directory to a new path', copy(['src'], '/data')],
    ['a file into a directory the image has (its mode, owner, time)', copy(['a.txt'], '/etc/')],
    ['a directory below a new one, with --chown and --chmod', copy(['src'], '/usr/share/x/y/', { chown: '7:8', chmod: 0o700 })],
    ['two sources into the root', copy(['src/z', 'a.txt'], '/')],
    ['the contents of a directory into a new one below an old one', copy(['src/'], '/etc/sub')],
  ];
  for (const [name, op] of plain) {
    it(`gives the layer runCopy and the overlay diff give: ${name}`, async () => {
      const setup = await setUp();
      const input = (rootfs: string) => ({ rootfs, source: setup.context, what: 'test', epoch: EPOCH });
      const fast = await onStep(setup, (rootfs, lowers) => copyAsLayer(op, input(rootfs), lowers));
      assert.ok(fast.result, 'a plain COPY takes the way without files');
      const written = await onStep(setup, (rootfs) => runCopy(op, input(rootfs)));
      assert.deepEqual(await read(fast.result()), await read(overlayLayerEntries(written.upper, written.lowers)));
      assert.deepEqual(await read(fast.result()), await read(fast.result()), 'each call makes the same entries anew');
      // Without the mount, reading the image through its layers: the same, but for a --chown's user to look up.
      const lowers = [setup.snapshots.dir('two'), ...setup.snapshots.lowerDirs('two')];
      const unmounted = await copyAsLayer(op, { ...input(join(setup.dir, 'not-mounted')), unmounted: (path) => entryInLayers(lowers, path) }, lowers);
      if (op.chown !== undefined) assert.equal(unmounted, undefined);
      else assert.deepEqual(await read((unmounted as NonNullable<typeof unmounted>)()), await read(fast.result()));
    });
  }

  const unusual: [string, CopyOp][] = [
    ['a file the image has', copy(['a.txt'], '/etc/passwd')],
    ['a destination through a symlink', copy(['a.txt'], '/lnk/')],
    ['a name a lower layer deleted (overlay would make it opaque)', copy(['src'], '/gone')],
    ['a heredoc', copy([], '/h', { inline: [{ name: 'h', content: 'x' }] })],
  ];
  for (const [name, op] of unusual) {
    it(`leaves it to the mount: ${name}`, async () => {
      const setup = await setUp();
      const fast = await onStep(setup, (rootfs, lowers) => copyAsLayer(op, { rootfs, source: setup.context, what: 'test' }, lowers));
      assert.equal(fast.result, undefined);
      const lowers = [setup.snapshots.dir('two'), ...setup.snapshots.lowerDirs('two')];
      assert.equal(await copyAsLayer(op, { rootfs: join(setup.dir, 'not-mounted'), source: setup.context, what: 'test', unmounted: (path) => entryInLayers(lowers, path) }, lowers), undefined);
    });
  }

  it('leaves it to the mount: a file kept below a directory .dockerignore leaves out', async () => {
    const setup = await setUp();
    const fast = await onStep(setup, (rootfs, lowers) => copyAsLayer(copy(['.'], '/ctx/'), { rootfs, source: setup.ignoring, what: 'test' }, lowers));
    assert.equal(fast.result, undefined);
  });
});

describe('a WORKDIR made into its layer without a mount', { skip: !isRoot && 'mounting overlay needs root' }, () => {
  const mkdirOp = (path: string, user = ''): Extract<Operation, { kind: 'mkdir' }> => ({ kind: 'mkdir', path, user });
  const cases: [string, string][] = [
    ['a new directory in the root', '/app'],
    ['new directories below old ones (their mode, owner, time)', '/usr/share/x/y'],
    ['a directory the image has (no change)', '/etc'],
  ];
  for (const [name, path] of cases) {
    it(`gives the layer mkdir through the mount and the overlay diff give: ${name}`, async () => {
      const setup = await setUp();
      const lowers = [setup.snapshots.dir('two'), ...setup.snapshots.lowerDirs('two')];
      const fast = await mkdirAsLayer(mkdirOp(path), { rootfs: join(setup.dir, 'not-mounted'), unmounted: (p) => entryInLayers(lowers, p) }, lowers);
      assert.ok(fast, 'a plain WORKDIR takes the way without a mount');
      const written = await onStep(setup, (rootfs) => runMkdir(mkdirOp(path), rootfs, 'test'));
      assert.deepEqual(await read(fast()), await read(overlayLayerEntries(written.upper, written.lowers)));
    });
  }
  const unusual: [string, Extract<Operation, { kind: 'mkdir' }>][] = [
    ['a path through a symlink', mkdirOp('/lnk/x')],
    ['a name a lower layer deleted', mkdirOp('/gone')],
    ['a file in the way', mkdirOp('/etc/passwd/x')],
    ["a USER's IDs to look up", mkdirOp('/app', 'root')],
  ];
  for (const [name, op] of unusual) {
    it(`leaves it to the mount: ${name}`, async () => {
      const setup = await setUp();
      const lowers = [setup.snapshots.dir('two'), ...setup.snapshots.lowerDirs('two')];
      assert.equal(await mkdirAsLayer(op, { rootfs: join(setup.dir, 'not-mounted'), unmounted: (p) => entryInLayers(lowers, p) }, lowers), undefined);
    });
  }
});

describe('reading an overlay through its layers (entryInLayers)', { skip: !isRoot && 'mounting overlay needs root' }, () => {
  it('shows what the mounted overlay shows, or says it is unsure', async () => {
    const dir = await tempDir('kiln-entry-in-layers-');
    // Three layers, nearest first: upper, middle, lower.
    const [upper, middle, lower] = ['upper', 'middle', 'lower'].map((name) => join(dir, name)) as [string, string, string];
    for (const layer of [upper, middle, lower]) await mkdir(layer);
    await mkdir(join(lower, 'd', 'sub'), { recursive: true });
    await writeFile(join(lower, 'd', 'sub', 'f'), 'lower');
    await writeFile(join(lower, 'd', 'old'), 'lower');
    await mkdir(join(lower, 'o', 'hidden'), { recursive: true });
    await mkdir(join(lower, 'w'));
    await writeFile(join(lower, 'w', 'x'), 'x');
    await mkdir(join(lower, 'file-then-dir'));
    await writeFile(join(lower, 'file-then-dir', 'below'), 'b');
    await writeFile(join(lower, 'f'), 'lower');
    await mkdir(join(middle, 'd'), { mode: 0o700 });
    await chmod(join(middle, 'd'), 0o700);
    await writeFile(join(middle, 'd', 'new'), 'middle');
    whiteout(middle, 'w');
    await writeFile(join(middle, 'file-then-dir'), 'file');
    await mkdir(join(middle, 'o'));
    execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(middle, 'o')]);
    await writeFile(join(middle, 'o', 'mine'), 'm');
    await symlink('d', join(middle, 'ln'));
    await mkdir(join(upper, 'file-then-dir'));
    await mkdir(join(upper, 'd'));
    await utimes(join(upper, 'd'), BASE_TIME, BASE_TIME);
    whiteout(upper, 'f');
    const merged = join(dir, 'merged');
    const work = join(dir, 'work');
    await mkdir(merged);
    await mkdir(work);
    await mount({ type: 'overlay', source: 'overlay', options: [`lowerdir=${middle}:${lower}`, `upperdir=${upper}`, `workdir=${work}`] }, merged);
    try {
      const paths = ['d', 'd/sub', 'd/sub/f', 'd/old', 'd/new', 'o', 'o/hidden', 'o/mine', 'w', 'w/x', 'file-then-dir', 'file-then-dir/below', 'f', 'ln', 'ln/sub', 'nothing', 'nothing/below'];
      for (const path of paths) {
        const seen = entryInLayers([upper, middle, lower], path);
        const real = await lstat(join(merged, path)).catch(() => undefined);
        if (seen === 'unsure') {
          assert.equal(path, 'ln/sub', `${path}: only a symlink on the way is unsure here`);
          continue;
        }
        const shape = (st: typeof real) => st && { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'file', mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
        assert.deepEqual(shape(seen), shape(real), path);
      }
    } finally {
      await unmount(merged);
    }
  });
});

describe('listing a context directory', () => {
  it('native/sys and the JS walk give the same entries', { skip: !sys()?.listdir && 'native/sys is not built (or built before listdir)' }, async () => {
    const dir = await tempDir('kiln-listdir-');
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'f'), 'x'.repeat(5000));
    await link(join(dir, 'f'), join(dir, 'hard'));
    await symlink('../somewhere/else', join(dir, 'ln'));
    await writeFile(join(dir, 'é ü'), '');
    await chmod(join(dir, 'é ü'), 0o4751);
    await utimes(join(dir, 'd'), 1234567890.123456, -1.5);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const native = listDirectory(true)(dir, 'p/');
    assert.deepEqual(native, listDirectory(false)(dir, 'p/'));
    assert.deepEqual(native.map((e) => [e.path, e.type]), [['p/d', 'directory'], ['p/f', 'file'], ['p/fifo', 'other'], ['p/hard', 'file'], ['p/ln', 'symlink'], ['p/é ü', 'file']]);
    assert.equal(native.find((e) => e.path === 'p/hard')?.inode, native.find((e) => e.path === 'p/f')?.inode);
  });
});
