import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { newKiln, ok } from '../helpers/kiln.js';
import { type DockerFacts, dockerFacts, expectedWhiteoutsTree, fixture, fixturesUnavailable, ociLayoutImage } from '../helpers/fixtures.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { assertTreeMatches } from '../helpers/rootfs.js';

// Every image here was made by Docker (and skopeo) in this run: kiln must give the IDs Docker gave.
const unavailable = await fixturesUnavailable('busybox-docker20-save.tar', 'whiteouts-docker20-save.tar', 'whiteouts-oci-layout', 'whiteouts-oci-zstd', 'whiteouts-oci-archive.tar', 'busybox-rootfs.tar');
let busybox: DockerFacts;
let whiteouts: DockerFacts;
before(async () => {
  if (unavailable) return;
  busybox = await dockerFacts('busybox');
  whiteouts = await dockerFacts('whiteouts');
});

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
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

describe('loading images made by Docker and skopeo', { skip: unavailable }, () => {
  it('loads a Docker save (legacy layout) with the image ID and diffID Docker gave it', async () => {
    const { kiln } = await newKiln();
    const out = await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    assert.equal(out.stdout, 'Loaded image: busybox:lab\n');
    const image = await inspect(kiln, 'busybox:lab');
    assert.equal(image.Id, busybox.inspect.Id);
    assert.deepEqual(image.RootFS.Layers, busybox.inspect.RootFS.Layers);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('loads the three-layer whiteouts image from stdin', async () => {
    const { kiln } = await newKiln();
    const out = await ok(kiln(['load'], await readFile(await fixture('whiteouts-docker20-save.tar'))));
    assert.equal(out.stdout, 'Loaded image: whiteouts:lab\n');
    const image = await inspect(kiln, 'whiteouts:lab');
    assert.equal(image.Id, whiteouts.inspect.Id);
    assert.deepEqual(image.RootFS.Layers, whiteouts.inspect.RootFS.Layers);
  });

  for (const layout of ['whiteouts-oci-layout', 'whiteouts-oci-zstd'] as const) {
    it(`loads the OCI layout directory ${layout} (named by its ref.name annotation)`, async () => {
      const { kiln } = await newKiln();
      const out = await ok(kiln(['load', '-i', await fixture(layout)]));
      assert.equal(out.stdout, 'Loaded image: whiteouts:lab\n');
      const image = await inspect(kiln, 'whiteouts:lab');
      assert.equal(image.Id, (await ociLayoutImage(layout)).config);
      assert.deepEqual(image.RootFS.Layers, whiteouts.inspect.RootFS.Layers);
    });
  }

  it('loads an oci-archive tar', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('whiteouts-oci-archive.tar')]));
    const image = await inspect(kiln, 'whiteouts:lab');
    assert.equal(image.Id, (await ociLayoutImage('whiteouts-oci-layout')).config);
    assert.deepEqual(image.RootFS.Layers, whiteouts.inspect.RootFS.Layers);
  });

  it('imports the busybox rootfs with the diffID and size docker import gives it', async () => {
    const { kiln } = await newKiln();
    const id = (await ok(kiln(['import', '-c', 'CMD ["sh"]', '-m', 'from the fixture', await fixture('busybox-rootfs.tar'), 'busybox:x']))).stdout.trim();
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    const image = await inspect(kiln, 'busybox:x');
    assert.equal(image.Id, id);
    assert.deepEqual(image.RootFS.Layers, busybox.inspect.RootFS.Layers);
    const history = await ok(kiln(['history', '--format', '{{.Comment}}|{{.Size}}', 'busybox:x']));
    assert.equal(history.stdout, `from the fixture|${busybox.history[0]?.Size}\n`);
  });
});

describe('what kiln saves, other tools read', { skip: unavailable }, () => {
  it('round-trips a save through load into a fresh store with the same IDs', async () => {
    const first = await newKiln();
    await ok(first.kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]));
    await ok(first.kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const archive = join(await tempDir(), 'both.tar');
    await ok(first.kiln(['save', '-o', archive, 'whiteouts:lab', 'busybox:lab']));
    const second = await newKiln();
    const out = await ok(second.kiln(['load', '-i', archive]));
    assert.equal(out.stdout, 'Loaded image: whiteouts:lab\nLoaded image: busybox:lab\n');
    assert.equal((await inspect(second.kiln, 'whiteouts:lab')).Id, whiteouts.inspect.Id);
    assert.equal((await inspect(second.kiln, 'busybox:lab')).Id, busybox.inspect.Id);
    // The shared busybox layer is stored once in the archive.
    const listing = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' });
    const [busyboxDiff] = busybox.inspect.RootFS.Layers;
    assert.equal(listing.split('\n').filter((l) => l.endsWith(busyboxDiff?.slice(7) ?? '?')).length, 1);
  });

  it('skopeo reads kiln save output as docker-archive and as oci-archive with the same config digest', { skip: !has('skopeo') && 'skopeo is not installed (scripts/setup.sh installs it as root)' }, async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]));
    const dir = await tempDir();
    await ok(kiln(['save', '-o', join(dir, 'docker.tar'), 'whiteouts:lab']));
    await ok(kiln(['save', '--format', 'oci-archive', '-o', join(dir, 'oci.tar'), 'whiteouts:lab']));
    for (const transport of [`docker-archive:${join(dir, 'docker.tar')}`, `oci-archive:${join(dir, 'docker.tar')}`, `oci-archive:${join(dir, 'oci.tar')}`]) {
      const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', transport], { encoding: 'utf8' })) as { config: { digest: string } };
      assert.equal(manifest.config.digest, whiteouts.inspect.Id, transport);
      const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', transport], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] } };
      assert.deepEqual(config.rootfs.diff_ids, whiteouts.inspect.RootFS.Layers, transport);
    }
  });

  it('umoci unpacks kiln\'s OCI directory into the tree Docker exported', { skip: (!has('umoci') && 'umoci is not installed') || (!isRoot && 'umoci unpack needs root to keep owners') }, async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]));
    const dir = await tempDir();
    const layout = join(dir, 'layout');
    await ok(kiln(['save', '--format', 'oci-dir', '-o', layout, 'whiteouts:lab']));
    const bundle = join(dir, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:lab`, bundle], { stdio: 'pipe' });
    // /etc/mtab in Docker's export comes from its init layer (created with every container), not the
    // image; /dev, /proc and /sys are left out of the expected tree (the fixture maker's CONTAINER_ONLY).
    const expected = (await expectedWhiteoutsTree()).filter((e) => e.path !== '/etc/mtab');
    await assertTreeMatches(join(bundle, 'rootfs'), expected, ['/dev', '/proc', '/sys']);
  });
});
