/**
 * The differential build suite: each case is built by kiln and by BuildKit (Docker 20.10's built-in
 * BuildKit, v0.8, on a private dockerd), and the two images must have the same flattened root filesystem
 * (image-tree.ts) and the same config as a Docker user sees it. A test file runs a slice of the cases:
 * Node 20 times a whole file like one test.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { ContainerConfig, ImageConfig } from '../../src/oci/types.js';
import { type BuildCase, writeContext } from './build-cases.js';
import { type Dockerd, dockerdUnavailable, startDockerd } from './dockerd.js';
import { type TreeEntry, savedImageTree } from './image-tree.js';
import { ok, runKiln } from './kiln.js';
import { fixture, fixturesUnavailable } from './fixtures.js';
import { tempDir } from './paths.js';

const run = promisify(execFile);

/** Docker 20.10's CLI with BuildKit built in (Debian's docker.io); a newer CLI on the PATH may lack buildx. */
export const BUILDKIT_CLI = '/usr/bin/docker';

/** Why the differential suite cannot run here, or undefined. */
export async function differentialUnavailable(): Promise<string | undefined> {
  const reason = (await dockerdUnavailable()) ?? (await fixturesUnavailable('busybox-rootfs.tar'));
  if (reason) return reason;
  try {
    await run(BUILDKIT_CLI, ['--version']);
    return undefined;
  } catch {
    return `${BUILDKIT_CLI} (Debian's docker.io, with BuildKit built in) is not installed`;
  }
}

/** BuildKit's history lines end in ` # buildkit` where a step made a layer: kiln writes them without. */
function createdBy(line: string | undefined): string {
  return (line ?? '').replace(/ # buildkit$/, '');
}

/** The parts of an image config a Docker user relies on, normalized (absent, null and empty alike). */
export function configView(image: ImageConfig): Record<string, unknown> {
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
    history: (image.history ?? []).map((h) => `${createdBy(h.created_by)}${h.empty_layer ? ' (empty layer)' : ''}`),
  };
}

/** Where two flattened trees differ, path by path, leaving out the paths a case expects to differ. */
export function treeDifferences(ours: ReadonlyMap<string, TreeEntry>, theirs: ReadonlyMap<string, TreeEntry>, known: Readonly<Record<string, string>>): string[] {
  const differences: string[] = [];
  for (const path of [...new Set([...ours.keys(), ...theirs.keys()])].sort()) {
    if (path in known) continue;
    const a = JSON.stringify(ours.get(path));
    const b = JSON.stringify(theirs.get(path));
    if (a !== b) differences.push(`${path}: kiln ${a ?? 'missing'} buildkit ${b ?? 'missing'}`);
  }
  return differences;
}

/** The config fields (configView's keys) whose difference a case expects, with the reason. */
function configDifferences(ours: Record<string, unknown>, theirs: Record<string, unknown>, known: Readonly<Record<string, string>>): string[] {
  return Object.keys({ ...ours, ...theirs }).flatMap((key) => (key in known || JSON.stringify(ours[key]) === JSON.stringify(theirs[key]) ? [] : [`${key}: kiln ${JSON.stringify(ours[key])} buildkit ${JSON.stringify(theirs[key])}`]));
}

export interface Builders {
  /** Builds with kiln into the suite's store. */
  kiln(args: readonly string[]): Promise<void>;
  /** Builds with BuildKit on the suite's dockerd. */
  buildkit(args: readonly string[]): Promise<void>;
}

/**
 * Runs `cases` as a describe block: one kiln store and one dockerd for the block, busybox:latest the same
 * image in both, then `prepare` (base images the cases build on, made by both builders), then the cases,
 * `concurrency` at a time (each builds with kiln and BuildKit at once).
 */
export function differentialSuite(title: string, cases: readonly BuildCase[], options: { readonly concurrency: number; readonly skip: string | undefined; readonly prepare?: (builders: Builders) => Promise<void> }): void {
  describe(title, { skip: options.skip ?? false, concurrency: options.concurrency }, () => {
    let dockerd: Dockerd;
    let root: string;
    const kiln = (args: readonly string[]) => ok(runKiln(root, args));
    const buildkit = async (args: readonly string[]): Promise<void> => {
      await run(BUILDKIT_CLI, ['-H', dockerd.host, 'build', '-q', '--network=none', ...args], { env: { ...process.env, DOCKER_BUILDKIT: '1' }, maxBuffer: 16 << 20 });
    };
    before(async () => {
      dockerd = await startDockerd();
      // One store for the block (made here: tempDir's cleanup belongs to a test, not to a hook).
      root = await mkdtemp(join(tmpdir(), 'kiln-root-'));
      await kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']);
      const archive = join(root, 'busybox.tar');
      await kiln(['save', '-o', archive, 'busybox:latest']);
      await dockerd.docker(['load', '-i', archive]);
      await options.prepare?.({
        kiln: async (args) => void (await kiln(['build', '-q', '--network', 'none', ...args])),
        buildkit,
      });
    });
    after(async () => {
      await dockerd?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    });

    for (const buildCase of cases) {
      it(buildCase.name, async () => {
        const context = await writeContext(buildCase);
        const tag = `case-${buildCase.name}:1`;
        const out = await tempDir();
        const args = ['-t', tag, ...(buildCase.args ?? []), context];
        await Promise.all([
          (async () => {
            await kiln(['build', '-q', '--network', 'none', ...args]);
            await kiln(['save', '-o', join(out, 'kiln.tar'), tag]);
          })(),
          (async () => {
            await buildkit(args);
            await dockerd.docker(['save', '-o', join(out, 'buildkit.tar'), tag]);
          })(),
        ]);
        const ours = await savedImageTree(join(out, 'kiln.tar'));
        const theirs = await savedImageTree(join(out, 'buildkit.tar'));
        assert.deepEqual(treeDifferences(ours.files, theirs.files, buildCase.knownDifferences ?? {}), []);
        assert.deepEqual(configDifferences(configView(ours.config), configView(theirs.config), buildCase.knownConfigDifferences ?? {}), []);
      });
    }
  });
}
