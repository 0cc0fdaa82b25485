import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { isKilnError } from '../../src/errors.js';
import { pullImage } from '../../src/engine/registry.js';
import { openSnapshotter } from '../../src/engine/snapshots.js';
import { chainIds } from '../../src/image/image.js';
import { type MountSpec, mount, unmount } from '../../src/snapshot/snapshotter.js';
import { HOSTILE_LAYERS, file, imageArchive } from '../helpers/hostile-layers.js';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { dockerFacts, expectedWhiteoutsTree, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot, repoRoot, tempDir } from '../helpers/paths.js';
import { type Proxy, startProxy } from '../helpers/proxy.js';
import { type Registry, registryUnavailable, startRegistry } from '../helpers/registry.js';
import { assertTreeMatches } from '../helpers/rootfs.js';
import { type TokenServer, startTokenServer } from '../helpers/token-server.js';

const run = promisify(execFile);
const unavailable = registryUnavailable() ?? (await fixturesUnavailable('busybox-rootfs.tar'));
// Docker's saves (made by a private dockerd, so as root): the tests that push them skip without.
const noSaves = await fixturesUnavailable('busybox-docker20-save.tar', 'whiteouts-docker20-save.tar', 'whiteouts-expected-rootfs.json');

/** The image ID Docker gave busybox:lab when it imported busybox-rootfs.tar and saved it. */
async function busyboxId(): Promise<string> {
  return (await dockerFacts('busybox')).inspect.Id;
}

async function skopeo(args: readonly string[]): Promise<string> {
  return (await run('skopeo', [...args], { maxBuffer: 16 << 20 })).stdout;
}

/** An image with one big incompressible layer (chunked uploads, resumable downloads). */
async function bigImage(kiln: Awaited<ReturnType<typeof newKiln>>['kiln'], name: string, megabytes: number): Promise<string> {
  const rootfs = join(await tempDir(), 'rootfs');
  await mkdir(rootfs);
  await writeFile(join(rootfs, 'blob.bin'), randomBytes(megabytes << 20));
  return (await ok(kiln(['import', rootfs, name]))).stdout.trim();
}

describe('registries: push and pull against a real registry (distribution 2.8)', { skip: unavailable }, () => {
  let registry: Registry;
  let proxy: Proxy;
  before(async () => {
    registry = await startRegistry();
    proxy = await startProxy(registry.host);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  it('kiln push → skopeo sees the same config digest; a second push uploads no layer bytes', async () => {
    const { kiln } = await newKiln();
    const id = (await ok(kiln(['import', '-c', 'CMD ["sh"]', await fixture('busybox-rootfs.tar'), `${proxy.host}/kiln/busybox:1`]))).stdout.trim();
    const first = await ok(kiln(['push', `${proxy.host}/kiln/busybox:1`]));
    assert.match(first.stdout, new RegExp(`^The push refers to repository \\[${proxy.host}/kiln/busybox\\]\\n`));
    assert.match(first.stdout, /: Pushed\n/);
    const digest = /1: digest: (sha256:[a-f0-9]{64}) size: \d+\n$/.exec(first.stdout)?.[1];
    assert.ok(digest, first.stdout);
    const raw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/kiln/busybox:1`])) as { config: { digest: string } };
    assert.equal(raw.config.digest, id);
    assert.match(await skopeo(['inspect', '--format', '{{.Digest}}', '--tls-verify=false', `docker://${registry.host}/kiln/busybox:1`]), new RegExp(digest));
    assert.match((await ok(kiln(['inspect', '-f', '{{json .RepoDigests}}', `${proxy.host}/kiln/busybox:1`]))).stdout, new RegExp(`${proxy.host}/kiln/busybox@${digest}`));
    const before = proxy.uploadedBytes;
    const second = await ok(kiln(['push', `${proxy.host}/kiln/busybox:1`]));
    assert.match(second.stdout, /Layer already exists/);
    assert.equal(proxy.uploadedBytes - before, 0);
    assert.match(second.stdout, new RegExp(`1: digest: ${digest}`));
  });

  it('skopeo push of a Docker save → kiln pull gives the same image ID and RepoDigest, and kiln run works', { skip: (!isRoot && 'kiln run needs root') || noSaves }, async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${registry.host}/lab/busybox:lab`]);
    const { root, kiln } = await newKiln();
    const pulled = await ok(kiln(['pull', `${registry.host}/lab/busybox:lab`]));
    // As root the layer was unpacked into a snapshot during the pull ("Extracting").
    assert.match(pulled.stdout, /: Extracting\n/);
    assert.equal((await readdir(join(root, 'snapshots'))).filter((d) => /^\d+$/.test(d)).length, 1);
    assert.match(pulled.stdout, /^lab: Pulling from lab\/busybox\n/);
    assert.match(pulled.stdout, /: Pull complete\n/);
    assert.match(pulled.stdout, new RegExp(`Status: Downloaded newer image for ${registry.host}/lab/busybox:lab\\n${registry.host}/lab/busybox:lab\\n$`));
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/lab/busybox:lab`]))).stdout.trim(), await busyboxId());
    // The unpacking walked the tar instead of the scan: the size it counted is the one a load counts.
    const loaded = await newKiln();
    await ok(loaded.kiln(['load', '-q', '-i', await fixture('busybox-docker20-save.tar')]));
    const size = async (k: typeof kiln) => (await ok(k(['inspect', '-f', '{{.Size}}', await busyboxId()]))).stdout.trim();
    assert.equal(await size(kiln), await size(loaded.kiln));
    const again = await ok(kiln(['pull', `${registry.host}/lab/busybox:lab`]));
    assert.match(again.stdout, /Already exists/);
    assert.match(again.stdout, /Status: Image is up to date/);
    assert.equal((await ok(kiln(['run', '--rm', `${registry.host}/lab/busybox:lab`, 'echo', 'pulled']))).stdout, 'pulled\n');
    const quiet = await ok(kiln(['pull', '-q', `${registry.host}/lab/busybox:lab`]));
    assert.equal(quiet.stdout, `${registry.host}/lab/busybox:lab\n`);
  });

  it('as root with overlay, unpacks every layer as it downloads, each committed on its parent: Docker\'s tree, nothing read back', { skip: (!isRoot && 'overlay snapshots need root') || noSaves }, async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('whiteouts-docker20-save.tar')}`, `docker://${registry.host}/lab/whiteouts:lab`]);
    const engine = await Engine.open(await tempDir('kiln-pull-store-'));
    const reads: string[] = [];
    const open = engine.store.content.open.bind(engine.store.content);
    engine.store.content.open = async (digest) => {
      reads.push(digest);
      return open(digest);
    };
    await pullImage(engine, `${registry.host}/lab/whiteouts:lab`, { maxConcurrentDownloads: 3, events: () => undefined });
    const image = await engine.store.image(engine.image(`${registry.host}/lab/whiteouts:lab`));
    assert.ok(image.layers.length >= 3, `${image.layers.length} layers`);
    assert.deepEqual(reads.filter((digest) => image.layers.some((layer) => layer.digest === digest)), [], 'no layer was read back from the store to be unpacked');
    const snapshots = await openSnapshotter(engine, () => undefined);
    assert.equal(snapshots.driver, 'overlay');
    const chain = chainIds(image.layers.map((layer) => layer.diffId)).map((id) => `overlay:${id}`);
    const view = join(await tempDir(), 'view');
    await mkdir(view);
    await mount((await snapshots.view('view-check', chain.at(-1)))[0] as MountSpec, view);
    try {
      await assertTreeMatches(view, (await expectedWhiteoutsTree()).filter((e) => e.path !== '/etc/mtab'), ['/dev', '/proc', '/sys']);
    } finally {
      await unmount(view);
      await snapshots.remove('view-check');
    }
    const report = await engine.check();
    assert.deepEqual([report.problems, report.orphans], [[], []]);
  });

  it('kiln build pulls a base image the store lacks, and every one with --pull; one that cannot be pulled fails clearly', { skip: (!isRoot && 'builds need root') || noSaves }, async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${registry.host}/lab/base:1`]);
    const { kiln } = await newKiln();
    const context = await tempDir('kiln-context-');
    await writeFile(join(context, 'Dockerfile'), `FROM ${registry.host}/lab/base:1\nRUN echo built > /f\n`);
    const built = await ok(kiln(['build', '--progress', 'plain', '-t', 'pulled:1', context]));
    assert.match(built.stderr, new RegExp(`^#1 \\[internal\\] pull ${registry.host}/lab/base:1\n(#1 [0-9.]+ .*\n)*#1 [0-9.]+ Status: Downloaded newer image for ${registry.host}/lab/base:1\n#1 DONE`, 'm'));
    assert.match(built.stderr, /^#2 \[stage-0 1\/1\] RUN echo built/m);
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/lab/base:1`]))).stdout.trim(), await busyboxId());
    assert.equal((await ok(kiln(['run', '--rm', 'pulled:1', 'cat', '/f']))).stdout, 'built\n');
    const again = await ok(kiln(['build', '--progress', 'plain', '-t', 'pulled:1', context]));
    assert.doesNotMatch(again.stderr, /\[internal\] pull/);
    assert.match((await ok(kiln(['build', '--pull', '--progress', 'plain', '-t', 'pulled:1', context]))).stderr, /Status: Image is up to date/);
    await writeFile(join(context, 'Dockerfile'), `FROM ${registry.host}/lab/missing:1\n`);
    const missing = await kiln(['build', context]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, new RegExp(`Error: .*Dockerfile: the image ${registry.host}/lab/missing:1 is not in the store, and pulling it failed: .*(not found|unknown)`, 'i'));
  });

  it('kiln run pulls an image the store lacks, as docker run does (--pull missing|always|never), its output on stderr', { skip: (!isRoot && 'kiln run needs root') || noSaves }, async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${registry.host}/lab/runme:1`]);
    const { kiln } = await newKiln();
    const never = await kiln(['run', '--rm', '--pull', 'never', `${registry.host}/lab/runme:1`, 'true']);
    assert.equal(never.code, 1);
    assert.match(never.stderr, /No such image|not in the store|does not exist/i);
    const first = await ok(kiln(['run', '--rm', `${registry.host}/lab/runme:1`, 'echo', 'hello']));
    assert.equal(first.stdout, 'hello\n');
    assert.match(first.stderr, new RegExp(`^Unable to find image '${registry.host}/lab/runme:1' locally\n1: Pulling from lab/runme\n[^]*Status: Downloaded newer image for ${registry.host}/lab/runme:1\n$`));
    const second = await ok(kiln(['run', '--rm', `${registry.host}/lab/runme:1`, 'true']));
    assert.equal(second.stderr, '');
    assert.match((await ok(kiln(['run', '--rm', '--pull', 'always', `${registry.host}/lab/runme:1`, 'true']))).stderr, /Status: Image is up to date/);
    const bad = await kiln(['run', '--pull', 'sometimes', `${registry.host}/lab/runme:1`, 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /invalid pull option: "sometimes"/);
  });

  it('picks the platform from a multi-platform index: the host\'s by default, --platform for another', async () => {
    const { kiln } = await newKiln();
    const rootfs = await fixture('busybox-rootfs.tar');
    await ok(kiln(['import', '--platform', 'linux/amd64', rootfs, `${registry.host}/multi/img:amd64`]));
    await ok(kiln(['import', '--platform', 'linux/arm64', '-c', 'LABEL arch=arm64', rootfs, `${registry.host}/multi/img:arm64`]));
    const entries = [];
    for (const [tag, architecture] of [['amd64', 'amd64'], ['arm64', 'arm64']] as const) {
      const pushed = await ok(kiln(['push', `${registry.host}/multi/img:${tag}`]));
      const [, digest, size] = /digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(pushed.stdout) ?? [];
      entries.push({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest, size: Number(size), platform: { architecture, os: 'linux', ...(architecture === 'arm64' ? { variant: 'v8' } : {}) } });
    }
    const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries });
    const put = await fetch(`http://${registry.host}/v2/multi/img/manifests/latest`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
    assert.equal(put.status, 201);
    const other = await newKiln();
    if (process.arch === 'x64') {
      await ok(other.kiln(['pull', `${registry.host}/multi/img`]));
      assert.equal((await ok(other.kiln(['inspect', '-f', '{{.Os}}/{{.Architecture}}', `${registry.host}/multi/img`]))).stdout, 'linux/amd64\n');
    }
    await ok(other.kiln(['pull', '--platform', 'linux/arm64', `${registry.host}/multi/img`]));
    assert.equal((await ok(other.kiln(['inspect', '-f', '{{.Os}}/{{.Architecture}} {{.Config.Labels.arch}}', `${registry.host}/multi/img`]))).stdout, 'linux/arm64 arm64\n');
    const missing = await other.kiln(['pull', '--platform', 'linux/s390x', `${registry.host}/multi/img`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no matching manifest for linux\/s390x in the manifest list entries .* \(it has linux\/amd64, linux\/arm64\/v8\)/);
  });

  it('resumes a download cut in the middle of a blob and an upload whose connection breaks between chunks; restarts one that breaks inside a chunk', async () => {
    const { kiln } = await newKiln();
    const id = await bigImage(kiln, `${proxy.host}/big/image:1`, 40);
    // The connection breaks as the second chunk starts: the upload goes on from the registry's offset.
    proxy.faults = { dropUploadChunk: 2 };
    const before = proxy.uploadedBytes;
    const pushed = await ok(kiln(['push', `${proxy.host}/big/image:1`]));
    assert.ok(proxy.fired.includes('drop-chunk'), 'a chunk was dropped');
    assert.match(pushed.stdout, /Pushed/);
    const layerSize = Number((await ok(kiln(['inspect', '-f', '{{.Size}}', `${proxy.host}/big/image:1`]))).stdout.trim());
    assert.ok(proxy.uploadedBytes - before < layerSize * 1.05, `resumed, not restarted: ${proxy.uploadedBytes - before} bytes sent for a ${layerSize}-byte layer`);
    // The first chunk lost before any byte arrives (the registry then reports `Range: 0-0`), then broken
    // off in the middle: distribution drops that upload, and a new one starts.
    await bigImage(kiln, `${proxy.host}/big/other:1`, 20);
    proxy.faults = { dropUploadChunk: 1, cutUploadAfter: 5 << 20 };
    await ok(kiln(['push', `${proxy.host}/big/other:1`]));
    assert.ok(proxy.fired.includes('cut-upload'), 'the upload was cut');
    assert.equal(proxy.fired.filter((f) => f === 'drop-chunk').length, 2, 'the first chunk was dropped');
    const other = await newKiln();
    proxy.faults = { cutDownloadAfter: 7 << 20 };
    await ok(other.kiln(['pull', `${proxy.host}/big/image:1`]));
    assert.ok(proxy.fired.includes('cut-download'), 'the download was cut');
    assert.equal((await ok(other.kiln(['inspect', '-f', '{{.Id}}', `${proxy.host}/big/image:1`]))).stdout.trim(), id);
    assert.match((await ok(other.kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('refuses a blob whose bytes do not match its digest, and stores nothing', { skip: noSaves }, async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${proxy.host}/corrupt/image:1`]));
    await ok(kiln(['push', `${proxy.host}/corrupt/image:1`]));
    const layer = (await ok(kiln(['inspect', '-f', '{{index .RootFS.Layers 0}}', `${proxy.host}/corrupt/image:1`]))).stdout.trim();
    const raw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/corrupt/image:1`])) as { layers: { digest: string }[] };
    assert.ok(layer);
    proxy.faults = { corruptBlob: raw.layers[0]?.digest ?? '' };
    const other = await newKiln();
    const result = await other.kiln(['pull', `${proxy.host}/corrupt/image:1`]);
    proxy.faults = {};
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the blob's bytes do not match sha256:[a-f0-9]{64} \(they hash to sha256:/);
    assert.ok(proxy.fired.includes('corrupt'));
    assert.equal((await ok(other.kiln(['images', '-q']))).stdout, '');
    assert.equal((await ok(other.kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
    // As root the layer was being unpacked as it arrived: that snapshot is gone too.
    if (isRoot) assert.deepEqual(await readdir(join(other.root, 'snapshots')).catch(() => []), []);
    // Several layers, the base one wrong: those above it (unpacked as they came, with overlay) go too.
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('whiteouts-docker20-save.tar')}`, `docker://${registry.host}/corrupt/layers:1`]);
    const layers = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/corrupt/layers:1`])) as { layers: { digest: string }[] };
    proxy.faults = { corruptBlob: layers.layers[0]?.digest ?? '' };
    const third = await newKiln();
    const failed = await third.kiln(['pull', `${proxy.host}/corrupt/layers:1`]);
    proxy.faults = {};
    assert.equal(failed.code, 1, failed.stderr);
    assert.equal((await ok(third.kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
    if (isRoot) assert.deepEqual(await readdir(join(third.root, 'snapshots')).catch(() => []), []);
  });

  it('push -a and pull -a move every tag; search finds repositories through the catalog', async () => {
    const { kiln } = await newKiln();
    const repo = `${registry.host}/searchable/thing`;
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${repo}:one`]));
    await ok(kiln(['tag', `${repo}:one`, `${repo}:two`]));
    const pushed = await ok(kiln(['push', '-a', repo]));
    assert.match(pushed.stdout, /one: digest: sha256:[a-f0-9]{64}[\s\S]*two: digest: sha256:/);
    const tagged = await kiln(['push', '-a', `${repo}:one`]);
    assert.equal(tagged.code, 125);
    const other = await newKiln();
    const pulled = await ok(other.kiln(['pull', '-a', repo]));
    assert.match(pulled.stdout, new RegExp(`${repo}\n$`));
    assert.equal((await ok(other.kiln(['images', '--format', '{{.Tag}}', repo]))).stdout.split('\n').filter(Boolean).sort().join(','), 'one,two');
    const found = await ok(kiln(['search', `${registry.host}/searchable`]));
    assert.match(found.stdout, /^NAME +DESCRIPTION +STARS +OFFICIAL\n/);
    assert.match(found.stdout, new RegExp(`\n${repo} +0 *\n$`));
    assert.equal((await ok(kiln(['search', '--registry', registry.host, '--format', '{{.Name}}', 'thing']))).stdout, `${repo}\n`);
    assert.equal((await kiln(['search', '--limit', '500', 'x'])).code, 125);
  });

  it('mounts a blob from another repository of the registry instead of uploading it; --compression zstd pushes zstd layers', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${proxy.host}/mount/source:1`]));
    await ok(kiln(['push', `${proxy.host}/mount/source:1`]));
    await ok(kiln(['tag', `${proxy.host}/mount/source:1`, `${proxy.host}/mount/target:1`]));
    const before = proxy.uploadedBytes;
    const mounted = await ok(kiln(['push', `${proxy.host}/mount/target:1`]));
    assert.match(mounted.stdout, /: Mounted from mount\/source\n/);
    assert.equal(proxy.uploadedBytes - before, 0);
    await ok(kiln(['tag', `${proxy.host}/mount/source:1`, `${registry.host}/zstd/image:1`]));
    await ok(kiln(['push', '--compression', 'zstd', `${registry.host}/zstd/image:1`]));
    const raw = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/zstd/image:1`])) as { mediaType: string; layers: { mediaType: string }[] };
    assert.equal(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(raw.layers.map((l) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar+zstd']);
    const other = await newKiln();
    await ok(other.kiln(['pull', `${registry.host}/zstd/image:1`]));
    assert.equal((await ok(other.kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/zstd/image:1`]))).stdout, (await ok(kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/zstd/image:1`]))).stdout);
  });

  it('search uses a registry\'s search API where it has one (Docker Hub\'s), with filters and truncation', async () => {
    const { kiln } = await newKiln();
    proxy.faults = {
      searchResults: [
        { name: 'busybox', description: 'Busybox base image, a long description that Docker cuts at forty-five characters', star_count: 3200, is_official: true, is_automated: false },
        { name: 'someone/busybox-extra', description: 'extras', star_count: 3, is_official: false, is_automated: true },
      ],
    };
    try {
      const table = await ok(kiln(['search', `${proxy.host}/busybox`]));
      assert.equal(table.stdout.split('\n')[1], 'busybox                 Busybox base image, a long description that …   3200      [OK]');
      const official = await ok(kiln(['search', '--filter', 'is-official=true', '--format', '{{.Name}} {{.StarCount}} {{.IsAutomated}}', `${proxy.host}/busybox`]));
      assert.equal(official.stdout, 'busybox 3200 \n');
      const starred = await ok(kiln(['search', '-f', 'stars=10', '--no-trunc', '--format', '{{.Description}}', `${proxy.host}/busybox`]));
      assert.equal(starred.stdout, 'Busybox base image, a long description that Docker cuts at forty-five characters\n');
      assert.equal((await kiln(['search', '-f', 'bogus=1', 'x'])).code, 125);
    } finally {
      proxy.faults = {};
    }
  });

  it('draws progress bars in place on a terminal', async () => {
    const { kiln } = await newKiln();
    await bigImage(kiln, `${registry.host}/tty/image:1`, 8);
    await ok(kiln(['push', `${registry.host}/tty/image:1`]));
    const other = await newKiln();
    const command = `${process.execPath} ${join(repoRoot, 'bin', 'kiln')} --root ${other.root} pull ${registry.host}/tty/image:1`;
    const { stdout } = await run('script', ['-qec', command, '/dev/null'], { maxBuffer: 16 << 20 });
    assert.match(stdout, /Downloading \[=*>? *\] +[\d.]+[kM]?B\/[\d.]+MB/);
    const escape = String.fromCharCode(27);
    assert.match(stdout, new RegExp(`${escape}\\[\\d+A${escape}\\[2K\\r[0-9a-f]{12}: `));
    assert.match(stdout, /Pull complete/);
  });

  it('waits out TOOMANYREQUESTS as Retry-After says, and says so when it keeps coming', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${proxy.host}/limited/image:1`]));
    await ok(kiln(['push', `${proxy.host}/limited/image:1`]));
    const other = await newKiln();
    proxy.faults = { tooManyRequests: 1 };
    await ok(other.kiln(['pull', `${proxy.host}/limited/image:1`]));
    assert.ok(proxy.fired.includes('429'));
    proxy.faults = { tooManyRequests: 10 };
    const refused = await other.kiln(['pull', `${proxy.host}/limited/image:1`]);
    proxy.faults = {};
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /limited\/image:1: 429 TOOMANYREQUESTS: too many requests \(retry after 1 s\)\n$/);
  });

  it('says what is missing in one line naming the reference', async () => {
    const { kiln } = await newKiln();
    const result = await kiln(['pull', `${registry.host}/nothing/here:nope`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`^Error: ${registry.host}/nothing/here:nope: 404 (MANIFEST_UNKNOWN|NAME_UNKNOWN)[^\\n]*\\n$`));
  });

  it('says "Image is up to date" only when the name pulled already pointed at the image, as Docker does', async () => {
    const source = await newKiln();
    await ok(source.kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const repository = `${registry.host}/uptodate/busybox`;
    for (const tag of ['a', 'b']) {
      await ok(source.kiln(['tag', 'busybox:lab', `${repository}:${tag}`]));
      await ok(source.kiln(['push', `${repository}:${tag}`]));
    }
    const { kiln } = await newKiln();
    const status = async (name: string): Promise<string | undefined> => /^Status: (.*) for /m.exec((await ok(kiln(['pull', name]))).stdout)?.[1];
    assert.equal(await status(`${repository}:a`), 'Downloaded newer image');
    // The image is in the store already, but this tag never pointed at it.
    assert.equal(await status(`${repository}:b`), 'Downloaded newer image');
    assert.equal(await status(`${repository}:b`), 'Image is up to date');
    const [digest] = JSON.parse((await ok(kiln(['inspect', '-f', '{{json .RepoDigests}}', `${repository}:b`]))).stdout) as string[];
    assert.equal(await status(digest as string), 'Image is up to date');
    // A tag that points elsewhere moves back: a newer image for it, though nothing came down.
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${repository}:a`]));
    assert.equal(await status(`${repository}:a`), 'Downloaded newer image');
  });

  it('refuses a pulled layer that no unpack could place inside the root, naming its entry, and keeps nothing', async () => {
    const hostile = HOSTILE_LAYERS.find((c) => c.name === 'a file through an absolute symlink');
    assert.ok(hostile);
    const archive = await imageArchive(join(await tempDir(), 'hostile.tar'), 'hostile:1', [[file('fine')], hostile.entries]);
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${registry.host}/lab/hostile:1`]);
    const refusal = /: entry "link\/evil" would be written through the symlink "link"$/;
    // Without unpacking (as a user who is not root pulls), the store's own scan refuses it ...
    const engine = await Engine.open(await tempDir('kiln-hostile-pull-'));
    try {
      await assert.rejects(pullImage(engine, `${registry.host}/lab/hostile:1`, { unpack: false, events: () => undefined }), (err) => isKilnError(err, 'INVALID_INPUT') && refusal.test(err.message));
      const report = await engine.check();
      assert.deepEqual([report.blobs, report.images, report.problems, report.orphans], [0, 0, [], []]);
    } finally {
      engine.close();
    }
    // ... and the CLI (which, as root, unpacks as it downloads) all the same.
    const { kiln } = await newKiln();
    const result = await kiln(['pull', `${registry.host}/lab/hostile:1`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^Error: [^\n]*: entry "link\/evil" would be written through the symlink "link"\n$/);
    assert.equal((await ok(kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
  });
});

describe('registries: authentication (htpasswd Basic)', { skip: unavailable }, () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry({ basic: { username: 'kiln', password: 's3cret-pass' } });
  });
  after(() => registry?.stop());

  it('fails clearly without credentials, logs in, pushes and pulls with config.json, then with a credential helper; redirects get no credentials', async () => {
    const { kiln } = await newKiln();
    const config = await tempDir('kiln-docker-config-');
    const env = { DOCKER_CONFIG: config };
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), `${registry.host}/private/busybox:1`]));
    const denied = await kiln(['push', `${registry.host}/private/busybox:1`], undefined, env);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, new RegExp(`needs a login: kiln login ${registry.host}`));
    const wrong = await kiln(['login', '-u', 'kiln', '--password-stdin', registry.host], 'wrong\n', env);
    assert.equal(wrong.code, 1);
    assert.doesNotMatch(wrong.stderr, /wrong/);
    const login = await ok(kiln(['login', '-u', 'kiln', '--password-stdin', registry.host], 's3cret-pass\n', env));
    assert.equal(login.stdout, 'Login Succeeded\n');
    await ok(kiln(['push', `${registry.host}/private/busybox:1`], undefined, env));
    const other = await newKiln();
    await ok(other.kiln(['pull', `${registry.host}/private/busybox:1`], undefined, env));
    // A credential helper instead of the file's own entry.
    const helperDir = await tempDir('kiln-helper-');
    const helper = join(helperDir, 'docker-credential-kilntest');
    await writeFile(helper, `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${registry.host}" ] && echo '{"Username":"kiln","Secret":"s3cret-pass"}' && exit 0\nexit 1\n`);
    await chmod(helper, 0o755);
    const helperConfig = await tempDir('kiln-docker-config-');
    await writeFile(join(helperConfig, 'config.json'), JSON.stringify({ credHelpers: { [registry.host]: 'kilntest' } }));
    const third = await newKiln();
    await ok(third.kiln(['pull', `${registry.host}/private/busybox:1`], undefined, { DOCKER_CONFIG: helperConfig, PATH: `${helperDir}:${process.env.PATH ?? ''}` }));
    // A registry that sends downloads to blob storage elsewhere: the redirect is followed, without the credentials.
    const proxy = await startProxy(registry.host);
    try {
      await ok(kiln(['login', '-u', 'kiln', '--password-stdin', proxy.host], 's3cret-pass\n', env));
      proxy.faults = { redirectBlobs: { authorization: `Basic ${Buffer.from('kiln:s3cret-pass').toString('base64')}` } };
      const fourth = await newKiln();
      await ok(fourth.kiln(['pull', `${proxy.host}/private/busybox:1`], undefined, env));
      assert.ok(proxy.redirectedWithCredentials.length >= 2, 'the config and the layer were redirected');
      assert.deepEqual([...new Set(proxy.redirectedWithCredentials)], [false]);
    } finally {
      await proxy.stop();
    }
    assert.equal((await ok(kiln(['logout', registry.host], undefined, env))).stdout, `Removing login credentials for ${registry.host}\n`);
    assert.equal((await ok(kiln(['logout', registry.host], undefined, env))).stdout, `Not logged in to ${registry.host}\n`);
  });
});

describe('registries: authentication (token service with a self-signed certificate)', { skip: unavailable }, () => {
  let registry: Registry;
  let tokens: TokenServer;
  before(async () => {
    tokens = await startTokenServer({ username: 'tokenuser', password: 'token-pass' });
    registry = await startRegistry({ token: { realm: tokens.realm, issuer: tokens.issuer, service: tokens.service, rootCertBundle: tokens.certificate } });
  });
  after(async () => {
    await registry?.stop();
    await tokens?.stop();
  });

  it('gets Bearer tokens scoped per repository with the stored credentials; anonymous access is refused clearly', async () => {
    const { kiln } = await newKiln();
    const config = await tempDir('kiln-docker-config-');
    const env = { DOCKER_CONFIG: config };
    const name = `${registry.host}/team/busybox:1`;
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), name]));
    const anonymous = await kiln(['push', name], undefined, env);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /401 UNAUTHORIZED[^\n]*\(log in with kiln login\)/);
    await ok(kiln(['login', '-u', 'tokenuser', '--password-stdin', registry.host], 'token-pass\n', env));
    await ok(kiln(['push', name], undefined, env));
    assert.ok(tokens.issued.some((t) => t.authenticated && t.scope === 'repository:team/busybox:pull,push'), JSON.stringify(tokens.issued));
    const other = await newKiln();
    await ok(other.kiln(['pull', name], undefined, env));
    assert.equal((await ok(other.kiln(['inspect', '-f', '{{.Id}}', name]))).stdout, (await ok(kiln(['inspect', '-f', '{{.Id}}', name]))).stdout);
    const badConfig = await tempDir('kiln-docker-config-');
    await writeFile(join(badConfig, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('tokenuser:wrong').toString('base64') } } }));
    const refused = await other.kiln(['pull', name], undefined, { DOCKER_CONFIG: badConfig });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the credentials for 127\.0\.0\.1:\d+ were refused \(401\); kiln login/);
    assert.doesNotMatch(refused.stderr, /wrong/);
  });
});

/** This machine's first non-loopback IPv4 address: a registry there is not trusted for plain HTTP by default. */
function outsideAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}

const address = outsideAddress();

describe('registries: TLS by default, a CA from certs.d, plain HTTP only for registries named insecure', { skip: unavailable ?? noSaves ?? (address === undefined && 'this machine has no non-loopback IPv4 address') }, () => {
  let secure: Registry;
  let plain: Registry;
  let certificate: string;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=kiln-registry', '-addext', `subjectAltName=IP:${address ?? ''}`], { stdio: 'ignore' });
    certificate = await readFile(join(dir, 'cert.pem'), 'utf8');
    secure = await startRegistry({}, { address: address ?? '', tls: { certificate, key: await readFile(join(dir, 'key.pem'), 'utf8') } });
    plain = await startRegistry({}, { address: address ?? '' });
    await rm(dir, { recursive: true, force: true });
  });
  after(async () => {
    await secure?.stop();
    await plain?.stop();
  });

  it('verifies TLS with the CA in ~/.docker/certs.d/HOST, and refuses an unknown one clearly', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${secure.host}/tls/busybox:lab`]);
    const { kiln } = await newKiln();
    const home = await tempDir('kiln-home-');
    const refused = await kiln(['pull', `${secure.host}/tls/busybox:lab`], undefined, { HOME: home });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot reach https://${secure.host.replace(/\./g, '\\.')}: .*certificate.*put it in /etc/docker/certs.d/`));
    await mkdir(join(home, '.docker', 'certs.d', secure.host), { recursive: true });
    await writeFile(join(home, '.docker', 'certs.d', secure.host, 'ca.crt'), certificate);
    await ok(kiln(['pull', `${secure.host}/tls/busybox:lab`], undefined, { HOME: home }));
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', `${secure.host}/tls/busybox:lab`]))).stdout.trim(), await busyboxId());
  });

  it('trusts the CAs of NODE_EXTRA_CA_CERTS, run as a program (bin/kiln hands them to kiln) and as `node bin/kiln` (node reads them)', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${secure.host}/tls/busybox:extra`]);
    const cas = join(await tempDir(), 'cas.pem');
    await writeFile(cas, certificate);
    const { NODE_EXTRA_CA_CERTS: _node, KILN_EXTRA_CA_CERTS: _kiln, ...env } = process.env;
    const home = await tempDir('kiln-home-'); // no certs.d of its own
    const pull = async (command: readonly string[], extra: NodeJS.ProcessEnv): Promise<void> => {
      const root = await tempDir('kiln-root-');
      await promisify(execFile)(command[0] as string, [...command.slice(1), '--root', root, 'pull', `${secure.host}/tls/busybox:extra`], { env: { ...env, HOME: home, ...extra } });
      const id = await promisify(execFile)(process.execPath, [kilnBin, '--root', root, 'inspect', '-f', '{{.Id}}', `${secure.host}/tls/busybox:extra`], { env });
      assert.equal(id.stdout.trim(), await busyboxId());
    };
    await pull([kilnBin], { NODE_EXTRA_CA_CERTS: cas });
    await pull([process.execPath, kilnBin], { NODE_EXTRA_CA_CERTS: cas });
    await pull([process.execPath, kilnBin], { KILN_EXTRA_CA_CERTS: cas });
    // Without them the certificate is refused; a file that cannot be read is said so once, as node says it.
    await assert.rejects(pull([kilnBin], {}), /certificate/);
    await assert.rejects(pull([kilnBin], { NODE_EXTRA_CA_CERTS: join(home, 'none.pem') }), (err: Error & { stderr: string }) => {
      assert.equal(err.stderr.match(/kiln: warning: ignoring the extra CA certificates of .*none\.pem .*ENOENT/g)?.length, 1, err.stderr);
      assert.match(err.stderr, /certificate/);
      return true;
    });
  });

  it('speaks plain HTTP only to a registry named insecure, on the command line or in daemon.json', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `docker-archive:${await fixture('busybox-docker20-save.tar')}`, `docker://${plain.host}/plain/busybox:lab`]);
    const { kiln } = await newKiln();
    const refused = await kiln(['pull', `${plain.host}/plain/busybox:lab`], undefined, { KILN_DAEMON_CONFIG: '/nonexistent' });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /name it with --insecure-registry/);
    await ok(kiln(['pull', '--insecure-registry', plain.host, `${plain.host}/plain/busybox:lab`], undefined, { KILN_DAEMON_CONFIG: '/nonexistent' }));
    const config = join(await tempDir(), 'daemon.json');
    await writeFile(config, JSON.stringify({ 'insecure-registries': [`${(address ?? '').split('.').slice(0, 3).join('.')}.0/24`] }));
    const other = await newKiln();
    await ok(other.kiln(['pull', `${plain.host}/plain/busybox:lab`], undefined, { KILN_DAEMON_CONFIG: config }));
  });
});
