import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { Analysis } from '../../src/analyze/analysis.js';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { type Registry, registryUnavailable, startRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

async function hasSkopeo(): Promise<boolean> {
  return run('skopeo', ['--version']).then(
    () => true,
    () => false,
  );
}

const skip = !isRoot ? 'kiln build needs root' : !(await hasSkopeo()) ? 'skopeo is not installed (scripts/setup.sh installs it)' : (registryUnavailable() ?? false);

/**
 * Layers with every kind of entry the figures treat apart: a file replaced (chmod), a hardlink and a
 * symlink, a directory deleted, a directory deleted and made again (an opaque directory), a deleted file.
 */
const DOCKERFILE = `FROM busybox
COPY app.bin /app/app.bin
RUN chmod 755 /app/app.bin && ln /app/app.bin /app/hard && ln -s app.bin /app/soft
RUN mkdir -p /d/sub /gone && echo x > /d/sub/f && dd if=/dev/urandom of=/d/big bs=1024 count=64 2>/dev/null && echo y > /gone/g && echo z > /tmp/t
RUN rm -rf /d /gone /tmp/t && mkdir /d && echo new > /d/n
`;

/**
 * What must be the same whatever the source: everything but where it came from and how its blobs are
 * compressed; and the image ID for a copy skopeo made, whose config skopeo rewrote (the layers' diffIDs
 * stay compared).
 */
function comparable(analysis: Analysis, configRewritten = false): unknown {
  const { source: _source, names: _names, imageId, layers, ...kiln } = analysis.kiln;
  return { ...analysis, kiln: { ...kiln, ...(configRewritten ? {} : { imageId }), layers: layers.map(({ digest: _digest, ...layer }) => layer) } };
}

// Made here, at the file's level: temporary directories live until the file's tests end.
const { root } = await newKiln();
/** CI unset: CI=true would turn --ci on, as with dive. */
const kiln = (args: readonly string[]): Promise<RunResult> => runKiln(root, args, undefined, { CI: '' });
const dir = await tempDir();
const context = await tempDir('kiln-ctx-');

describe('kiln analyze: the same figures from every source', { skip }, () => {
  let registry: Registry;
  let fromStore: Analysis;

  before(async () => {
    registry = await startRegistry();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox']));
    await writeFile(join(context, 'app.bin'), randomBytes(50_000));
    await writeFile(join(context, 'Dockerfile'), DOCKERFILE);
    await ok(kiln(['build', '-q', '-t', 'src:1', context]));
    fromStore = JSON.parse((await ok(kiln(['analyze', '--format', 'json', 'src:1']))).stdout) as Analysis;
  });
  after(() => registry?.stop());

  const analyze = async (source: string): Promise<Analysis> => JSON.parse((await ok(kiln(['analyze', '--format', 'json', source]))).stdout) as Analysis;

  it('the store image has whiteouts, an opaque directory, a hardlink and a symlink, and kiln’s record of its lines', () => {
    const names = fromStore.layer.flatMap((l) => l.fileList.map((f) => f.path));
    for (const name of ['.wh.gone', 'tmp/.wh.t', 'd/.wh..wh..opq', 'app/hard', 'app/soft']) assert.ok(names.includes(name), `no ${name} in ${names.join(' ')}`);
    assert.equal(fromStore.kiln.attribution, 'recorded');
    assert.ok(fromStore.kiln.reclaimableBytes > 64 * 1024);
  });

  it('docker-archive (plain and gzipped), oci-archive and oci: from kiln save', async () => {
    await ok(kiln(['save', '-o', join(dir, 'docker.tar'), 'src:1']));
    await pipeline(createReadStream(join(dir, 'docker.tar')), createGzip(), createWriteStream(join(dir, 'docker.tar.gz')));
    await ok(kiln(['save', '--format', 'oci-archive', '-o', join(dir, 'oci.tar'), 'src:1']));
    await ok(kiln(['save', '--format', 'oci-dir', '-o', join(dir, 'layout'), 'src:1']));
    for (const source of [`docker-archive:${join(dir, 'docker.tar')}`, `docker-archive:${join(dir, 'docker.tar.gz')}`, `docker-archive:${join(dir, 'docker.tar')}:src:1`, `oci-archive:${join(dir, 'oci.tar')}`, `oci:${join(dir, 'layout')}`]) {
      const analysis = await analyze(source);
      assert.equal(analysis.kiln.source, source);
      assert.deepEqual(comparable(analysis), comparable(fromStore), source);
    }
  });

  it('OCI layouts and archives with gzip, zstd and uncompressed layers, from skopeo', async () => {
    const archive = `docker-archive:${join(dir, 'docker.tar')}`;
    // skopeo 1.9 labels the uncompressed layers it keeps from a docker archive tar+gzip: the uncompressed
    // copy is made from kiln's OCI layout, whose layers are labelled tar.
    const layout = `oci:${join(dir, 'layout')}:1`;
    const copies: [string, string, string[]][] = [
      [archive, `oci:${join(dir, 'gzip')}:img`, []],
      [archive, `oci:${join(dir, 'zstd')}:img`, ['--dest-compress-format', 'zstd']],
      [layout, `oci:${join(dir, 'plain')}:img`, ['--dest-oci-accept-uncompressed-layers']],
      [archive, `oci-archive:${join(dir, 'zstd.tar')}:img`, ['--dest-compress-format', 'zstd']],
    ];
    for (const [from, destination, flags] of copies) {
      await run('skopeo', ['copy', '--quiet', ...flags, from, destination]);
      const analysis = await analyze(destination);
      assert.deepEqual(comparable(analysis, true), comparable(fromStore, true), destination);
    }
    // The layers really are what the flags asked for.
    const types = async (layout: string): Promise<string[]> => {
      const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${join(dir, layout)}:img`]);
      return (JSON.parse(stdout) as { layers: { mediaType: string }[] }).layers.map((l) => l.mediaType.replace('application/vnd.oci.image.layer.v1.', ''));
    };
    assert.deepEqual(new Set(await types('gzip')), new Set(['tar+gzip']));
    assert.deepEqual(new Set(await types('zstd')), new Set(['tar+zstd']));
    assert.deepEqual(new Set(await types('plain')), new Set(['tar']));
  });

  it('a registry, read without storing anything: gzip layers pushed by kiln, zstd ones by skopeo', async () => {
    const gzip = `${registry.host}/analyze/src:gzip`;
    await ok(kiln(['tag', 'src:1', gzip]));
    await ok(kiln(['push', '-q', gzip]));
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-compress-format', 'zstd', `docker-archive:${join(dir, 'docker.tar')}`, `docker://${registry.host}/analyze/src:zstd`]);
    const images = (await ok(kiln(['images', '-q', '--no-trunc']))).stdout;
    assert.deepEqual(comparable(await analyze(`docker://${gzip}`)), comparable(fromStore));
    const zstd = `docker://${registry.host}/analyze/src:zstd`;
    assert.deepEqual(comparable(await analyze(zstd), true), comparable(fromStore, true), zstd);
    assert.equal((await ok(kiln(['images', '-q', '--no-trunc']))).stdout, images, 'reading from the registry stored nothing');
  });

  it('an archive of two images needs the one named; a missing name or file is one clear line', async () => {
    await ok(kiln(['tag', 'busybox', 'other:1']));
    await ok(kiln(['save', '-o', join(dir, 'two.tar'), 'src:1', 'other:1']));
    const two = await kiln(['analyze', `docker-archive:${join(dir, 'two.tar')}`]);
    assert.equal(two.code, 125);
    assert.match(two.stderr, /^Error: docker-archive .*two\.tar holds 2 images: name one, as docker-archive:PATH:NAME or :@INDEX\n$/);
    assert.deepEqual(comparable(await analyze(`docker-archive:${join(dir, 'two.tar')}:src:1`)), comparable(fromStore));
    const missing = await kiln(['analyze', `docker-archive:${join(dir, 'two.tar')}:nope:1`]);
    assert.match(missing.stderr, /^Error: docker-archive .*two\.tar has no image named nope:1\n$/);
    const ref = await kiln(['analyze', `oci:${join(dir, 'gzip')}:v2`]);
    assert.match(ref.stderr, /^Error: directory .*gzip: no image named "v2" in index\.json \(it has "img"\)\n$/);
    const nofile = await kiln(['analyze', `oci-archive:${join(dir, 'absent.tar')}`]);
    assert.equal(nofile.code, 1);
    assert.match(nofile.stderr, /^Error: open .*absent\.tar: no such file or directory\n$/);
  });
});
