import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { writeTar } from '../../src/layer/tar/writer.js';
import { HOSTILE_LAYERS, file, imageArchive, sym } from '../helpers/hostile-layers.js';
import { newKiln, ok } from '../helpers/kiln.js';
import { dockerFacts, fixture, fixturesUnavailable, ociLayoutImage } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';

/** Makes a tar of a directory with GNU tar. */
function tarOf(dir: string, out: string): string {
  execFileSync('tar', ['-C', dir, '-cf', out, '.']);
  return out;
}

/** Extracts the legacy busybox save into a directory that a case then damages. */
async function legacyTree(): Promise<string> {
  const dir = join(await tempDir(), 'tree');
  await mkdir(dir);
  execFileSync('tar', ['-C', dir, '-xf', await fixture('busybox-docker20-save.tar')]);
  return dir;
}

/** A copy of skopeo's OCI layout of the whiteouts image, and the hex digests of its layer blobs. */
async function ociTree(): Promise<{ dir: string; layers: string[] }> {
  const dir = join(await tempDir(), 'layout');
  await cp(await fixture('whiteouts-oci-layout'), dir, { recursive: true });
  return { dir, layers: (await ociLayoutImage('whiteouts-oci-layout')).layers.map((digest) => digest.slice('sha256:'.length)) };
}

/** Loads `input`, expects a one-line error matching `message`, and a store left exactly as it was. */
async function assertRefused(input: string, message: RegExp): Promise<void> {
  const { root, kiln } = await newKiln();
  const result = await kiln(['load', '-i', input]);
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^Error: [^\n]+\n$/, 'one line, no stack trace');
  assert.match(result.stderr, message);
  assert.equal((await ok(kiln(['images', '-q', '-a']))).stdout, '');
  assert.deepEqual(await readdir(join(root, 'blobs', 'sha256')), [], 'no blob stays behind');
  assert.match((await ok(kiln(['system', 'check']))).stdout, /^0 blobs verified, 0 images, 0 names: clean\n$/);
}

describe('hostile and damaged inputs leave the store unchanged', { skip: await fixturesUnavailable('busybox-docker20-save.tar', 'whiteouts-oci-layout', 'busybox-rootfs.tar') }, () => {
  it('a truncated archive', async () => {
    const file = join(await tempDir(), 'cut.tar');
    await cp(await fixture('busybox-docker20-save.tar'), file);
    await truncate(file, 1_000_000);
    await assertRefused(file, /unexpected end|truncated|missing/i);
  });

  it('a layer whose content does not match the diffID in its config', async () => {
    const dir = await legacyTree();
    const [layerDir] = (await readdir(dir)).filter((n) => /^[a-f0-9]{64}$/.test(n));
    const layer = join(dir, layerDir as string, 'layer.tar');
    const bytes = await readFile(layer);
    bytes[bytes.length - 1] = 0x41; // a byte after the end-of-archive marker: still a valid tar
    await writeFile(layer, bytes);
    const [diffId = ''] = (await dockerFacts('busybox')).inspect.RootFS.Layers;
    await assertRefused(tarOf(dir, join(await tempDir(), 'a.tar')), new RegExp(`hashes to sha256:[a-f0-9]{64}, but the image config says ${diffId}`));
  });

  it('a blob that does not match its digest in an OCI layout', async () => {
    const { dir, layers } = await ociTree();
    const blobs = join(dir, 'blobs', 'sha256');
    const victim = layers.at(-1) ?? '';
    const bytes = await readFile(join(blobs, victim));
    bytes[20] = (bytes[20] ?? 0) ^ 0xff;
    await writeFile(join(blobs, victim), bytes);
    await assertRefused(dir, /corrupt|do(es)? not match|DIGEST|hashes? to/i);
  });

  it('a manifest that points at a missing blob', async () => {
    const { dir, layers } = await ociTree();
    const missing = layers[1] ?? '';
    await rm(join(dir, 'blobs', 'sha256', missing));
    await assertRefused(dir, new RegExp(`${missing.slice(0, 12)}.* is missing|missing`));
  });

  it('a name with .. in manifest.json', async () => {
    const dir = await legacyTree();
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { RepoTags: string[] }[];
    (manifest[0] as { RepoTags: string[] }).RepoTags = ['../../evil:lab'];
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    await assertRefused(tarOf(dir, join(await tempDir(), 'a.tar')), /\.\.\/\.\.\/evil:lab/);
  });

  it('a layer path that climbs out of the archive', async () => {
    const dir = await legacyTree();
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    (manifest[0] as { Layers: string[] }).Layers = ['../../../etc/passwd'];
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    await assertRefused(tarOf(dir, join(await tempDir(), 'a.tar')), /outside the archive/);
  });

  it('a 100 MB manifest.json', async () => {
    const dir = await legacyTree();
    await writeFile(join(dir, 'manifest.json'), Buffer.alloc(100 << 20, 0x20));
    await assertRefused(tarOf(dir, join(await tempDir(), 'a.tar')), /manifest\.json is \d+ bytes, more than/);
  });

  it('a file that is not an image archive', async () => {
    await assertRefused(await fixture('busybox-rootfs.tar'), /not an image archive.*kiln import/);
  });

  it('bytes that are not a tar at all', async () => {
    const file = join(await tempDir(), 'junk.tar');
    await writeFile(file, Buffer.alloc(4096, 0x5a));
    await assertRefused(file, /tar/i);
  });
});

describe('the store refuses at its door what no unpack could place inside the root', () => {
  // Every case of HOSTILE_LAYERS that is unsafe whatever lies below is refused by the scan (see
  // test/unit/layer-escapes.test.ts); here a few of them reach it through load and import.
  for (const name of ['a file through an absolute symlink', 'a hardlink that climbs out', 'a file through a hardlink to a symlink', 'an opaque marker through a symlink']) {
    it(`kiln load: ${name}, in an image's second layer`, async () => {
      const hostile = HOSTILE_LAYERS.find((c) => c.name === name);
      assert.ok(hostile?.atIngest);
      const archive = await imageArchive(join(await tempDir(), 'hostile.tar'), 'hostile:1', [[file('fine')], hostile.entries]);
      await assertRefused(archive, new RegExp(`: layer 2 of 2: entry "[^"]+" .*${hostile.message.source}`));
    });
  }

  it('kiln load of an image of 126 layers, one more than Docker stacks, writes nothing', async () => {
    const layers = Array.from({ length: 126 }, (_, i) => [file(`f${i}`)]);
    await assertRefused(await imageArchive(join(await tempDir(), 'deep.tar'), 'deep:1', layers), /: the image has 126 layers, more than the 125 an image can have \(max depth exceeded\)$/m);
  });

  it('kiln import: a root filesystem with a symlink written through', async () => {
    const { root, kiln } = await newKiln();
    const rootfs = join(await tempDir(), 'rootfs.tar');
    await writeFile(rootfs, await buffer(writeTar([sym('etc', '/etc'), file('etc/cron.d/evil')])));
    const result = await kiln(['import', rootfs, 'hostile:1']);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'Error: imported root filesystem: entry "etc/cron.d/evil" would be written through the symlink "etc"\n');
    assert.deepEqual(await readdir(join(root, 'blobs', 'sha256')), [], 'no blob stays behind');
  });

  it('kiln import of an empty file is refused; an empty tar is an image with no files', async () => {
    const { root, kiln } = await newKiln();
    const dir = await tempDir();
    await writeFile(join(dir, 'empty'), '');
    for (const [args, input] of [[['import', join(dir, 'empty'), 'empty:1'], undefined], [['import', '-', 'empty:1'], '']] as const) {
      const result = await kiln(args, input);
      assert.equal(result.code, 1, args.join(' '));
      assert.equal(result.stderr, 'Error: import: the input is empty, not a tar archive (for an image with no files, import an empty tar: tar -cf empty.tar -T /dev/null)\n');
    }
    assert.equal((await ok(kiln(['images', '-q', '-a']))).stdout, '');
    assert.deepEqual(await readdir(join(root, 'blobs', 'sha256')), [], 'no blob stays behind');
    execFileSync('tar', ['-cf', join(dir, 'empty.tar'), '-T', '/dev/null']);
    await ok(kiln(['import', join(dir, 'empty.tar'), 'empty:1']));
    assert.match((await ok(kiln(['inspect', '-f', '{{.Size}} {{len .RootFS.Layers}}', 'empty:1']))).stdout, /^0 1\n$/);
  });

  it('kiln load of an archive whose manifest.json lists no image', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'manifest.json'), '[]');
    await assertRefused(tarOf(dir, join(await tempDir(), 'none.tar')), /: no images found in the archive \(its manifest\.json lists none\)$/m);
  });
});
