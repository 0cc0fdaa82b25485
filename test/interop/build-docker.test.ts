import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { ContainerConfig, ImageConfig } from '../../src/oci/types.js';
import { BUILD_CASES, writeContext } from '../helpers/build-cases.js';
import { type Dockerd, dockerdUnavailable, startDockerd } from '../helpers/dockerd.js';
import { savedImageTree } from '../helpers/image-tree.js';
import { ok, runKiln } from '../helpers/kiln.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';

const run = promisify(execFile);
const unavailable = (await dockerdUnavailable()) ?? (await fixturesUnavailable('busybox-rootfs.tar'));

/** The parts of an image config a Docker user relies on, normalized (absent, null and empty alike). */
function configView(image: ImageConfig): Record<string, unknown> {
  const config: ContainerConfig = image.config ?? {};
  const empty = (value: unknown): unknown => (value === null || value === undefined || (typeof value === 'object' && Object.keys(value).length === 0) || value === '' ? undefined : value);
  return {
    author: empty(image.author),
    architecture: image.architecture,
    os: image.os,
    Env: empty(config.Env),
    Cmd: empty(config.Cmd),
    Entrypoint: empty(config.Entrypoint),
    WorkingDir: empty(config.WorkingDir),
    User: empty(config.User),
    Labels: empty(config.Labels),
    ExposedPorts: empty(config.ExposedPorts),
    Volumes: empty(config.Volumes),
    StopSignal: empty(config.StopSignal),
    Healthcheck: empty(config.Healthcheck),
    OnBuild: empty(config.OnBuild),
    Shell: empty(config.Shell),
  };
}

describe("kiln build gives Docker's result: the same root filesystem and config as Docker's classic builder", { skip: unavailable }, () => {
  let dockerd: Dockerd;
  let root: string;
  const kiln = (args: readonly string[]) => runKiln(root, args);
  before(async () => {
    dockerd = await startDockerd();
    // One store for the suite (made here: tempDir's cleanup belongs to a test, not to a hook).
    root = await mkdtemp(join(tmpdir(), 'kiln-root-'));
    // The same busybox image (same ID) on both sides.
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    const archive = join(root, 'busybox.tar');
    await ok(kiln(['save', '-o', archive, 'busybox:latest']));
    await dockerd.docker(['load', '-i', archive]);
  });
  after(async () => {
    await dockerd?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const cases = BUILD_CASES.filter((c) => c.docker);
  it('has a suite of at least 40 Dockerfiles', () => {
    assert.ok(BUILD_CASES.length >= 40, `${BUILD_CASES.length} cases`);
  });

  for (const buildCase of cases) {
    it(buildCase.name, async () => {
      const context = await writeContext(buildCase);
      const tag = `case-${buildCase.name}:1`;
      const out = await tempDir();
      await ok(kiln(['build', '-q', '--network', 'none', '-t', tag, ...(buildCase.args ?? []), context]));
      await ok(kiln(['save', '-o', join(out, 'kiln.tar'), tag]));
      await run('docker', ['-H', dockerd.host, 'build', '-q', '--network=none', '-t', tag, ...(buildCase.args ?? []), context], { env: { ...process.env, DOCKER_BUILDKIT: '0' }, maxBuffer: 16 << 20 });
      await dockerd.docker(['save', '-o', join(out, 'docker.tar'), tag]);
      const ours = await savedImageTree(join(out, 'kiln.tar'));
      const theirs = await savedImageTree(join(out, 'docker.tar'));
      const known = buildCase.knownDifferences ?? {};
      const differences: string[] = [];
      for (const path of new Set([...ours.files.keys(), ...theirs.files.keys()])) {
        if (path in known) continue;
        const a = JSON.stringify(ours.files.get(path));
        const b = JSON.stringify(theirs.files.get(path));
        if (a !== b) differences.push(`${path}: kiln ${a ?? 'missing'} docker ${b ?? 'missing'}`);
      }
      assert.deepEqual(differences, []);
      assert.deepEqual(configView(ours.config), configView(theirs.config));
    });
  }
});
