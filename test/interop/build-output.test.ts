/**
 * `kiln build -o` against BuildKit's `docker build -o` (Docker 20.10's, on a private dockerd): the same
 * Dockerfile written out as a directory (local) and as a tar by each, compared entry by entry, times aside.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, differentialUnavailable } from '../helpers/differential.js';
import { type Dockerd, startDockerd } from '../helpers/dockerd.js';
import { fixture } from '../helpers/fixtures.js';
import { ok, runKiln } from '../helpers/kiln.js';
import { walkTree } from '../helpers/rootfs.js';
import { readEntries } from '../helpers/tar.js';

const run = promisify(execFile);

/** A build stage that makes owners, modes, links and a hardlink, and a scratch stage with its result. */
const DOCKERFILE = `FROM busybox AS build
RUN mkdir -p /out/sub /out/empty && echo built > /out/sub/file && chown 1000:1000 /out/sub/file && chmod 700 /out/sub && ln -s sub/file /out/link && ln /out/sub/file /out/hard && mkfifo /out/pipe
COPY a.txt /out/
FROM scratch
COPY --from=build /out /
`;

/** A tar's entries as a user compares them: name, kind, mode, owner, size, content or link (no times). */
async function tarListing(file: string): Promise<string[]> {
  return (await readEntries([await readFile(file)])).map(({ header, body }) => [header.path, header.type, (header.mode & 0o7777).toString(8), `${header.uid}:${header.gid}`, header.size, header.linkname ?? createHash('sha256').update(body).digest('hex').slice(0, 12)].join(' '));
}

/** A directory's entries the same way, with which names are one file. */
async function treeListing(dir: string): Promise<string[]> {
  const { entries, inodes } = await walkTree(dir);
  const firstName = new Map<number, string>();
  for (const [path, inode] of inodes) if (!firstName.has(inode)) firstName.set(inode, path);
  return [...entries.values()].map((e) => [e.path, e.type, e.mode, `${e.uid}:${e.gid}`, e.size ?? '', e.linkname ?? e.sha256?.slice(0, 12) ?? '', inodes.has(e.path) ? firstName.get(inodes.get(e.path) as number) : ''].join(' '));
}

describe('kiln build -o: the files BuildKit writes', { skip: await differentialUnavailable() }, () => {
  let dockerd: Dockerd;
  /** The store, the context and the outputs: made in the hook (tempDir's clean-up belongs to a test). */
  let work: string;
  const root = (): string => join(work, 'store');
  const context = (): string => join(work, 'context');
  const kiln = (args: readonly string[]) => runKiln(root(), args);
  const buildkit = async (args: readonly string[]): Promise<void> => {
    await run(BUILDKIT_CLI, ['-H', dockerd.host, 'build', '-q', '--network=none', ...args], { env: { ...process.env, DOCKER_BUILDKIT: '1' } });
  };
  before(async () => {
    dockerd = await startDockerd();
    work = await mkdtemp(join(tmpdir(), 'kiln-output-'));
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    await ok(kiln(['save', '-o', join(work, 'busybox.tar'), 'busybox:latest']));
    await dockerd.docker(['load', '-i', join(work, 'busybox.tar')]);
    await ok(kiln(['version'])); // the store's directory is made
    await run('mkdir', [context()]);
    await writeFile(join(context(), 'Dockerfile'), DOCKERFILE);
    await writeFile(join(context(), 'a.txt'), 'alpha\n', { mode: 0o640 });
  });
  after(async () => {
    await dockerd?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('type=tar: the same entries in the same order, owners kept', async () => {
    await Promise.all([buildkit(['-o', `type=tar,dest=${join(work, 'buildkit.tar')}`, context()]), ok(kiln(['build', '-q', '--network', 'none', '-o', `type=tar,dest=${join(work, 'kiln.tar')}`, context()]))]);
    const theirs = await tarListing(join(work, 'buildkit.tar'));
    assert.ok(theirs.includes('sub/file hardlink 644 1000:1000 0 hard'), theirs.join('\n'));
    assert.deepEqual(await tarListing(join(work, 'kiln.tar')), theirs);
  });

  it('a directory (PATH, or type=local): the same tree, every file the invoking user\'s, a new directory 0700', async () => {
    const [ours, theirs] = [join(work, 'kiln-dir', 'nested'), join(work, 'buildkit-dir', 'nested')];
    await Promise.all([buildkit(['-o', theirs, context()]), ok(kiln(['build', '-q', '--network', 'none', '-o', `type=local,dest=${ours}`, context()]))]);
    const expected = await treeListing(theirs);
    assert.ok(expected.some((line) => line.startsWith('/hard file ') && line.endsWith(' /hard')), expected.join('\n'));
    assert.deepEqual(await treeListing(ours), expected);
    assert.equal((await stat(ours)).mode & 0o777, (await stat(theirs)).mode & 0o777);
  });

  it('a target stage\'s whole tree, to the last entry', async () => {
    await Promise.all([buildkit(['--target', 'build', '-o', `type=tar,dest=${join(work, 'buildkit-stage.tar')}`, context()]), ok(kiln(['build', '-q', '--network', 'none', '--target', 'build', '-o', `type=tar,dest=${join(work, 'kiln-stage.tar')}`, context()]))]);
    assert.deepEqual(await tarListing(join(work, 'kiln-stage.tar')), await tarListing(join(work, 'buildkit-stage.tar')));
  });
});
