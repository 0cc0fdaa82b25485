/**
 * Volumes (`docker volume`, `-v NAME:/path`, the image's VOLUME): directories the store keeps apart from
 * any container, at volumes/<name>/_data, with Docker's `local` driver's behaviour. A volume is recorded
 * and its directory made in one transaction, and a new container's volumes in the same transaction as
 * its record, so that a prune in another process never takes a volume a container is being created
 * with. What a container's settings name is in use: `rm` refuses it, prune leaves it. A removed volume's
 * directory is renamed aside inside the transaction and deleted after (a kill in between leaves
 * volumes/.removed-*, which `system prune` deletes).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import { chmod, chown, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../errors.js';
import type { VolumeRow } from '../meta/db.js';
import { resolveInRoot } from '../builder/ops.js';
import type { Engine } from './engine.js';
import { recordEvent } from './events.js';
import { type Filters, booleanFilter, checkFilterKeys, matchLabels } from './filters.js';
import { type MountSetting, settingsOf } from './containers/records.js';
import { execFileAsync } from '../exec-file.js';

/** A volume as the Engine API shows it (volume.Volume). */
export interface VolumeInfo {
  readonly CreatedAt: string;
  readonly Driver: string;
  readonly Labels: Readonly<Record<string, string>> | null;
  readonly Mountpoint: string;
  readonly Name: string;
  readonly Options: Readonly<Record<string, string>> | null;
  readonly Scope: 'local';
  /** `system df` only: how many containers use it and its size (-1 when not computed). */
  readonly UsageData?: { readonly RefCount: number; readonly Size: number };
}

/** What a container's start mounted of a volume. */
export interface VolumeUse {
  readonly name: string;
  readonly path: string;
}

export const VOLUME_LIST_FILTERS = ['dangling', 'driver', 'label', 'name'];
export const VOLUME_PRUNE_FILTERS = ['label', 'label!', 'all'];

/** Docker's rule for a local volume's name. */
export function checkVolumeName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) {
    throw new KilnError('INVALID_ARGUMENT', `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
}

function volumesDir(engine: Engine): string {
  return engine.store.paths.volumes;
}

/** Where a volume's files are. */
export function volumePath(engine: Engine, name: string): string {
  return join(volumesDir(engine), name, '_data');
}

/** Docker's CreatedAt: RFC 3339 in seconds. */
function createdAt(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

function info(engine: Engine, row: VolumeRow): VolumeInfo {
  return { CreatedAt: createdAt(row.createdAt), Driver: row.driver, Labels: row.labels, Mountpoint: volumePath(engine, row.name), Name: row.name, Options: row.options, Scope: 'local' };
}

export interface VolumeRequest {
  readonly name?: string;
  readonly driver?: string;
  readonly labels?: Readonly<Record<string, string>> | null;
  readonly options?: Readonly<Record<string, string>> | null;
}

/**
 * Records a volume and makes its directory unless it exists (called inside the caller's transaction);
 * returns its row. Only the `local` driver, without options, is kiln's.
 */
export function recordVolume(engine: Engine, request: VolumeRequest & { readonly anonymous?: boolean }): VolumeRow {
  const name = request.name || randomBytes(32).toString('hex');
  checkVolumeName(name);
  const driver = request.driver || 'local';
  if (driver !== 'local') throw new KilnError('UNSUPPORTED', `volume driver ${JSON.stringify(driver)} is not supported: kiln has the local driver only`);
  if (request.options && Object.keys(request.options).length > 0) throw new KilnError('UNSUPPORTED', `volume driver options (${Object.keys(request.options).join(', ')}) are not supported: kiln's local volumes are plain directories in the store`);
  const { db } = engine.store;
  const existing = db.volume(name);
  if (existing) return existing;
  const row: VolumeRow = { name, driver, labels: request.labels ?? null, options: request.options && Object.keys(request.options).length ? request.options : null, anonymous: request.anonymous ?? false, createdAt: Date.now() };
  db.addVolume(row);
  mkdirSync(volumePath(engine, name), { recursive: true, mode: 0o755 });
  recordEvent(engine, 'volume', 'create', name, { driver });
  return row;
}

/** `docker volume create`: a new volume, or the one of that name (as Docker answers a second create). */
export function createVolume(engine: Engine, request: VolumeRequest): VolumeInfo {
  return info(engine, engine.store.db.transaction(() => recordVolume(engine, request)));
}

function volumeRow(engine: Engine, name: string): VolumeRow {
  const row = engine.store.db.volume(name);
  if (!row) throw new KilnError('NOT_FOUND', `get ${name}: no such volume`);
  return row;
}

/** `docker volume inspect`. */
export function inspectVolume(engine: Engine, name: string): VolumeInfo {
  return info(engine, volumeRow(engine, name));
}

/** The containers (by ID) whose settings mount each volume. */
export function volumeUsers(engine: Engine): Map<string, string[]> {
  const users = new Map<string, string[]>();
  for (const container of engine.store.db.containers()) {
    for (const mount of settingsOf(container).mounts) {
      if (mount.type === 'volume') users.set(mount.source, [...(users.get(mount.source) ?? []), container.id]);
    }
  }
  return users;
}

/** `docker volume ls`, with its filters (dangling, driver, label, name). */
export function listVolumes(engine: Engine, filters: Filters = new Map()): VolumeInfo[] {
  checkFilterKeys(filters, VOLUME_LIST_FILTERS);
  const dangling = booleanFilter(filters, 'dangling');
  const users = dangling === undefined ? new Map<string, string[]>() : volumeUsers(engine);
  return engine.store.db
    .volumes()
    .filter((row) => {
      const names = filters.get('name') ?? [];
      const drivers = filters.get('driver') ?? [];
      return (
        (names.length === 0 || names.some((n) => row.name.includes(n))) &&
        (drivers.length === 0 || drivers.includes(row.driver)) &&
        matchLabels(row.labels ?? {}, filters.get('label') ?? []) &&
        (dangling === undefined || dangling === !users.has(row.name))
      );
    })
    .map((row) => info(engine, row));
}

/**
 * Forgets volumes (inside the caller's transaction) and moves their directories aside; returns the
 * directories to delete once the transaction is over.
 */
function forgetVolumes(engine: Engine, names: readonly string[]): string[] {
  const aside: string[] = [];
  for (const name of names) {
    engine.store.db.deleteVolume(name);
    recordEvent(engine, 'volume', 'destroy', name);
    const moved = join(volumesDir(engine), `.removed-${randomBytes(6).toString('hex')}`);
    try {
      renameSync(join(volumesDir(engine), name), moved);
      aside.push(moved);
    } catch {
      // Its directory is gone already: nothing to delete.
    }
  }
  return aside;
}

async function deleteAside(dirs: readonly string[]): Promise<number> {
  let bytes = 0;
  for (const dir of dirs) {
    bytes += await diskUsage(dir);
    await rm(dir, { recursive: true, force: true });
  }
  return bytes;
}

/** `docker volume rm`: refused while a container uses it (`force` does not change that, as with Docker). */
export async function removeVolume(engine: Engine, name: string, force = false): Promise<void> {
  const aside = engine.store.db.transaction(() => {
    if (!engine.store.db.volume(name)) {
      if (force) return [];
      throw new KilnError('NOT_FOUND', `get ${name}: no such volume`);
    }
    const users = volumeUsers(engine).get(name);
    if (users) throw new KilnError('CONFLICT', `remove ${name}: volume is in use - [${users.join(', ')}]`);
    return forgetVolumes(engine, [name]);
  });
  await deleteAside(aside);
}

/** A container's anonymous volumes that no other container uses: removed with it (`rm -v`, `--rm`). */
export async function removeAnonymousVolumes(engine: Engine, mounts: readonly MountSetting[]): Promise<void> {
  const aside = engine.store.db.transaction(() => {
    const users = volumeUsers(engine);
    const names = mounts.filter((m) => m.type === 'volume' && engine.store.db.volume(m.source)?.anonymous && !users.has(m.source)).map((m) => m.source);
    return forgetVolumes(engine, names);
  });
  await deleteAside(aside);
}

/**
 * `docker volume prune`: the volumes no container uses, narrowed by labels; anonymous ones only unless
 * `all` (Docker 23's rule; API 1.41's prune, which knows no `all`, takes them all: the route says which).
 */
export async function pruneVolumes(engine: Engine, options: { readonly filters?: Filters; readonly all: boolean }): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
  const filters = options.filters ?? new Map<string, string[]>();
  checkFilterKeys(filters, VOLUME_PRUNE_FILTERS);
  const all = options.all || booleanFilter(filters, 'all') === true;
  const { deleted, aside } = engine.store.db.transaction(() => {
    const users = volumeUsers(engine);
    const names = engine.store.db
      .volumes()
      .filter((row) => !users.has(row.name) && (all || row.anonymous) && matchLabels(row.labels ?? {}, filters.get('label') ?? []) && matchLabels(row.labels ?? {}, filters.get('label!') ?? [], true))
      .map((row) => row.name);
    return { deleted: names, aside: forgetVolumes(engine, names) };
  });
  return { VolumesDeleted: deleted, SpaceReclaimed: await deleteAside(aside) };
}

/** What removed volumes' directories a killed kiln left aside: `system prune` deletes them. */
export async function leftoverVolumeDirs(engine: Engine): Promise<string[]> {
  return (await readdir(volumesDir(engine)).catch(() => [] as string[])).filter((name) => name.startsWith('.removed-')).map((name) => join(volumesDir(engine), name));
}

export async function deleteLeftoverVolumeDirs(engine: Engine): Promise<void> {
  await deleteAside(await leftoverVolumeDirs(engine));
}

/**
 * The bytes of what is under a directory, as Docker counts a volume's size: every file and symlink
 * once (hardlinks once), directories not; 0 when it cannot be read.
 */
async function diskUsage(dir: string): Promise<number> {
  const { stdout } = await execFileAsync('find', [dir, '!', '-type', 'd', '-printf', '%i %s\n'], { maxBuffer: 1 << 30 }).catch(() => ({ stdout: '' }));
  const sizes = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const [inode, size] = line.split(' ');
    if (inode && size) sizes.set(inode, Number(size));
  }
  return [...sizes.values()].reduce((sum, size) => sum + size, 0);
}

/** `system df`'s volumes: each with how many containers use it and its size. */
export async function volumesDiskUsage(engine: Engine): Promise<VolumeInfo[]> {
  const users = volumeUsers(engine);
  const result: VolumeInfo[] = [];
  for (const row of engine.store.db.volumes()) {
    result.push({ ...info(engine, row), UsageData: { RefCount: users.get(row.name)?.length ?? 0, Size: await diskUsage(volumePath(engine, row.name)) } });
  }
  return result;
}

/**
 * A volume for a container's start: its directory, filled first — when the volume is empty, and unless
 * `noCopy` — with what the image has at the mount's path (owner and mode of that directory too), as
 * Docker fills a volume on first use.
 */
export async function volumeMount(engine: Engine, mount: MountSetting, rootfs: string): Promise<VolumeUse> {
  const row = volumeRow(engine, mount.source);
  const path = volumePath(engine, row.name);
  if (!mount.noCopy) await fillFromImage(resolveInRoot(rootfs, mount.target), path);
  return { name: row.name, path };
}

async function fillFromImage(source: string, volume: string): Promise<void> {
  const st = await stat(source).catch(() => undefined);
  if (!st?.isDirectory() || (await readdir(volume)).length > 0) return;
  if ((await readdir(source)).length > 0) await execFileAsync('cp', ['-a', '--', `${source}/.`, volume]);
  await chown(volume, st.uid, st.gid);
  await chmod(volume, st.mode & 0o7777);
}
