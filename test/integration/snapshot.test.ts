import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { overlayLayerEntries } from '../../src/layer/diff.js';
import { sys } from '../../src/sys.js';
import { KilnError } from '../../src/errors.js';
import { MetaDb } from '../../src/meta/db.js';
import { Snapshotter, detectDriver, mount, unmount } from '../../src/snapshot/snapshotter.js';
import { isRoot, tempDir } from '../helpers/paths.js';

async function newSnapshotter(driver: 'overlay' | 'vfs'): Promise<Snapshotter> {
  const root = await tempDir('kiln-snap-');
  return new Snapshotter(root, new MetaDb(join(root, 'kiln.db')), driver);
}

describe('snapshots', { skip: !isRoot && 'mounting needs root' }, () => {
  it('overlay is detected where it mounts', async () => {
    assert.equal(await detectDriver(await tempDir()), 'overlay');
  });

  it('a new store asked for its driver many times at once (requests kiln serve takes together) probes once and records it', async () => {
    const root = await tempDir();
    assert.deepEqual(await Promise.all(Array.from({ length: 6 }, () => detectDriver(root))), Array(6).fill('overlay'));
    assert.deepEqual((await readdir(root)).sort(), ['storage-driver']);
  });

  it('a probe another live kiln is making on a new store is left alone; a dead one\'s, or an unnamed one, is removed', async () => {
    const root = await tempDir();
    // The parent of this test process lives; pid 2^22 + 1 is beyond Linux's pid_max, so nobody's.
    const live = `overlay-probe-${process.ppid}-0123abcd`;
    const dead = `overlay-probe-${(1 << 22) + 1}-0123abcd`;
    const old = 'overlay-probe-Xy12Zw';
    for (const name of [live, dead, old]) await mkdir(join(root, name, 'm'), { recursive: true });
    assert.equal(await detectDriver(root), 'overlay');
    assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('overlay-probe-')), [live]);
  });

  for (const driver of ['overlay', 'vfs'] as const) {
    it(`${driver}: a chain of 130 layers mounts with every layer visible (overlay options stay short)`, async () => {
      const snapshots = await newSnapshotter(driver);
      let parent: string | undefined;
      for (let i = 0; i < 130; i++) {
        await snapshots.prepare(`tmp-${i}`, parent);
        await writeFile(join(snapshots.dir(`tmp-${i}`), `layer-${String(i).padStart(3, '0')}`), String(i));
        snapshots.commit(`layer-${i}`, `tmp-${i}`);
        parent = `layer-${i}`;
      }
      const [spec] = await snapshots.prepare('container', parent);
      assert.ok(spec);
      if (driver === 'overlay') assert.ok(spec.options.join(',').length < 4096, 'fits in one page');
      const target = join(await tempDir(), 'merged');
      await mkdir(target);
      await mount(spec, target);
      try {
        const names = await readdir(target);
        assert.equal(names.length, 130);
        await writeFile(join(target, 'written-by-container'), 'x');
      } finally {
        await unmount(target);
      }
      assert.ok((await readdir(snapshots.dir('container'))).includes('written-by-container'), 'writes land in the active snapshot');
      assert.deepEqual(await snapshots.usage('container'), driver === 'overlay' ? { size: 1, inodes: 1 } : { size: 10 * 1 + 90 * 2 + 30 * 3 + 1, inodes: 131 });
      await assert.rejects(snapshots.remove('layer-129'), /has children/);
      await snapshots.remove('container');
      await snapshots.remove('layer-129');
      assert.equal(snapshots.list().length, 129);
    });
  }

  it('soleHolder: the one layer that holds a path whole, else none (in two layers, under a whiteout, through a symlink)', async () => {
    const snapshots = await newSnapshotter('overlay');
    const layer = async (name: string, parent: string | undefined, make: (dir: string) => Promise<void>): Promise<string> => {
      await snapshots.prepare(`tmp-${name}`, parent);
      await make(snapshots.dir(`tmp-${name}`));
      snapshots.commit(name, `tmp-${name}`);
      return snapshots.dir(name);
    };
    const base = await layer('base', undefined, async (dir) => {
      await mkdir(join(dir, 'etc'));
      await mkdir(join(dir, 'gone'));
      await writeFile(join(dir, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    });
    const middle = await layer('middle', 'base', async (dir) => {
      await mkdir(join(dir, 'out', 'deep'), { recursive: true });
      await writeFile(join(dir, 'out', 'deep', 'f'), 'f');
      await mkdir(join(dir, 'etc'));
      await writeFile(join(dir, 'etc', 'added'), 'a');
      await symlink('/out', join(dir, 'link'));
    });
    await layer('top', 'middle', async (dir) => {
      execFileSync('mknod', [join(dir, 'gone'), 'c', '0', '0']); // the whiteout of the base's directory
      await mkdir(join(dir, 'made'));
    });
    assert.equal(snapshots.soleHolder('top', '/out'), middle);
    assert.equal(snapshots.soleHolder('top', '/out/deep/f'), middle);
    assert.equal(snapshots.soleHolder('top', '/made'), snapshots.dir('top'));
    assert.equal(snapshots.soleHolder('middle', '/etc/passwd'), undefined, 'etc is in two layers: only a merged view has both files');
    assert.equal(snapshots.soleHolder('base', '/etc/passwd'), base);
    assert.equal(snapshots.soleHolder('top', '/gone'), undefined, 'whited out above');
    assert.equal(snapshots.soleHolder('top', '/link/deep'), undefined, 'a symlink resolves in the merged tree');
    assert.equal(snapshots.soleHolder('top', '/out/missing'), undefined);
    assert.equal(snapshots.soleHolder('top', '/'), undefined);
  });

  it('a layer another kiln process committed first under the same key is a CONFLICT for the second, which then drops its copy', async () => {
    const root = await tempDir('kiln-snap-');
    const [first, second] = [0, 1].map(() => new Snapshotter(root, new MetaDb(join(root, 'kiln.db')), 'overlay')) as [Snapshotter, Snapshotter];
    await first.prepare('tmp-1', undefined);
    await second.prepare('tmp-2', undefined);
    first.commit('layer', 'tmp-1');
    assert.throws(() => second.commit('layer', 'tmp-2'), (err: unknown) => err instanceof KilnError && err.code === 'CONFLICT' && /snapshot layer already exists/.test(err.message));
    await second.remove('tmp-2');
    assert.equal(second.has('layer'), true);
    assert.equal(second.has('tmp-2'), false);
  });

  it('shares committed snapshots: a view on a parent does not copy it (overlay)', async () => {
    const snapshots = await newSnapshotter('overlay');
    await snapshots.prepare('tmp', undefined);
    await writeFile(join(snapshots.dir('tmp'), 'f'), 'base');
    snapshots.commit('base', 'tmp');
    const [a] = await snapshots.view('view-a', 'base');
    const [b] = await snapshots.prepare('active-b', 'base');
    assert.ok(a?.options.some((o) => o.includes('lowerdir=')));
    assert.ok(b?.options.some((o) => o.includes('upperdir=')));
    assert.deepEqual(await readdir(snapshots.dir('view-a')), [], 'nothing copied');
    assert.throws(() => snapshots.commit('again', 'view-a'), /only active snapshots can be committed/);
  });

  it("a build step's snapshot mounts volatile from the store's directory (not the process's), and a directory made over a deleted one is opaque in its layer", async () => {
    const snapshots = await newSnapshotter('overlay');
    await snapshots.prepare('tmp', undefined);
    await mkdir(join(snapshots.dir('tmp'), 'd'));
    await writeFile(join(snapshots.dir('tmp'), 'd', 'old'), 'old');
    snapshots.commit('base', 'tmp');
    const [container] = await snapshots.prepare('container', 'base');
    assert.ok(container && !container.options.includes('volatile'), "a container's upper is mounted again after a reboot: never volatile");
    const [step] = await snapshots.prepare('step', 'base', 'build');
    assert.ok(step);
    assert.ok(step.options.includes('volatile'));
    assert.equal(step.cwd, snapshots.root);
    assert.ok(step.options.some((o) => o.startsWith('lowerdir=') && !o.startsWith('lowerdir=/')), 'lower dirs are relative to the store');
    const target = join(await tempDir(), 'merged');
    await mkdir(target);
    const cwd = process.cwd();
    await mount(step, target);
    try {
      assert.equal(process.cwd(), cwd);
      await rm(join(target, 'd'), { recursive: true });
      await mkdir(join(target, 'd'));
      await writeFile(join(target, 'd', 'new'), 'new');
    } finally {
      await unmount(target);
    }
    const upper = snapshots.dir('step');
    const paths: string[] = [];
    for await (const entry of overlayLayerEntries(upper, snapshots.lowerDirs('step'))) paths.push(entry.header.path);
    assert.deepEqual(paths, ['d/', 'd/.wh..wh..opq', 'd/new']);
    // native/sys reads the mark as attr's getfattr does (the fallback when it is not built).
    const getfattr = execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(upper, 'd')], { encoding: 'utf8' });
    assert.equal(getfattr, 'y');
    if (sys()) assert.equal(sys()?.getxattr(join(upper, 'd'), 'trusted.overlay.opaque'), 'y');
  });
});
