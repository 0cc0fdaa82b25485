/**
 * A container's files from outside: `docker cp` and the API's archive routes, `export`, `diff` and
 * `commit`. The archive routes see the container as its process does: the files kiln generates
 * (/etc/hostname, /etc/hosts, /etc/resolv.conf) and what binds and volumes mount over its root, not the
 * mount points beneath them.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readlink, rm, stat } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KilnError, storeWriteError } from '../../errors.js';
import { applyChanges } from '../../builder/changes.js';
import { resolveInRoot } from '../../builder/ops.js';
import { type Change, EMPTY_TREE, overlayChanges, overlayLayerEntries, treeChanges, treeLayerEntries } from '../../layer/diff.js';
import { applyLayer } from '../../layer/apply.js';
import { type Graft, tarDirectory, tarPath } from '../../layer/directory.js';
import { encodeLayer } from '../../layer/tar/writer.js';
import type { ContainerRow } from '../../meta/db.js';
import type { Digest } from '../../oci/digest.js';
import { appendLayers, historyEntry, setConfig } from '../../image/mutate.js';
import { MediaType } from '../../oci/mediatypes.js';
import { parseReference, referenceString, withDefaultTag } from '../../reference/reference.js';
import { mount, unmount } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { volumePath } from '../volumes.js';
import { containerBundle, containerKey, findContainer, isRunning, settingsOf, snapshotterFor } from './records.js';

/**
 * Runs `use` on a container's root filesystem: a running container's where it is mounted, a stopped
 * one's snapshot mounted on a scratch directory for the time of `use`.
 */
async function withContainerRoot<T>(engine: Engine, container: ContainerRow, use: (root: string) => Promise<T>): Promise<T> {
  if (isRunning(container)) return use(join(containerBundle(engine, container.id), 'rootfs'));
  const [spec] = snapshotterFor(engine, container).mounts(containerKey(container.id));
  if (!spec) throw new KilnError('INTERNAL', `container ${container.name} has no filesystem`);
  await mkdir(engine.store.content.tmpDir, { recursive: true });
  const target = await mkdtemp(join(engine.store.content.tmpDir, 'rootfs-'));
  await mount(spec, target);
  try {
    return await use(target);
  } finally {
    await unmount(target);
    await rm(target, { recursive: true, force: true });
  }
}

/** What is mounted over a container's root, as the archive routes see through it: a path in the container, and the host path that holds it. */
interface Overlay {
  readonly target: string;
  readonly source: string;
}

/** The container's generated files (once a start has written them) and its binds and volumes, deepest first. */
function overlays(engine: Engine, container: ContainerRow): Overlay[] {
  const bundle = containerBundle(engine, container.id);
  const generated = [
    { target: '/etc/hostname', source: join(bundle, 'hostname') },
    { target: '/etc/hosts', source: join(bundle, 'hosts') },
    { target: '/etc/resolv.conf', source: join(bundle, 'resolv.conf') },
  ].filter((overlay) => existsSync(overlay.source));
  const mounts = settingsOf(container).mounts.flatMap((m) => (m.type === 'bind' ? [{ target: m.target, source: m.source }] : m.type === 'volume' ? [{ target: m.target, source: volumePath(engine, m.source) }] : []));
  return [...generated, ...mounts].sort((a, b) => b.target.length - a.target.length);
}

/** The container's file tree for the archive routes: its root, and what is mounted over it. */
interface View {
  readonly root: string;
  readonly overlays: readonly Overlay[];
}

/**
 * The host path of a container's `path` through its overlays: its parents resolved inside the root or
 * the mount that holds them (symlinks too), its own name as it is (followed too with `follow`).
 */
function hostPath(view: View, path: string, follow: boolean): string {
  const normalized = posix.normalize(`/${path}`);
  const overlay = view.overlays.find((o) => normalized === o.target || normalized.startsWith(`${o.target}/`));
  const root = overlay?.source ?? view.root;
  const rest = overlay ? normalized.slice(overlay.target.length) || '/' : normalized;
  if (rest === '/' || follow) return resolveInRoot(root, rest);
  return join(resolveInRoot(root, posix.dirname(rest)), posix.basename(rest));
}

/** A walk's graft for a view: a mount point under its root is taken as the mount's source. */
function graftOf(view: View): Graft {
  const byHostPath = new Map(view.overlays.map((o) => [join(view.root, o.target), o.source]));
  return (path) => byHostPath.get(path);
}

async function withView<T>(engine: Engine, container: ContainerRow, use: (view: View) => Promise<T>): Promise<T> {
  return withContainerRoot(engine, container, (root) => use({ root, overlays: overlays(engine, container) }));
}

/**
 * `docker export`: the container's whole filesystem as a tar (its root only: volumes are not in it, as
 * with Docker); `consume` gets the stream while the filesystem is mounted.
 */
export async function exportContainer(engine: Engine, nameOrId: string, consume: (tar: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  const container = findContainer(engine, nameOrId);
  await withContainerRoot(engine, container, (root) => consume(tarDirectory(root)));
  recordEvent(engine, 'container', 'export', container.id, { image: settingsOf(container).image, name: container.name });
}

/** A path in a container as `docker cp` and the API's archive routes describe it; `mode` has Go's os.FileMode type bits. */
export interface ContainerPathStat {
  readonly name: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: string;
  readonly linkTarget: string;
  readonly isDirectory: boolean;
}

async function statIn(view: View, container: ContainerRow, path: string, follow = false): Promise<{ host: string; stat: ContainerPathStat }> {
  const host = hostPath(view, path, follow);
  const st = await lstat(host).catch(() => undefined);
  if (!st) throw new KilnError('NOT_FOUND', `Could not find the file ${path} in container ${container.name}`);
  const typeBits = st.isDirectory() ? 2 ** 31 : st.isSymbolicLink() ? 2 ** 27 : 0;
  const stat = {
    name: posix.basename(posix.normalize(`/${path}`)) || '/',
    size: st.size,
    mode: typeBits + (st.mode & 0o777),
    mtime: st.mtime.toISOString(),
    linkTarget: st.isSymbolicLink() ? await readlink(host) : '',
    isDirectory: st.isDirectory(),
  };
  return { host, stat };
}

/** `docker cp`'s look at a path in a container (the API's HEAD archive); `follow` (-L) looks through a symlink. */
export async function statContainerPath(engine: Engine, nameOrId: string, path: string, follow = false): Promise<ContainerPathStat> {
  const container = findContainer(engine, nameOrId);
  return withView(engine, container, async (view) => (await statIn(view, container, path, follow)).stat);
}

/**
 * `docker cp CONTAINER:PATH`: the path as a tar whose entry is named `as` (default its own name; `.` gives
 * a directory's contents), given to `consume` with the path's description while the filesystem is mounted.
 * With `follow` (-L), a symlink is copied as what it points to, under its own name.
 */
export async function archiveContainerPath(engine: Engine, nameOrId: string, path: string, consume: (tar: AsyncIterable<Buffer>, stat: ContainerPathStat) => Promise<void>, options: { readonly as?: string; readonly follow?: boolean } = {}): Promise<void> {
  const { as, follow = false } = options;
  const container = findContainer(engine, nameOrId);
  await withView(engine, container, async (view) => {
    const { host, stat } = await statIn(view, container, path, follow);
    await consume(tarPath(host, as ?? (stat.name === '/' ? '.' : stat.name), false, graftOf(view)), stat);
  });
}

/**
 * `docker cp … CONTAINER:DIR`: a tar unpacked into a directory of the container (a volume's, when one is
 * mounted there), every path kept inside it; owners become root's unless `keepOwners` (`-a`).
 */
export async function extractToContainer(engine: Engine, nameOrId: string, dir: string, tar: AsyncIterable<Uint8Array>, keepOwners: boolean): Promise<void> {
  const container = findContainer(engine, nameOrId);
  await withView(engine, container, async (view) => {
    const host = hostPath(view, dir, true);
    if (!(await stat(host).catch(() => undefined))?.isDirectory()) throw new KilnError('NOT_FOUND', `Could not find the directory ${dir} in container ${container.name} (the destination must be a directory that exists)`);
    await applyLayer(host, tar, { whiteouts: 'delete', privileged: true, what: `the copy into ${container.name}:${dir}`, ...(keepOwners ? {} : { owner: { uid: 0, gid: 0 } }) }).catch((err: unknown) => {
      throw storeWriteError(err, engine.store.root, host);
    });
  });
}

/** Counts the bytes of a stream as they pass (the size docker cp reports). */
function counted(source: AsyncIterable<Uint8Array>, count: { bytes: number }): AsyncIterable<Uint8Array> {
  return (async function* () {
    for await (const chunk of source) {
      count.bytes += chunk.length;
      yield chunk;
    }
  })();
}

/**
 * Where a copy lands by docker cp's rules, given what the source is and what the destination is now:
 * into an existing directory under the source's name (its contents for SRC/.), over an existing file, or
 * as a new file or directory named as the destination, whose parent must exist. Returns the directory
 * the tar unpacks into and the name its top entry takes.
 */
function landing(source: { name: string; isDirectory: boolean; contentsOnly: boolean }, destination: { path: string; isDirectory?: boolean | undefined; exists: boolean }): { dir: string; as: string } {
  if (destination.exists && destination.isDirectory) return { dir: destination.path, as: source.contentsOnly && source.isDirectory ? '.' : source.name };
  if (destination.exists && source.isDirectory) throw new KilnError('CONFLICT', `cannot copy a directory to a file: ${destination.path}`);
  if (!destination.exists && !source.isDirectory && destination.path.endsWith('/')) throw new KilnError('NOT_FOUND', `the destination directory ${destination.path} must exist`);
  const path = destination.path.replace(/\/+$/, '') || '/';
  return { dir: posix.dirname(path), as: posix.basename(path) };
}

/** docker cp's options: `archive` (-a) keeps owners, `follow` (-L) copies what a source symlink points to. */
export interface CopyOptions {
  readonly archive: boolean;
  readonly follow: boolean;
}

/**
 * `docker cp CONTAINER:PATH DEST`: to a host path by docker cp's rules (files owned by whoever runs kiln
 * unless `archive`), or as a tar to a stream (`-`). Returns the bytes copied.
 */
export async function copyFromContainer(engine: Engine, nameOrId: string, path: string, destination: string | NodeJS.WritableStream, options: CopyOptions): Promise<number> {
  const count = { bytes: 0 };
  const { follow } = options;
  if (typeof destination !== 'string') {
    await archiveContainerPath(engine, nameOrId, path, (tar) => pipeline(counted(tar, count), destination), { follow });
    return count.bytes;
  }
  const source = await statContainerPath(engine, nameOrId, path, follow);
  const existing = await stat(destination).catch(() => undefined);
  const { dir, as } = landing({ ...source, contentsOnly: /(^|\/)\.$/.test(path) }, { path: destination, isDirectory: existing?.isDirectory(), exists: existing !== undefined });
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new KilnError('NOT_FOUND', `the parent directory ${dir} of ${destination} does not exist`);
  const owner = options.archive ? {} : { owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } };
  await archiveContainerPath(engine, nameOrId, path, (tar) => applyLayer(dir, counted(tar, count), { whiteouts: 'delete', what: `the copy of ${nameOrId}:${path}`, ...owner }).then(() => undefined), { as, follow });
  return count.bytes;
}

/**
 * `docker cp SRC CONTAINER:PATH`: a host path by docker cp's rules, or a tar from a stream (`-`, into a
 * directory). Returns the bytes copied.
 */
export async function copyIntoContainer(engine: Engine, source: string | AsyncIterable<Uint8Array>, nameOrId: string, path: string, options: CopyOptions): Promise<number> {
  const count = { bytes: 0 };
  if (typeof source !== 'string') {
    await extractToContainer(engine, nameOrId, path, counted(source, count), options.archive);
    return count.bytes;
  }
  const local = await (options.follow ? stat : lstat)(source).catch(() => undefined);
  if (!local) throw new KilnError('NOT_FOUND', `could not find the file ${source} (no such file or directory)`);
  const existing = await statContainerPath(engine, nameOrId, path).catch((err: unknown) => {
    if (err instanceof KilnError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  });
  const { dir, as } = landing({ name: posix.basename(resolve(source)), isDirectory: local.isDirectory(), contentsOnly: /(^|\/)\.$/.test(source) }, { path, isDirectory: existing?.isDirectory, exists: existing !== undefined });
  await extractToContainer(engine, nameOrId, dir, counted(tarPath(source, as, options.follow), count), options.archive);
  return count.bytes;
}

/**
 * The container's writable snapshot and the image snapshots below it, nearest first. For overlay the
 * writable one holds only the changes; for vfs it is a full copy and the nearest lower is the image.
 */
function layerDirs(engine: Engine, container: ContainerRow): { driver: 'overlay' | 'vfs'; upper: string; lowers: string[] } {
  const snapshots = snapshotterFor(engine, container);
  const key = containerKey(container.id);
  return { driver: snapshots.driver, upper: snapshots.dir(key), lowers: snapshots.lowerDirs(key) };
}

/** The layer of a container's changes, for either driver. */
function changedEntries(dirs: ReturnType<typeof layerDirs>) {
  if (dirs.driver === 'overlay') return overlayLayerEntries(dirs.upper, dirs.lowers);
  return treeLayerEntries(dirs.lowers[0] ?? EMPTY_TREE, dirs.upper);
}


/** What the container added (A), changed (C) and deleted (D) against its image. */
async function changesOf({ driver, upper, lowers }: ReturnType<typeof layerDirs>): Promise<Change[]> {
  if (driver === 'vfs') return treeChanges(lowers[0] ?? EMPTY_TREE, upper);
  return overlayChanges(upper, lowers);
}

/** `docker diff`: what the container added (A), changed (C) and deleted (D) against its image. */
export async function containerChanges(engine: Engine, nameOrId: string): Promise<Change[]> {
  return changesOf(layerDirs(engine, findContainer(engine, nameOrId)));
}

/**
 * Docker's SizeRw: the bytes of the files the container added or changed (a file hard-linked twice
 * counted once), for `ps -s` and `system df`.
 */
export async function containerSizeRw(engine: Engine, container: ContainerRow): Promise<number> {
  const dirs = layerDirs(engine, container);
  const sizes = new Map<number, number>();
  for (const change of await changesOf(dirs)) {
    if (change.kind === 'D') continue;
    const st = await lstat(join(dirs.upper, change.path)).catch(() => undefined);
    if (st && !st.isDirectory()) sizes.set(st.ino, st.size);
  }
  let total = 0;
  for (const size of sizes.values()) total += size;
  return total;
}

export interface CommitOptions {
  readonly reference?: string;
  readonly changes?: readonly string[];
  readonly message?: string;
  readonly author?: string;
}

/**
 * `docker commit`: the container's changes become one new layer on its image, with a history entry
 * for the command that made them and the config changes applied.
 */
export async function commitContainer(engine: Engine, nameOrId: string, options: CommitOptions = {}): Promise<Digest> {
  const container = findContainer(engine, nameOrId);
  const dirs = layerDirs(engine, container);
  const name = options.reference ? referenceString(withDefaultTag(parseReference(options.reference))) : undefined;
  const { store } = engine;
  const id = await store.withLease(async (lease) => {
    const encoded = encodeLayer(changedEntries(dirs));
    const layer = await store.putEncodedLayer(lease, encoded.tar, () => ({ mediaType: MediaType.ociLayer, diffSize: encoded.diffSize() }));
    const created = new Date().toISOString();
    const author = options.author ? { author: options.author } : {};
    const base = await store.image(engine.image(container.imageId));
    const changed = setConfig(base, { created, ...author, config: applyChanges(base.config.config ?? {}, options.changes ?? []) });
    const image = appendLayers(changed, [store.storedLayer(layer)], [historyEntry({ created, createdBy: container.command.join(' '), ...author, ...(options.message ? { comment: options.message } : {}) })]);
    const { id: imageId } = await store.writeImage(lease, { image, names: name ? [name] : [] }, `commit of ${container.name}`, container.imageId);
    return imageId;
  });
  recordEvent(engine, 'container', 'commit', container.id, { image: settingsOf(container).image, name: container.name });
  return id;
}
