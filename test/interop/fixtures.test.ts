import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newKiln, ok } from '../helpers/kiln.js';
import { fixturesDir, isRoot, tempDir } from '../helpers/paths.js';
import { assertTreeMatches, expectedWhiteoutsTree } from '../helpers/rootfs.js';

const BUSYBOX_ID = 'sha256:6ecc29ffc19e62d3521d74c3aa3a3dd53dccadb0ceb6d59fedd32486666a0c62';
const WHITEOUTS_ID = 'sha256:0762feae08f0d91d3829c5818de04335fde708c65aecef4d5dc3863ef6e5409c';
const BUSYBOX_DIFF = 'sha256:3d4218ba55fb3ae9cc2f557341f0b8504531e0bbf955b5007445449f8baf2c91';
const WHITEOUTS_DIFFS = [BUSYBOX_DIFF, 'sha256:7877502f9818fba5133407a45ad6d5dbba062bef6e598b8fa690f77c6627ad09', 'sha256:8d2007b648b5b276f4e11c23cb6417a0a07202335ff363a25fa3c606c88a952a'];

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** The config digest of the image the OCI layout fixture's index points at (skopeo rewrote the config). */
async function layoutConfigDigest(layout: string): Promise<string> {
  const index = JSON.parse(await readFile(join(fixturesDir, layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest ?? '';
  const manifest = JSON.parse(await readFile(join(fixturesDir, layout, 'blobs/sha256', manifestDigest.slice(7)), 'utf8')) as { config: { digest: string } };
  return manifest.config.digest;
}

interface Inspect {
  Id: string;
  RepoTags: string[];
  RootFS: { Layers: string[] };
}

async function inspect(kiln: Awaited<ReturnType<typeof newKiln>>['kiln'], name: string): Promise<Inspect> {
  const [item] = JSON.parse((await ok(kiln(['image', 'inspect', name]))).stdout) as Inspect[];
  assert.ok(item);
  return item;
}

describe('loading images made by Docker and skopeo', () => {
  it('loads a Docker 20.10 save with the image ID and diffID Docker gave it', async () => {
    const { kiln } = await newKiln();
    const out = await ok(kiln(['load', '-i', join(fixturesDir, 'busybox-docker20-save.tar')]));
    assert.equal(out.stdout, 'Loaded image: busybox:lab\n');
    const image = await inspect(kiln, 'busybox:lab');
    assert.equal(image.Id, BUSYBOX_ID);
    assert.deepEqual(image.RootFS.Layers, [BUSYBOX_DIFF]);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('loads the three-layer whiteouts image from stdin', async () => {
    const { kiln } = await newKiln();
    const out = await ok(kiln(['load'], await readFile(join(fixturesDir, 'whiteouts-docker20-save.tar'))));
    assert.equal(out.stdout, 'Loaded image: whiteouts:lab\n');
    const image = await inspect(kiln, 'whiteouts:lab');
    assert.equal(image.Id, WHITEOUTS_ID);
    assert.deepEqual(image.RootFS.Layers, WHITEOUTS_DIFFS);
  });

  for (const layout of ['whiteouts-oci-layout', 'whiteouts-oci-zstd']) {
    it(`loads the OCI layout directory ${layout} (named by its ref.name annotation)`, async () => {
      const { kiln } = await newKiln();
      const out = await ok(kiln(['load', '-i', join(fixturesDir, layout)]));
      assert.equal(out.stdout, 'Loaded image: whiteouts:lab\n');
      const image = await inspect(kiln, 'whiteouts:lab');
      assert.equal(image.Id, await layoutConfigDigest(layout));
      assert.deepEqual(image.RootFS.Layers, WHITEOUTS_DIFFS);
    });
  }

  it('loads an oci-archive tar', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', join(fixturesDir, 'whiteouts-oci-archive.tar')]));
    const image = await inspect(kiln, 'whiteouts:lab');
    assert.equal(image.Id, await layoutConfigDigest('whiteouts-oci-layout'));
    assert.deepEqual(image.RootFS.Layers, WHITEOUTS_DIFFS);
  });

  it('imports the busybox rootfs with the diffID docker import gives it', async () => {
    const { kiln } = await newKiln();
    const id = (await ok(kiln(['import', '-c', 'CMD ["sh"]', '-m', 'from the fixture', join(fixturesDir, 'busybox-rootfs.tar'), 'busybox:x']))).stdout.trim();
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    const image = await inspect(kiln, 'busybox:x');
    assert.equal(image.Id, id);
    assert.deepEqual(image.RootFS.Layers, [BUSYBOX_DIFF]);
    const history = await ok(kiln(['history', '--format', '{{.Comment}}|{{.Size}}', 'busybox:x']));
    assert.equal(history.stdout, 'from the fixture|1.99MB\n');
  });
});

describe('what kiln saves, other tools read', () => {
  it('round-trips a save through load into a fresh store with the same IDs', async () => {
    const first = await newKiln();
    await ok(first.kiln(['load', '-i', join(fixturesDir, 'whiteouts-docker20-save.tar')]));
    await ok(first.kiln(['load', '-i', join(fixturesDir, 'busybox-docker20-save.tar')]));
    const archive = join(await tempDir(), 'both.tar');
    await ok(first.kiln(['save', '-o', archive, 'whiteouts:lab', 'busybox:lab']));
    const second = await newKiln();
    const out = await ok(second.kiln(['load', '-i', archive]));
    assert.equal(out.stdout, 'Loaded image: whiteouts:lab\nLoaded image: busybox:lab\n');
    assert.equal((await inspect(second.kiln, 'whiteouts:lab')).Id, WHITEOUTS_ID);
    assert.equal((await inspect(second.kiln, 'busybox:lab')).Id, BUSYBOX_ID);
    // The shared busybox layer is stored once in the archive.
    const listing = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' });
    assert.equal(listing.split('\n').filter((l) => l.endsWith(BUSYBOX_DIFF.slice(7))).length, 1);
  });

  it('skopeo reads kiln save output as docker-archive and as oci-archive with the same config digest', { skip: !has('skopeo') && 'skopeo is not installed (scripts/setup.sh installs it as root)' }, async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', join(fixturesDir, 'whiteouts-docker20-save.tar')]));
    const dir = await tempDir();
    await ok(kiln(['save', '-o', join(dir, 'docker.tar'), 'whiteouts:lab']));
    await ok(kiln(['save', '--format', 'oci-archive', '-o', join(dir, 'oci.tar'), 'whiteouts:lab']));
    for (const transport of [`docker-archive:${join(dir, 'docker.tar')}`, `oci-archive:${join(dir, 'docker.tar')}`, `oci-archive:${join(dir, 'oci.tar')}`]) {
      const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', transport], { encoding: 'utf8' })) as { config: { digest: string } };
      assert.equal(manifest.config.digest, WHITEOUTS_ID, transport);
      const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', transport], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] } };
      assert.deepEqual(config.rootfs.diff_ids, WHITEOUTS_DIFFS, transport);
    }
  });

  it('umoci unpacks kiln\'s OCI directory into the tree Docker exported', { skip: (!has('umoci') && 'umoci is not installed') || (!isRoot && 'umoci unpack needs root to keep owners') }, async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', join(fixturesDir, 'whiteouts-docker20-save.tar')]));
    const dir = await tempDir();
    const layout = join(dir, 'layout');
    await ok(kiln(['save', '--format', 'oci-dir', '-o', layout, 'whiteouts:lab']));
    const bundle = join(dir, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:lab`, bundle], { stdio: 'pipe' });
    // /etc/mtab in Docker's export comes from its init layer (created with every container), not the
    // image; /dev, /proc and /sys are left out of the expected tree (fixtures README).
    const expected = (await expectedWhiteoutsTree()).filter((e) => e.path !== '/etc/mtab');
    await assertTreeMatches(join(bundle, 'rootfs'), expected, ['/dev', '/proc', '/sys']);
  });
});
