/**
 * The image fixtures, made by the repository itself: from Debian's busybox-static by
 * scripts/busybox-rootfs.sh, and by the real tools the suite already starts (a private dockerd, skopeo).
 * Nothing here is copied from elsewhere; every test that compares kiln with Docker compares it with what
 * Docker did on this machine, in this run's cache.
 *
 * Lifecycle: a fixture is made the first time a test process asks for it and kept in a cache directory
 * ($KILN_FIXTURE_CACHE, else <repo>/.cache/fixtures), one directory per group of fixtures made together,
 * named by a hash of the maker's inputs (its code, the script, busybox's bytes, the tools' versions), so a
 * change to any of them makes the group again and the old directory is removed. Test files run in separate
 * processes at once: the maker holds an exclusive flock(1) on the group's lock file, builds in a temporary
 * directory beside the final one and renames it into place, so a reader sees a whole group or none.
 *
 * Skipping: node:test cannot turn a running test into a skipped one (t.skip() does not stop it), so a test
 * file asks `fixturesUnavailable(...names)` when it loads, as it asks `dockerdUnavailable()`, and passes the
 * reason as its `skip`: that call makes the fixtures, or says why they cannot be made here (no root for
 * dockerd, a tool missing, dockerd not starting). `fixture(name)` then gives the path, or throws that reason.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dockerdUnavailable, type Dockerd, startDockerd } from './dockerd.js';
import { repoRoot } from './paths.js';
import { type TreeEntry, walkTree } from './rootfs.js';

const run = promisify(execFile);

/** The image fixtures the tests use. */
export type FixtureName =
  | 'busybox-rootfs.tar'
  | 'busybox-docker20-save.tar'
  | 'busybox-docker-facts.json'
  | 'whiteouts-docker20-save.tar'
  | 'whiteouts-docker-facts.json'
  | 'whiteouts-oci-layout'
  | 'whiteouts-oci-zstd'
  | 'whiteouts-oci-archive.tar'
  | 'whiteouts-expected-rootfs.json'
  | 'debian-bookworm-rootfs.tar'
  | 'debian-bookworm-dpkg-query.txt';

/** A group of fixtures made together, by one maker, into one directory. */
interface Group {
  readonly name: string;
  readonly fixtures: readonly FixtureName[];
  /** Why the group cannot be made on this machine, or undefined. */
  unavailable(): Promise<string | undefined>;
  /** What the group is made from: any change makes it again. */
  inputs(): Promise<string[]>;
  /** Writes every fixture of the group into `dir`. */
  make(dir: string): Promise<void>;
}

/** A reason a fixture cannot be made here: the tests that need it skip with it. */
class FixtureUnavailable extends Error {}

const fixtureCache = resolve(process.env.KILN_FIXTURE_CACHE ?? join(repoRoot, '.cache', 'fixtures'));
const makerSource = fileURLToPath(import.meta.url);
const rootfsScript = join(repoRoot, 'scripts', 'busybox-rootfs.sh');
/** Debian's busybox-static, which the root filesystem holds ($BUSYBOX to use another static busybox). */
export const busyboxBinary = process.env.BUSYBOX ?? '/bin/busybox';

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function installed(tool: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${tool}`]);
    return true;
  } catch {
    return false;
  }
}

/** The first line a tool prints for `--version`, as an input of the cache key. */
async function version(tool: string): Promise<string> {
  return `${tool}: ${(await run(tool, ['--version'])).stdout.split('\n')[0] ?? ''}`;
}

/**
 * busybox-rootfs.tar proves that kiln reads a root filesystem tar written by GNU tar (./ names, GNU
 * format, a symlink per applet) and imports it with the diffID Docker gives it: the tar is reproducible, so its
 * sha256 is that diffID. Made by scripts/busybox-rootfs.sh, which the main job and the benches run too.
 */
const ROOTFS: Group = {
  name: 'rootfs',
  fixtures: ['busybox-rootfs.tar'],
  unavailable: async () => ((await installed(busyboxBinary)) ? undefined : `${busyboxBinary} is missing: install Debian's busybox-static (scripts/setup.sh does, as root)`),
  inputs: async () => [await sha256File(rootfsScript), await sha256File(busyboxBinary)],
  make: async (dir) => {
    await run('bash', [rootfsScript, join(dir, 'busybox-rootfs.tar')], { env: { ...process.env, BUSYBOX: busyboxBinary } });
  },
};

/**
 * whiteouts:lab, built FROM busybox:lab by Docker's classic builder. Layer 2 has a symlink, a hardlink,
 * a setuid file and files owned by 1000:1000; layer 3 deletes a file (a `.wh.` whiteout), deletes and
 * remakes a directory (an opaque directory, with overlay2) and rewrites the setuid file. The config has
 * ENV, WORKDIR, USER and CMD, so a run shows them.
 */
const WHITEOUTS_DOCKERFILE = `FROM busybox:lab
RUN mkdir -p /d/sub /d/keep /home/app \\
 && echo a > /d/a && chmod 4755 /d/a && ln -s /d/a /d/link \\
 && echo b > /d/sub/b && echo k > /d/keep/k && ln /d/keep/k /d/hard && echo secret > /d/gone \\
 && echo x > /home/app/owned && chown -R 1000:1000 /home/app
RUN rm /d/gone && rm -r /d/sub && mkdir /d/sub && echo c > /d/sub/c && echo a2 > /d/a
ENV HELLO=world
WORKDIR /d
USER 1000
CMD ["cat", "/d/sub/c"]
`;

/** What `docker` printed about an image on the daemon that made it: the values tests compare kiln with. */
export interface DockerFacts {
  /** `docker image inspect` (the one object). */
  readonly inspect: { readonly Id: string; readonly Size: number; readonly RootFS: { readonly Layers: readonly string[] } } & Record<string, unknown>;
  /** `docker history --format '{{json .}}'`, newest first: CreatedBy truncated, sizes human. */
  readonly history: readonly DockerHistoryRow[];
  /** The same with `--no-trunc`. */
  readonly historyNoTrunc: readonly DockerHistoryRow[];
  /** `docker images --format '{{json .}}'` for the image's name. */
  readonly images: { readonly ID: string; readonly Repository: string; readonly Tag: string; readonly Size: string; readonly VirtualSize: string };
}

export interface DockerHistoryRow {
  readonly ID: string;
  readonly CreatedBy: string;
  readonly Size: string;
  readonly Comment: string;
}

async function factsOf(dockerd: Dockerd, name: string): Promise<DockerFacts> {
  const lines = (text: string): unknown[] => text.trim().split('\n').map((line) => JSON.parse(line) as unknown);
  const [inspect] = JSON.parse(await dockerd.docker(['image', 'inspect', name])) as DockerFacts['inspect'][];
  const [images] = lines(await dockerd.docker(['images', '--format', '{{json .}}', name])) as DockerFacts['images'][];
  if (!inspect || !images) throw new Error(`docker does not show ${name}`);
  return {
    inspect,
    history: lines(await dockerd.docker(['history', '--format', '{{json .}}', name])) as DockerHistoryRow[],
    historyNoTrunc: lines(await dockerd.docker(['history', '--no-trunc', '--format', '{{json .}}', name])) as DockerHistoryRow[],
    images,
  };
}

/** The files Docker adds to every container, which an export holds but the image does not. */
const CONTAINER_ONLY = ['/dev', '/proc', '/sys', '/.dockerenv', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf'];

/**
 * The tree `docker export` gives (unpacked by GNU tar as root, so owners and modes stay), as entries: a
 * second name of a file is a `hardlink` to the first in path order, as a tar writer would emit it.
 */
async function exportedTree(exportTar: string, scratch: string): Promise<TreeEntry[]> {
  const root = join(scratch, 'export');
  await mkdir(root);
  await run('tar', ['--numeric-owner', '-p', '-C', root, '-xf', exportTar]);
  const { entries, inodes } = await walkTree(root, CONTAINER_ONLY);
  const firstName = new Map<number, string>();
  return [...entries.values()].map((entry) => {
    const inode = inodes.get(entry.path);
    if (inode === undefined) return entry;
    const first = firstName.get(inode);
    if (first === undefined) {
      firstName.set(inode, entry.path);
      return entry;
    }
    return { path: entry.path, type: 'hardlink', mode: entry.mode, uid: entry.uid, gid: entry.gid, linkname: first.slice(1) };
  });
}

/** The names of the entries in the tar of layer `index` of a `docker save` archive. */
async function savedLayerNames(archive: string, index: number): Promise<string[]> {
  const [manifest] = JSON.parse((await run('tar', ['-xOf', archive, 'manifest.json'])).stdout) as { Layers: string[] }[];
  const layer = manifest?.Layers[index];
  if (!layer) throw new Error(`${archive} has no layer ${index}`);
  const { stdout } = await run('sh', ['-c', 'tar -xOf "$1" "$2" | tar -tf -', 'sh', archive, layer], { maxBuffer: 16 << 20 });
  return stdout.split('\n').filter((line) => line !== '');
}

/** Checks that a tool wrote what the fixture claims to prove; otherwise the fixture would prove nothing. */
function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(`fixture maker: ${what}`);
}

/**
 * Everything Docker and skopeo make, in one dockerd session:
 * - busybox-docker20-save.tar: `docker import` of busybox-rootfs.tar (CMD, ENV PATH), then `docker save`:
 *   proves kiln loads Docker's legacy save layout (`<id>/layer.tar`, `<id>.json`, manifest.json,
 *   repositories; Docker ≤ 24, as Debian 12's 20.10 writes it) with the image ID Docker computed.
 * - whiteouts-docker20-save.tar: whiteouts:lab (see WHITEOUTS_DOCKERFILE) saved the same way: proves three
 *   layers, whiteouts, opaque directories, hardlinks, setuid and owners load and apply as Docker's do.
 * - busybox-docker-facts.json, whiteouts-docker-facts.json: what `docker inspect`, `history` and `images`
 *   printed for the two images (IDs, diffIDs, sizes, CreatedBy): kiln must print the same.
 * - whiteouts-oci-layout/, whiteouts-oci-zstd/, whiteouts-oci-archive.tar: skopeo copies of the
 *   whiteouts save into an OCI layout with gzip layers, one with zstd layers, and an oci-archive: prove
 *   kiln reads the OCI layout skopeo writes, in every compression, named by its ref.name annotation.
 * - whiteouts-expected-rootfs.json: the root filesystem `docker create` + `docker export` gives for
 *   whiteouts:lab, without what Docker adds to a container (CONTAINER_ONLY): kiln's unpack must give the
 *   same tree (types, modes, owners, contents, links).
 */
const DOCKER: Group = {
  name: 'docker',
  fixtures: ['busybox-docker20-save.tar', 'busybox-docker-facts.json', 'whiteouts-docker20-save.tar', 'whiteouts-docker-facts.json', 'whiteouts-oci-layout', 'whiteouts-oci-zstd', 'whiteouts-oci-archive.tar', 'whiteouts-expected-rootfs.json'],
  unavailable: async () => {
    const reason = (await ROOTFS.unavailable()) ?? (await dockerdUnavailable());
    if (reason) return `the Docker-made fixtures need dockerd: ${reason}`;
    return (await installed('skopeo')) ? undefined : 'skopeo is not installed (scripts/setup.sh installs it as root)';
  },
  inputs: async () => [...(await ROOTFS.inputs()), await sha256File(makerSource), ...(await Promise.all(['dockerd', 'docker', 'skopeo', 'tar'].map(version)))],
  make: async (dir) => {
    const rootfs = await fixture('busybox-rootfs.tar');
    const scratch = join(dir, '.scratch');
    await mkdir(join(scratch, 'context'), { recursive: true });
    let dockerd: Dockerd;
    try {
      dockerd = await startDockerd();
    } catch (err) {
      throw new FixtureUnavailable(`the Docker-made fixtures need dockerd, which did not start here: ${String(err).split('\n').slice(0, 3).join(' ')}`);
    }
    const save = (name: string) => join(dir, `${name}-docker20-save.tar`);
    try {
      await dockerd.docker(['import', '-c', 'CMD ["sh"]', '-c', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', rootfs, 'busybox:lab']);
      await dockerd.docker(['save', '-o', save('busybox'), 'busybox:lab']);
      await writeFile(join(dir, 'busybox-docker-facts.json'), JSON.stringify(await factsOf(dockerd, 'busybox:lab'), null, 2));

      await writeFile(join(scratch, 'context', 'Dockerfile'), WHITEOUTS_DOCKERFILE);
      await run('docker', ['-H', dockerd.host, 'build', '-q', '--network=none', '-t', 'whiteouts:lab', join(scratch, 'context')], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
      await dockerd.docker(['save', '-o', save('whiteouts'), 'whiteouts:lab']);
      await writeFile(join(dir, 'whiteouts-docker-facts.json'), JSON.stringify(await factsOf(dockerd, 'whiteouts:lab'), null, 2));

      const container = (await dockerd.docker(['create', '--network=none', 'whiteouts:lab'])).trim();
      await dockerd.docker(['export', '-o', join(scratch, 'export.tar'), container]);
      await dockerd.docker(['rm', container]);
    } finally {
      await dockerd.stop();
    }
    const top = await savedLayerNames(save('whiteouts'), 2);
    expect(top.includes('d/.wh.gone') && top.includes('d/sub/.wh..wh..opq'), `Docker wrote no whiteout or no opaque directory in whiteouts:lab's last layer (is its storage driver overlay2?): ${top.join(' ')}`);
    await writeFile(join(dir, 'whiteouts-expected-rootfs.json'), JSON.stringify(await exportedTree(join(scratch, 'export.tar'), scratch), null, 1));

    const source = `docker-archive:${save('whiteouts')}`;
    await run('skopeo', ['copy', '-q', source, `oci:${join(dir, 'whiteouts-oci-layout')}:whiteouts:lab`]);
    await run('skopeo', ['copy', '-q', '--dest-compress-format', 'zstd', source, `oci:${join(dir, 'whiteouts-oci-zstd')}:whiteouts:lab`]);
    await run('skopeo', ['copy', '-q', source, `oci-archive:${join(dir, 'whiteouts-oci-archive.tar')}:whiteouts:lab`]);
    const zstd = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${join(dir, 'whiteouts-oci-zstd')}:whiteouts:lab`])).stdout) as { layers: { mediaType: string }[] };
    expect(zstd.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'), `skopeo wrote other than zstd layers: ${zstd.layers.map((l) => l.mediaType).join(' ')}`);
    await rm(scratch, { recursive: true, force: true });
  },
};

/** The Debian mirror this machine's apt is configured with (deb822 sources, else sources.list): debootstrap's mirror. */
async function debianMirror(): Promise<string | undefined> {
  const texts = await Promise.all(['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].map((path) => readFile(path, 'utf8').catch(() => '')));
  const deb822 = /^URIs:\s*(\S+)\s*$/m.exec(texts[0] ?? '')?.[1];
  return deb822 ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(texts[1] ?? '')?.[1];
}

/**
 * debian-bookworm-rootfs.tar: `debootstrap --variant=minbase bookworm` from the machine's configured
 * Debian mirror, tarred (numeric owners) for `kiln import`; debian-bookworm-dpkg-query.txt: what
 * `dpkg-query -W` lists in that tree (`NAME VERSION` a line), which kiln sbom must list too.
 */
const DEBIAN: Group = {
  name: 'debian',
  fixtures: ['debian-bookworm-rootfs.tar', 'debian-bookworm-dpkg-query.txt'],
  unavailable: async () => {
    if (process.getuid?.() !== 0) return 'debootstrap needs root';
    if (!(await installed('debootstrap'))) return 'debootstrap is not installed (scripts/setup.sh installs it as root)';
    return (await debianMirror()) === undefined ? 'no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list' : undefined;
  },
  inputs: async () => ['debootstrap --variant=minbase bookworm, tar --numeric-owner, dpkg-query -W', (await debianMirror()) ?? '', (await run('dpkg-query', ['-W', '-f', '${Version}', 'debootstrap'])).stdout],
  make: async (dir) => {
    const rootfs = join(dir, '.scratch', 'rootfs');
    await mkdir(rootfs, { recursive: true });
    try {
      await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, (await debianMirror()) ?? ''], { maxBuffer: 64 << 20 });
    } catch (err) {
      throw new FixtureUnavailable(`debootstrap from the configured mirror failed here: ${String(err).split('\n').slice(0, 3).join(' ')}`);
    }
    const listed = await run('dpkg-query', ['-W', '-f', '${Package} ${Version}\n', `--admindir=${join(rootfs, 'var', 'lib', 'dpkg')}`], { maxBuffer: 16 << 20 });
    await writeFile(join(dir, 'debian-bookworm-dpkg-query.txt'), listed.stdout);
    await run('tar', ['--numeric-owner', '-C', rootfs, '-cf', join(dir, 'debian-bookworm-rootfs.tar'), '.']);
    await rm(join(dir, '.scratch'), { recursive: true, force: true });
  },
};

const GROUPS: readonly Group[] = [ROOTFS, DOCKER, DEBIAN];

function groupOf(name: FixtureName): Group {
  const group = GROUPS.find((g) => g.fixtures.includes(name));
  if (!group) throw new Error(`no maker for fixture ${name}`);
  return group;
}

/** Holds an exclusive flock(1) on `lockFile` while `work` runs; the lock goes with this process too. */
async function withLock<T>(lockFile: string, work: () => Promise<T>): Promise<T> {
  const holder = spawn('flock', ['--exclusive', lockFile, 'sh', '-c', 'echo locked && exec cat > /dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => holder.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('error', reject);
    void exited.then((code) => reject(new Error(`flock ${lockFile} exited ${code} before locking`)));
  });
  try {
    return await work();
  } finally {
    holder.stdin.end();
    await exited;
  }
}

/** The group's directory, made first if need be; memoized per process. */
const made = new Map<string, Promise<string>>();

function groupDir(group: Group): Promise<string> {
  let dir = made.get(group.name);
  if (!dir) {
    dir = makeGroup(group);
    made.set(group.name, dir);
  }
  return dir;
}

async function makeGroup(group: Group): Promise<string> {
  const reason = await group.unavailable();
  if (reason) throw new FixtureUnavailable(reason);
  const key = createHash('sha256').update((await group.inputs()).join('\n')).digest('hex').slice(0, 16);
  const dir = join(fixtureCache, `${group.name}-${key}`);
  await mkdir(fixtureCache, { recursive: true });
  if (await exists(dir)) return dir;
  return withLock(join(fixtureCache, `${group.name}.lock`), async () => {
    if (await exists(dir)) return dir; // another process made it while this one waited
    // Under the lock, a temporary directory of the group is what a killed maker left.
    for (const name of await readdir(fixtureCache)) if (name.startsWith(`.${group.name}-`)) await rm(join(fixtureCache, name), { recursive: true, force: true });
    const temporary = join(fixtureCache, `.${group.name}-${key}.${process.pid}`);
    await mkdir(temporary);
    try {
      const started = Date.now();
      await group.make(temporary);
      await run('chmod', ['-R', 'a+rX', temporary]);
      await rename(temporary, dir);
      process.stderr.write(`fixtures: made ${group.name} (${group.fixtures.join(', ')}) in ${((Date.now() - started) / 1000).toFixed(1)} s into ${dir}\n`);
    } finally {
      await rm(temporary, { recursive: true, force: true });
    }
    // Older versions of the group (made by a maker that has changed since) go.
    for (const name of await readdir(fixtureCache)) {
      if (name.startsWith(`${group.name}-`) && join(fixtureCache, name) !== dir) await rm(join(fixtureCache, name), { recursive: true, force: true });
    }
    return dir;
  });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The path of a fixture, made if need be; throws the reason when it cannot be made here. */
export async function fixture(name: FixtureName): Promise<string> {
  return join(await groupDir(groupOf(name)), name);
}

/**
 * Why these fixtures cannot be made here (a test's `skip`), or undefined once they are made. Faults of
 * a maker on a machine that has its tools are errors, not reasons: they fail the tests that ask.
 */
export async function fixturesUnavailable(...names: FixtureName[]): Promise<string | undefined> {
  try {
    for (const name of names) await fixture(name);
    return undefined;
  } catch (err) {
    if (err instanceof FixtureUnavailable) return err.message;
    throw err;
  }
}

/**
 * Makes every fixture this machine can make before the test files start (scripts/test.sh), so that no
 * file spends its time limit waiting for them, and says which cannot be made here and why.
 */
export async function makeFixtures(): Promise<void> {
  for (const group of GROUPS) {
    const reason = await fixturesUnavailable(...group.fixtures);
    process.stdout.write(`fixtures: ${group.fixtures.join(', ')}: ${reason ? `not made here (${reason})` : 'ready'}\n`);
  }
}

/** What Docker printed about busybox:lab or whiteouts:lab when it made them. */
export async function dockerFacts(image: 'busybox' | 'whiteouts'): Promise<DockerFacts> {
  return JSON.parse(await readFile(await fixture(`${image}-docker-facts.json`), 'utf8')) as DockerFacts;
}

/** The digests of the config and layer blobs of the image in an OCI layout fixture (skopeo wrote them). */
export async function ociLayoutImage(name: 'whiteouts-oci-layout' | 'whiteouts-oci-zstd'): Promise<{ config: string; layers: string[] }> {
  const dir = await fixture(name);
  const blob = async (digest = ''): Promise<unknown> => JSON.parse(await readFile(join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')), 'utf8'));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = (await blob(index.manifests[0]?.digest)) as { config: { digest: string }; layers: { digest: string }[] };
  return { config: manifest.config.digest, layers: manifest.layers.map((layer) => layer.digest) };
}

/** The root filesystem Docker exported for whiteouts:lab (see the DOCKER maker). */
export async function expectedWhiteoutsTree(): Promise<TreeEntry[]> {
  return JSON.parse(await readFile(await fixture('whiteouts-expected-rootfs.json'), 'utf8')) as TreeEntry[];
}
