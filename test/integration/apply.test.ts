import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadImages } from '../../src/engine/archive.js';
import { Engine } from '../../src/engine/engine.js';
import { isKilnError } from '../../src/errors.js';
import { applyLayer, applyLayerOffThread } from '../../src/layer/apply.js';
import { decompressStream } from '../../src/layer/compression.js';
import { writeTar } from '../../src/layer/tar/writer.js';
import { layerCompression } from '../../src/oci/mediatypes.js';
import { expectedWhiteoutsTree, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { HOSTILE_LAYERS, SOUND_LAYERS, file, h } from '../helpers/hostile-layers.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { assertTreeMatches } from '../helpers/rootfs.js';

const WHITEOUTS = ['whiteouts-docker20-save.tar', 'whiteouts-oci-layout', 'whiteouts-oci-zstd'] as const;
// The layers Docker built, and the tree Docker exported from them (both made in this run).
const unavailable = isRoot ? await fixturesUnavailable(...WHITEOUTS, 'whiteouts-expected-rootfs.json') : undefined;

/** The layers of a fixture image as uncompressed streams, bottom first. */
async function fixtureLayers(name: (typeof WHITEOUTS)[number]): Promise<(() => Promise<AsyncIterable<Uint8Array>>)[]> {
  const engine = await Engine.open(await tempDir('kiln-apply-store-'));
  await loadImages(engine, { path: await fixture(name) }, () => undefined);
  const image = await engine.store.image(engine.image('whiteouts:lab'));
  return image.layers.map((layer) => async () => decompressStream(await layer.open(), layerCompression(layer.mediaType) ?? 'none'));
}

const SKIP = ['/dev', '/proc', '/sys'];

async function expected() {
  // /etc/mtab comes from Docker's per-container init layer, not from the image.
  return (await expectedWhiteoutsTree()).filter((e) => e.path !== '/etc/mtab');
}

describe('applying layers', { skip: unavailable }, () => {
  it('on a worker thread, as a pull applies a large layer, gives the same tree', { skip: !isRoot && 'owners 1000:1000 need root' }, async () => {
    const root = join(await tempDir(), 'rootfs');
    await mkdir(root);
    for (const [i, open] of (await fixtureLayers('whiteouts-docker20-save.tar')).entries()) await applyLayerOffThread(root, await open(), { whiteouts: 'delete', what: `layer ${i + 1}` });
    await assertTreeMatches(root, await expected(), SKIP);
  });

  for (const name of WHITEOUTS) {
    it(`${name}: applied in order with deletions (vfs), gives the tree Docker exported`, { skip: !isRoot && 'owners 1000:1000 need root' }, async () => {
      const root = join(await tempDir(), 'rootfs');
      await mkdir(root);
      for (const [i, open] of (await fixtureLayers(name)).entries()) await applyLayer(root, await open(), { whiteouts: 'delete', what: `layer ${i + 1}` });
      await assertTreeMatches(root, await expected(), SKIP);
    });

    it(`${name}: each layer its own overlay lower dir, mounted, gives the same tree`, { skip: !isRoot && 'overlay mounts and whiteout devices need root' }, async () => {
      const dir = await tempDir();
      const lowers: string[] = [];
      for (const [i, open] of (await fixtureLayers(name)).entries()) {
        const layerDir = join(dir, `l${i}`);
        await mkdir(layerDir);
        await applyLayer(layerDir, await open(), { whiteouts: 'overlay', what: `layer ${i + 1}` });
        lowers.unshift(layerDir);
      }
      const merged = join(dir, 'merged');
      await mkdir(merged);
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowers.join(':')}`, merged]);
      try {
        await assertTreeMatches(merged, await expected(), SKIP);
      } finally {
        execFileSync('umount', [merged]);
      }
    });
  }
});

async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (rel === '' && name.name === 'root') continue;
      out.push(`${rel}/${name.name}`);
      if (name.isDirectory()) await walk(join(d, name.name), `${rel}/${name.name}`);
    }
  };
  await walk(dir, '');
  return out;
}

describe('modes and repeated names', () => {
  // Files are created with their permission bits, and chmod runs only when the umask or special bits need it.
  for (const apply of [applyLayer, applyLayerOffThread]) {
    it(`every mode survives the umask, special bits and chown, and a later entry replaces an earlier one${apply === applyLayerOffThread ? ' (on a worker thread)' : ''}`, { skip: !isRoot && 'setuid files owned by 1000 need root' }, async () => {
      const root = join(await tempDir(), 'rootfs');
      await mkdir(root);
      const mode = (path: string) => (statSync(join(root, path)).mode & 0o7777).toString(8);
      await applyLayer(root, writeTar([h('pre/', 'directory'), file('pre/old'), h('pre/dir/', 'directory')]), { whiteouts: 'delete' });
      await apply(root, writeTar([
        h('d/', 'directory', { mode: 0o700 }),
        h('d/shared', 'file', { mode: 0o666, size: 1 }),
        h('d/readonly', 'file', { mode: 0o400, size: 1 }),
        h('d/setuid', 'file', { mode: 0o4755, size: 1 }),
        h('d/setgid', 'file', { mode: 0o2755, uid: 1000, gid: 1000, size: 1 }),
        h('d/twice', 'file', { size: 1 }),
        h('d/twice', 'file', { mode: 0o600, size: 3 }),
        h('d/was-file', 'file', { size: 1 }),
        h('d/was-file/', 'directory'),
        h('pre/old', 'file', { mode: 0o640, size: 2 }),
        h('pre/dir', 'file', { size: 1 }),
        file('implicit/parent/f'), // its directories come after it, or not at all
        h('implicit/parent/', 'directory', { mode: 0o750 }),
        h('implicit/', 'directory', { mode: 0o751 }),
      ]), { whiteouts: 'delete' });
      assert.deepEqual(['implicit', 'implicit/parent'].map((p) => `${p} ${mode(p)}`), ['implicit 751', 'implicit/parent 750']);
      assert.equal(await readFile(join(root, 'implicit/parent/f'), 'utf8'), 'xxxx');
      assert.deepEqual(
        ['d', 'd/shared', 'd/readonly', 'd/setuid', 'd/setgid', 'd/twice', 'pre/old'].map((p) => `${p} ${mode(p)}`),
        ['d 700', 'd/shared 666', 'd/readonly 400', 'd/setuid 4755', 'd/setgid 2755', 'd/twice 600', 'pre/old 640'],
      );
      assert.equal(statSync(join(root, 'd/setgid')).uid, 1000);
      assert.equal(await readFile(join(root, 'd/twice'), 'utf8'), 'xxx');
      assert.ok(statSync(join(root, 'd/was-file')).isDirectory());
      assert.equal(await readFile(join(root, 'pre/old'), 'utf8'), 'xx');
      assert.ok(statSync(join(root, 'pre/dir')).isFile());
    });
  }
});

describe('opaque directories (vfs)', () => {
  it('keep what this layer writes under them, also under a directory it has no entry for, and nothing from below', async () => {
    const root = join(await tempDir(), 'rootfs');
    await mkdir(root);
    await applyLayer(root, writeTar([h('o/', 'directory'), file('o/gone'), h('o/x/', 'directory'), file('o/x/gone'), file('o/x/kept')]), { whiteouts: 'delete' });
    await applyLayer(root, writeTar([h('o/.wh..wh..opq', 'file'), file('o/x/kept'), file('o/new/deep/f')]), { whiteouts: 'delete' });
    assert.deepEqual(await snapshot(join(root, 'o')), ['/new', '/new/deep', '/new/deep/f', '/x', '/x/kept']);
  });
});

describe('handing chunks to the worker', () => {
  it('moves a chunk that owns its ArrayBuffer, copies a slice and a chunk of the Buffer pool, and applies them all', async () => {
    const tar: Buffer[] = [];
    for await (const c of writeTar([h('d/', 'directory'), h('d/big', 'file', { size: 20_000 }), h('d/small', 'file', { size: 3 })])) tar.push(c);
    const bytes = Buffer.concat(tar);
    const pooled = Buffer.from(Buffer.allocUnsafe(1).buffer); // the whole of Node's (untransferable) pool
    bytes.copy(pooled, 0, 0, pooled.length);
    const owned = new Uint8Array(bytes.subarray(pooled.length, pooled.length + 4096));
    const sliced = bytes.subarray(pooled.length + 4096);
    const root = join(await tempDir(), 'rootfs');
    await mkdir(root);
    await applyLayerOffThread(root, (async function* () { yield pooled; yield owned; yield sliced; })(), { whiteouts: 'delete' });
    assert.equal(owned.length, 0, 'moved, not copied');
    assert.equal(sliced.length, bytes.length - pooled.length - 4096, 'a slice of a larger buffer is copied');
    assert.equal(pooled.length, 8192, 'the pool stays usable');
    assert.equal((await readFile(join(root, 'd/big'))).toString(), 'x'.repeat(20_000));
    assert.equal(await readFile(join(root, 'd/small'), 'utf8'), 'xxx');
  });
});

describe('hostile layers are refused and write nothing outside the root', () => {
  it(`has at least 30 cases (${HOSTILE_LAYERS.length + 3})`, () => assert.ok(HOSTILE_LAYERS.length + 3 >= 30));

  // On a worker thread (as a pull unpacks a large layer while it downloads), the same refusals.
  for (const [{ name, entries, message, options }, apply, where] of HOSTILE_LAYERS.flatMap((c) => [[c, applyLayer, ''], [c, applyLayerOffThread, ' (on a worker thread)']] as const)) {
    it(`${name}${where}`, async () => {
      const sandbox = await tempDir('kiln-hostile-');
      const root = join(sandbox, 'root');
      await mkdir(root);
      await mkdir(join(sandbox, 'outside'));
      await writeFile(join(sandbox, 'outside', 'secret'), 'keep me');
      const before = await snapshot(sandbox);
      await assert.rejects(
        apply(root, writeTar(entries), { whiteouts: options?.whiteouts ?? 'delete', privileged: options?.privileged, what: 'hostile layer' }),
        (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message) && err.message.startsWith('hostile layer: entry '),
      );
      assert.deepEqual(await snapshot(sandbox), before, 'nothing changed outside the root');
      assert.equal(await readFile(join(sandbox, 'outside', 'secret'), 'utf8'), 'keep me');
    });
  }

  for (const { name, entries } of SOUND_LAYERS) {
    it(`not refused: ${name}`, async () => {
      const sandbox = await tempDir('kiln-sound-');
      await applyLayer(sandbox, writeTar(entries), { whiteouts: 'delete', what: 'sound layer' });
    });
  }

  for (const [name, mutate, message] of [
    ['a truncated layer', (b: Buffer) => b.subarray(0, 700), /unexpected end of data/],
    ['a corrupt header', (b: Buffer) => Buffer.concat([b.subarray(0, 100), Buffer.from('garbage!'), b.subarray(108)]), /bad header checksum/],
    ['a sparse entry', (b: Buffer) => {
      const copy = Buffer.from(b);
      copy[156] = 'S'.charCodeAt(0);
      copy.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += copy[i] as number;
      copy.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return copy;
    }, /sparse/],
  ] as const) {
    it(name, async () => {
      const sandbox = await tempDir('kiln-hostile-');
      const root = join(sandbox, 'root');
      await mkdir(root);
      const chunks: Buffer[] = [];
      for await (const c of writeTar([file('a'), file('b')])) chunks.push(c);
      const bytes = mutate(Buffer.concat(chunks));
      await assert.rejects(applyLayer(root, (async function* () { yield bytes; })(), { whiteouts: 'delete' }), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message));
      assert.deepEqual(await readdir(sandbox), ['root']);
    });
  }
});

describe('extended attributes', { skip: !isRoot && 'security.* attributes need root' }, () => {
  it('applies file capabilities and user attributes, never overlay\'s own', async () => {
    const root = join(await tempDir(), 'rootfs');
    await mkdir(root);
    const capability = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_raw+ep
    await applyLayer(root, writeTar([
      h('bin/', 'directory'),
      { header: { path: 'bin/ping', type: 'file', mode: 0o755, uid: 0, gid: 0, size: 2, mtime: 0, xattrs: new Map([['security.capability', capability], ['user.note', Buffer.from([0, 1, 0xff])]]) }, body: Buffer.from('#!') },
      { header: { path: 'sneaky/', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, xattrs: new Map([['trusted.overlay.opaque', Buffer.from('y')]]) } },
    ]), { whiteouts: 'delete' });
    const dump = (name: string, path: string) => spawnSync('getfattr', ['-h', '-e', 'hex', '-n', name, path], { encoding: 'utf8' }).stdout;
    assert.match(dump('security.capability', join(root, 'bin/ping')), /security\.capability=0x0100000200200000000000000000000000000000/);
    assert.match(dump('user.note', join(root, 'bin/ping')), /user\.note=0x0001ff/);
    assert.equal(dump('trusted.overlay.opaque', join(root, 'sneaky')), '');
  });
});
