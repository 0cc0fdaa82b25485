/**
 * What a build sends out of the store, as buildx does: `--cache-to` and `--cache-from`, a build's cache
 * exported to a real registry (Debian's docker-registry) or a directory, then imported by a build on a
 * fresh store with the same base (as CI machines have it): which steps run again, the image ID, and what
 * the store takes in; and the image itself: `--push`, `-o type=registry|image|docker|oci`, read back by
 * pull and load on a fresh store.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot } from '../helpers/paths.js';
import { type Registry, registryUnavailable, startRegistry } from '../helpers/registry.js';

const skip = !isRoot ? 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root' : registryUnavailable() ?? false;

/** A builder stage and a final stage that copies from it and runs on the copy. */
const DOCKERFILE = 'FROM busybox AS builder\nRUN echo built > /out.txt\nFROM busybox\nCOPY --from=builder /out.txt /\nRUN cat /out.txt > /copy.txt\n';

/** Each build step's status (CACHED or DONE) by its name, from `--progress plain`. */
function statuses(result: RunResult): Record<string, string> {
  const lines = result.stderr.split('\n');
  const named = new Map<string, string>();
  for (const line of lines) {
    const match = /^(#\d+) \[[^\]]+\] (.*)$/.exec(line);
    if (match) named.set(match[1] as string, match[2] as string);
  }
  const status: Record<string, string> = {};
  for (const line of lines) {
    const match = /^(#\d+) (CACHED|DONE)/.exec(line);
    const name = match && named.get(match[1] as string);
    if (name) status[name] = match[2] as string;
  }
  return status;
}

const ALL_CACHED = { 'RUN echo built > /out.txt': 'CACHED', 'COPY --from=builder /out.txt /': 'CACHED', 'RUN cat /out.txt > /copy.txt': 'CACHED' };

describe('kiln build: caches and images out of the store', { skip }, () => {
  let registry: Registry;
  let work: string;
  let context: string;
  /** busybox saved from the first store, so every store has the same base image ID (as a pull gives). */
  let base: string;
  /** The store that builds and exports (made in the hook: tempDir's clean-up belongs to a test). */
  let first: { kiln: (args: readonly string[]) => Promise<RunResult> };
  let builtId: string;

  /** A store with the same busybox as the first. */
  async function freshStore(): Promise<Awaited<ReturnType<typeof newKiln>>> {
    const store = await newKiln();
    await ok(store.kiln(['load', '-i', base]));
    return store;
  }

  before(async () => {
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'kiln-build-cache-'));
    first = { kiln: (args) => runKiln(join(work, 'store'), args) };
    await ok(first.kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    base = join(work, 'busybox.tar');
    await ok(first.kiln(['save', '-o', base, 'busybox:latest']));
    context = join(work, 'context');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), DOCKERFILE);
    const built = await ok(first.kiln(['build', '-q', '--cache-to', `type=registry,ref=${registry.host}/cache:max,mode=max`, '--cache-to', `${registry.host}/cache:min`, '--cache-to', `type=local,dest=${join(work, 'layout')},mode=max,tag=main`, '-t', 'app', context]));
    builtId = built.stdout.trim();
  });
  after(async () => {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('mode=max in a registry: a fresh store runs no step, and makes the same image', async () => {
    const { kiln } = await freshStore();
    const rebuilt = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `type=registry,ref=${registry.host}/cache:max`, '--iidfile', join(work, 'iid-max'), context]));
    assert.deepEqual(statuses(rebuilt), ALL_CACHED, rebuilt.stderr);
    assert.match(rebuilt.stderr, new RegExp(`importing cache manifest from ${registry.host}/cache:max`));
    assert.equal((await readFile(join(work, 'iid-max'), 'utf8')).trim(), builtId);
    assert.equal((await kiln(['system', 'check'])).code, 0);
  });

  it('mode=min (a bare --cache-to REF) holds the result\'s steps alone: the builder stage runs again, the final stage\'s steps do not', async () => {
    const { kiln } = await freshStore();
    const rebuilt = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `${registry.host}/cache:min`, context]));
    assert.deepEqual(statuses(rebuilt), { 'RUN echo built > /out.txt': 'DONE', 'COPY --from=builder /out.txt /': 'CACHED', 'RUN cat /out.txt > /copy.txt': 'CACHED' }, rebuilt.stderr);
  });

  it('type=local: an OCI layout under a tag, read back by a fresh store; a second tag keeps the first', async () => {
    const layout = join(work, 'layout');
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    // mode=max: the builder stage's image and the result, both under the tag.
    assert.deepEqual(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']), ['main', 'main']);
    await ok(first.kiln(['build', '-q', '--cache-to', `type=local,dest=${layout},tag=other`, context]));
    const tags = (JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as typeof index).manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
    assert.deepEqual(tags, ['main', 'main', 'other']);
    const { kiln } = await freshStore();
    const rebuilt = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `type=local,src=${layout},tag=main`, '-q', context]));
    assert.equal(rebuilt.stdout.trim(), builtId);
    const verbose = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `type=local,src=${layout},tag=main`, context]));
    assert.deepEqual(statuses(verbose), ALL_CACHED, verbose.stderr);
  });

  it('a bare --cache-from REF the store lacks is read from its registry; a cache with no matching step brings nothing into the store', async () => {
    await ok(first.kiln(['tag', 'app', `${registry.host}/app:1`]));
    await ok(first.kiln(['push', `${registry.host}/app:1`]));
    const { kiln } = await freshStore();
    const rebuilt = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `${registry.host}/app:1`, context]));
    // The pushed result carries its own stage's steps (inline cache), not the builder's.
    assert.deepEqual(statuses(rebuilt), { 'RUN echo built > /out.txt': 'DONE', 'COPY --from=builder /out.txt /': 'CACHED', 'RUN cat /out.txt > /copy.txt': 'CACHED' }, rebuilt.stderr);
    // Another project's build reads the cache's configs, takes no step from it, and stores none of its images.
    const other = await freshStore();
    const otherContext = join(work, 'other');
    await mkdir(otherContext);
    await writeFile(join(otherContext, 'Dockerfile'), 'FROM busybox\nRUN echo other > /other.txt\n');
    const unrelated = await ok(other.kiln(['build', '--progress', 'plain', '--cache-from', `type=registry,ref=${registry.host}/cache:max`, otherContext]));
    assert.deepEqual(statuses(unrelated), { 'RUN echo other > /other.txt': 'DONE' }, unrelated.stderr);
    const stored = (await ok(other.kiln(['images', '-a', '-q', '--no-trunc']))).stdout.trim().split('\n');
    assert.equal(stored.length, 2, stored.join(' ')); // busybox and the result
    assert.ok(!stored.includes(builtId));
  });

  it('--push and -o type=registry push the image under its names; a fresh store pulls the same image', async () => {
    const pushed = await ok(first.kiln(['build', '--progress', 'plain', '--push', '-t', `${registry.host}/app:pushed`, context]));
    assert.match(pushed.stderr, new RegExp(`#\\d+ pushing ${registry.host}/app:pushed\n(#\\d+ [\\d.]+ .*\n)*#\\d+ DONE`), pushed.stderr);
    await ok(first.kiln(['build', '-q', '-o', `type=registry,name=${registry.host}/app:output`, context]));
    const { kiln } = await freshStore();
    for (const tag of ['pushed', 'output']) {
      await ok(kiln(['pull', '-q', `${registry.host}/app:${tag}`]));
      assert.equal((await ok(kiln(['images', '-q', '--no-trunc', `${registry.host}/app:${tag}`]))).stdout.trim(), builtId);
    }
    const untagged = await kiln(['build', '--push', context]);
    assert.equal(untagged.code, 125);
    assert.match(untagged.stderr, /^Error: tag is needed when pushing to registry/);
    const twice = await kiln(['build', '--push', '-t', `${registry.host}/app:x`, '-o', `type=local,dest=${join(work, 'never')}`, context]);
    assert.match(twice.stderr, /^Error: currently only single export is supported/);
  });

  it('-o type=docker and type=oci write the image as an archive (not named in the store) that load reads; oci with tar=false, a layout', async () => {
    const docker = join(work, 'docker.tar');
    const oci = join(work, 'oci.tar');
    assert.equal((await ok(first.kiln(['build', '-q', '-o', `type=docker,dest=${docker}`, '-t', 'exported/app:docker', context]))).stdout.trim(), builtId);
    await ok(first.kiln(['build', '-q', '-o', `type=oci,dest=${oci}`, '-t', 'exported/app:oci', context]));
    await ok(first.kiln(['build', '-q', '-o', `type=oci,dest=${join(work, 'oci-layout')},tar=false,name=exported/app:layout`, context]));
    assert.equal((await ok(first.kiln(['images', '-q', 'exported/app']))).stdout, '', 'an exported image is not named in the store');
    const { kiln } = await freshStore();
    assert.match((await ok(kiln(['load', '-i', docker]))).stdout, /Loaded image: exported\/app:docker/);
    assert.match((await ok(kiln(['load', '-i', oci]))).stdout, /Loaded image: exported\/app:oci/);
    for (const tag of ['docker', 'oci']) assert.equal((await ok(kiln(['images', '-q', '--no-trunc', `exported/app:${tag}`]))).stdout.trim(), builtId);
    const layout = JSON.parse(await readFile(join(work, 'oci-layout', 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    assert.equal(layout.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'], 'layout');
    const manifest = JSON.parse(await readFile(join(work, 'oci-layout', 'blobs', 'sha256', (layout.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as { config: { digest: string } };
    assert.equal(manifest.config.digest, builtId);
  });

  it('bad cache flags: an unknown type and a missing ref are refused before any work; a missing cache is a warning', async () => {
    const { kiln } = await freshStore();
    const gha = await kiln(['build', '--cache-to', 'type=gha', context]);
    assert.equal(gha.code, 1);
    assert.match(gha.stderr, /^Error: --cache-to type=gha: kiln keeps a build cache in a registry \(type=registry\) or a directory \(type=local\), not type=gha/);
    const noRef = await kiln(['build', '--cache-from', 'type=registry,mode=max', context]);
    assert.notEqual(noRef.code, 0);
    assert.match(noRef.stderr, /type=registry needs ref=/);
    const typo = await kiln(['build', '--cache-to', `type=local,dest=${join(work, 'x')},mdoe=max`, context]);
    assert.match(typo.stderr, /type=local takes no mdoe/);
    assert.doesNotMatch(gha.stderr + noRef.stderr + typo.stderr, /\n\s+at /);
    const missing = await ok(kiln(['build', '--progress', 'plain', '--cache-from', `type=local,src=${join(work, 'none')}`, '--cache-from', `${registry.host}/nothing:here`, context]));
    assert.match(missing.stderr, /--cache-from: no such directory: .*none; not used/);
    assert.match(missing.stderr, /--cache-from: .*nothing:here: 404 MANIFEST_UNKNOWN.*; not used/);
    assert.equal(statuses(missing)['RUN echo built > /out.txt'], 'DONE');
  });
});
