import { type Stats, lstatSync, mkdirSync, readdirSync, rmSync, rmdirSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, isKilnError, readTextIfPresent, storeWriteError } from '../errors.js';
import { ownerGone } from '../content/owner.js';
import { storePaths } from '../content/paths.js';
import { scratchName, scratchOwner } from '../content/store.js';
import type { WhiteoutMode } from '../layer/apply.js';
import { randomHex } from '../random.js';
import { MNT_DETACH, MS_BIND, MS_RDONLY, MS_REMOUNT, sys } from '../sys.js';
import type { MetaDb, SnapshotPurpose, SnapshotRow } from '../meta/db.js';
import { execFileAsync } from '../exec-file.js';

/**
 * A mount *description*: the snapshotter says what to mount, the runtime mounts it. `cwd` is where the
 * mount command must run so that relative lower directories resolve (short overlay option strings, so
 * images with 120+ layers fit in the kernel's one-page limit).
 */
export interface MountSpec {
  readonly type: 'overlay' | 'bind';
  readonly source: string;
  readonly options: readonly string[];
  readonly cwd?: string;
}

/** The most entries a tree may have for removeTree to remove it with synchronous calls. */
const SMALL_TREE = 64;

/**
 * Removes a directory tree, gone already or not. A small one (a build step's bundle of a few files, the
 * empty directories of a snapshot nothing was written to) goes at once with synchronous calls: tens of
 * microseconds, where fs/promises' rm first loads some ten of Node's modules and then makes a thread-pool
 * round trip per entry (a millisecond or two of a build's main thread). A bigger one (a failed step's
 * files) goes through fs/promises on the thread pool, which does not hold up the event loop; so does one
 * whose synchronous removal fails, whose error rm then reports as it would.
 */
export async function removeTree(root: string): Promise<void> {
  const entries: { readonly path: string; readonly dir: boolean }[] = [];
  /** Lists `path`'s entries below it, children before parents; false once there are too many. */
  const list = (path: string): boolean => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory() && !list(full)) return false;
      entries.push({ path: full, dir: entry.isDirectory() });
      if (entries.length > SMALL_TREE) return false;
    }
    return true;
  };
  try {
    const st = lstatSync(root, { throwIfNoEntry: false });
    if (!st) return;
    if (!st.isDirectory() || list(root)) {
      for (const { path, dir } of entries) (dir ? rmdirSync : unlinkSync)(path);
      (st.isDirectory() ? rmdirSync : unlinkSync)(root);
      return;
    }
  } catch {
    // removed below, or reported
  }
  await rm(root, { recursive: true, force: true });
}

export type Driver = 'overlay' | 'vfs';

/**
 * containerd-style snapshots over directories: `prepare` an active (writable) snapshot on a parent,
 * `view` a read-only one, `commit` an active one under a name so it can be a parent, `remove` what has no
 * children. Lifecycle of a layer: prepare(tmp, parentChain) → apply the layer into `dir(tmp)` → commit.
 * `overlay` keeps each snapshot's own changes and stacks parents as lower dirs; `vfs` copies the parent.
 */
export class Snapshotter {
  readonly root: string;

  constructor(
    private readonly storeRoot: string,
    private readonly db: MetaDb,
    readonly driver: Driver,
  ) {
    this.root = storePaths(storeRoot).snapshots;
  }

  /** The whiteouts a layer applied into a snapshot of this driver must produce. */
  get whiteouts(): WhiteoutMode {
    return this.driver === 'overlay' ? 'overlay' : 'delete';
  }

  private row(key: string): SnapshotRow {
    const row = this.db.snapshot(key);
    if (!row) throw new KilnError('NOT_FOUND', `snapshot ${key} does not exist`);
    return row;
  }

  /** The snapshot's own tree (for overlay: its upper dir). */
  dir(key: string): string {
    return join(this.root, String(this.row(key).dir), 'fs');
  }

  /** The directories below a snapshot, nearest first: what an overlay of it has as lowerdirs. */
  lowerDirs(key: string): string[] {
    return this.chain(key).slice(1).map((row) => join(this.root, String(row.dir), 'fs'));
  }

  /**
   * The own directory of the one snapshot of `key`'s chain (itself or a parent) that holds `path` (absolute,
   * normalized) whole, if one does: the path's first component is in that snapshot's tree and in no other
   * of the chain (not even as a whiteout), and no component on the way is a symlink. Below that component an
   * overlay of the chain shows that directory's tree as it is, so it can be read without mounting one
   * (overlay only; kiln's mounts make no redirects or metacopy files, as overlayLayerEntries also relies on).
   */
  soleHolder(key: string, path: string): string | undefined {
    const parts = path.split('/').filter((p) => p !== '');
    const first = parts[0];
    if (this.driver !== 'overlay' || first === undefined || parts.includes('..')) return undefined;
    // Synchronous stats: a few, each cheaper than a thread-pool round trip.
    const holders = [this.dir(key), ...this.lowerDirs(key)].filter((dir) => lstatIfAny(join(dir, first)) !== undefined);
    const [holder] = holders;
    if (holder === undefined || holders.length > 1) return undefined;
    for (let i = 1; i <= parts.length; i++) {
      const st = lstatIfAny(join(holder, ...parts.slice(0, i)));
      if (!st || st.isSymbolicLink() || (i < parts.length && !st.isDirectory()) || st.isCharacterDevice()) return undefined;
    }
    return holder;
  }

  /** The key of the committed snapshot holding a layer chain (its chain ID), shared by every image with that chain. */
  layerKey(chainId: string): string {
    return `${this.driver}:${chainId}`;
  }

  has(key: string): boolean {
    return this.db.snapshot(key)?.kind === 'committed';
  }

  /** Parent chain of a snapshot, nearest first. */
  private chain(key: string | undefined): SnapshotRow[] {
    const rows: SnapshotRow[] = [];
    for (let current = key; current; current = rows.at(-1)?.parent ?? undefined) rows.push(this.row(current));
    return rows;
  }

  private async create(key: string, parent: string | undefined, kind: 'active' | 'view', temporary: SnapshotPurpose | undefined): Promise<MountSpec[]> {
    if (this.db.snapshot(key)) throw new KilnError('CONFLICT', `snapshot ${key} already exists`);
    if (parent && this.row(parent).kind !== 'committed') throw new KilnError('CONFLICT', `snapshot ${parent} is not committed, so it cannot be a parent`);
    const dir = this.db.addSnapshot(key, parent, kind, this.driver, temporary && { pid: process.pid, purpose: temporary });
    const base = join(this.root, String(dir));
    // Synchronous: a build step waits on these, and each promise's thread-pool round trip cost more than
    // the call (up to milliseconds on a busy machine). What a crashed process left there is removed first.
    rmSync(base, { recursive: true, force: true });
    await this.writing(base, async () => {
      mkdirSync(join(base, 'work'), { recursive: true });
      if (this.driver === 'vfs' && parent) {
        // In the C locale, so that a full disk is told in the words isNoSpace knows.
        await execFileAsync('cp', ['-a', '--reflink=auto', this.dir(parent), join(base, 'fs')], { env: { ...process.env, LC_ALL: 'C' } });
      } else {
        mkdirSync(join(base, 'fs'), { mode: 0o755 });
      }
    });
    return this.mounts(key);
  }

  /** Runs `work`, which writes under `target` in the store: a full disk fails it with NO_SPACE naming the store. */
  async writing<T>(target: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw storeWriteError(err, this.storeRoot, target);
    }
  }

  /**
   * An active snapshot on `parent`. `temporary`: this process works on it until it commits or removes it,
   * and it is recorded as this process's, so that what a kill -9 leaves is known as its (see isAbandoned).
   */
  prepare(key: string, parent?: string, temporary?: SnapshotPurpose): Promise<MountSpec[]> {
    return this.create(key, parent, 'active', temporary);
  }

  view(key: string, parent?: string, temporary?: SnapshotPurpose): Promise<MountSpec[]> {
    return this.create(key, parent, 'view', temporary);
  }

  /**
   * Commits an active snapshot under `name`. `parent` names the parent of one prepared without any because
   * its parent was not there yet, which overlay allows: a snapshot's own directory holds only its changes,
   * the same whatever lies below (Docker's overlay2 unpacks layers apart in the same way).
   */
  commit(name: string, key: string, parent?: string): void {
    // In one transaction: another kiln process committing the same name between the check and the rename
    // (two unpacks of one layer at once) gets this CONFLICT, not the table's constraint.
    this.db.transaction(() => {
      const row = this.row(key);
      if (row.kind !== 'active') throw new KilnError('CONFLICT', `snapshot ${key} is ${row.kind}; only active snapshots can be committed`);
      if (this.db.snapshot(name)) throw new KilnError('CONFLICT', `snapshot ${name} already exists`);
      if (parent !== undefined) {
        if (this.driver !== 'overlay' || row.parent) throw new KilnError('CONFLICT', `snapshot ${key} cannot take ${parent} as its parent now`);
        if (this.row(parent).kind !== 'committed') throw new KilnError('CONFLICT', `snapshot ${parent} is not committed, so it cannot be a parent`);
      }
      this.db.renameSnapshot(key, name, parent);
    });
  }

  mounts(key: string): MountSpec[] {
    const [self, ...parents] = this.chain(key);
    if (!self) throw new KilnError('NOT_FOUND', `snapshot ${key} does not exist`);
    const readonly = self.kind === 'view' ? ['ro'] : [];
    if (this.driver === 'vfs' || parents.length === 0) return [{ type: 'bind', source: join(this.root, String(self.dir), 'fs'), options: ['rbind', ...readonly] }];
    const lowers = parents.map((p) => `${p.dir}/fs`).join(':');
    if (self.kind === 'view') return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${self.dir}/fs:${lowers}`, 'ro'], cwd: this.root }];
    const volatile = self.owner?.purpose === 'build' ? [VOLATILE] : [];
    return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers}`, `upperdir=${self.dir}/fs`, `workdir=${self.dir}/work`, 'index=off', ...volatile], cwd: this.root }];
  }

  /** Removes a snapshot that no other snapshot builds on. */
  async remove(key: string): Promise<void> {
    const row = this.row(key);
    if (this.db.snapshotChildren(key).length > 0) throw new KilnError('CONFLICT', `snapshot ${key} has children`);
    const dir = join(this.root, String(row.dir));
    try {
      this.db.deleteSnapshot(key);
    } catch (err) {
      // On a full disk (an unpack that filled it), an uncommitted snapshot's files go first: they free the
      // space that removing its record needs. A record left without them is a left-over, not damage.
      if (!isKilnError(err, 'NO_SPACE') || row.kind === 'committed') throw err;
      await removeTree(dir);
      this.db.deleteSnapshot(key);
    }
    await removeTree(dir);
  }

  /** Every snapshot, parents before children (containerd's walk). */
  list(): SnapshotRow[] {
    return this.db.snapshots();
  }

  /** Disk use of a snapshot's own tree: bytes of its files (each inode once) and its number of inodes. */
  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const seen = new Set<number>();
    let size = 0;
    const visit = async (dir: string): Promise<void> => {
      for (const name of await readdir(dir)) {
        const st = await lstat(join(dir, name));
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
        if (!st.isDirectory()) size += st.size;
        else await visit(join(dir, name));
      }
    };
    await visit(this.dir(key));
    return { size, inodes: seen.size };
  }
}

/** What {@link snapshotterOf} opens snapshotters of: an open store (`LocalStore`). */
export interface SnapshotStore {
  readonly root: string;
  readonly db: MetaDb;
}

/** The snapshotters of each open store, by driver. */
const opened = new WeakMap<SnapshotStore, Map<Driver, Snapshotter>>();

/**
 * The snapshotter of an open store for `driver`: one per store and driver in a process, made at its first
 * use (which driver a command uses is the engine's choice). It lives here, not in the store, so that only
 * the commands that unpack, build or run load this module.
 */
export function snapshotterOf(store: SnapshotStore, driver: Driver): Snapshotter {
  let drivers = opened.get(store);
  if (!drivers) opened.set(store, (drivers = new Map<Driver, Snapshotter>()));
  let snapshots = drivers.get(driver);
  if (!snapshots) drivers.set(driver, (snapshots = new Snapshotter(store.root, store.db, driver)));
  return snapshots;
}

/** A key for a temporary snapshot of this process: unique, and never read back (its owner is recorded apart). */
export function temporaryKey(purpose: SnapshotPurpose): string {
  return `${purpose}-${process.pid}-${randomHex(6)}`;
}

/**
 * True when the process that made a temporary snapshot is gone (a kill -9 mid-unpack or mid-step): what
 * it left is anyone's to remove. A snapshot no process owns (a layer's, a container's) never is.
 */
export function isAbandoned(row: SnapshotRow): boolean {
  return row.owner !== null && ownerGone(row.owner.pid);
}

/**
 * overlay's `volatile` (Linux 5.10): no sync of the upper filesystem, not even at the unmount, which
 * otherwise syncs the store's whole filesystem (10 to 50 ms a build step on a busy machine). For a build
 * step's snapshot only: it is mounted as an upper once, its files are read back at once, and a crash
 * leaves it abandoned; a committed one is only ever a lower. A store's unpacked layers are not synced
 * either. A snapshot mounted so cannot be an upper again (overlay refuses it): a container's is not.
 */
const VOLATILE = 'volatile';

const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * What an overlay of `dirs` (its upper and lower directories, nearest first) shows at `path` (relative,
 * normalized), no symlink followed: the entry's lstat (a directory's as the nearest directory that has it,
 * as overlay shows it), undefined when there is none (a whiteout hides it), 'unsure' when only a mount
 * would tell: a symlink or a file on the way, or no native/sys to read opaque directories' xattrs with.
 * Kiln's mounts make no redirects or metacopy files (see soleHolder), so each directory holds a path's
 * own entries. Synchronous: a few stats, each cheaper than a thread-pool round trip.
 */
export function entryInLayers(dirs: readonly string[], path: string): Stats | undefined | 'unsure' {
  const addon = sys();
  if (!addon) return 'unsure';
  const parts = path.split('/');
  let layers = dirs;
  let found: Stats | undefined;
  for (let i = 1; i <= parts.length; i++) {
    const rel = parts.slice(0, i).join('/');
    let index = 0;
    for (found = undefined; index < layers.length && !found; index++) found = lstatIfAny(join(layers[index] as string, rel));
    const holder = layers[--index] as string;
    if (!found || (found.isCharacterDevice() && found.rdev === 0)) return undefined; // none, or a whiteout
    if (i === parts.length) break;
    if (!found.isDirectory()) return 'unsure';
    // What is below the directory: its own layer's, then those of the layers below that merge with it, as
    // overlay merges them: down to an opaque one, and not past anything else of its name (a file, a whiteout).
    const merged = [holder];
    let opaque = addon.getxattr(join(holder, rel), OPAQUE_XATTR) === 'y';
    for (const below of layers.slice(index + 1)) {
      if (opaque) break;
      const st = lstatIfAny(join(below, rel));
      if (!st) continue;
      if (!st.isDirectory()) break;
      merged.push(below);
      opaque = addon.getxattr(join(below, rel), OPAQUE_XATTR) === 'y';
    }
    layers = merged;
  }
  return found;
}

/** A path's lstat, undefined when there is nothing there (a file on the way, or a name too long to be one, included). */
export function lstatIfAny(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    const { code } = err as NodeJS.ErrnoException;
    if (code === 'ENOTDIR' || code === 'ENAMETOOLONG') return undefined;
    throw err;
  }
}

/** Mounts a description at `target` (the runtime's half of the contract). */
export async function mount(spec: MountSpec, target: string): Promise<void> {
  try {
    await mountOnce(spec, target);
  } catch (err) {
    // A kernel before 5.10 refuses the option: such a mount is made without it.
    if (!spec.options.includes(VOLATILE)) throw err;
    await mountOnce({ ...spec, options: spec.options.filter((option) => option !== VOLATILE) }, target);
  }
}

/** Through native/sys when it is built, else util-linux's mount (a process per mount). */
async function mountOnce(spec: MountSpec, target: string): Promise<void> {
  const readonly = spec.options.includes('ro');
  const addon = sys();
  if (addon && spec.type === 'bind') {
    addon.mount(spec.source, target, null, MS_BIND, null, null);
    if (readonly) addon.mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY, null, null);
  } else if (addon) {
    addon.mount(spec.source, target, spec.type, readonly ? MS_RDONLY : 0, spec.options.filter((option) => option !== 'ro').join(','), spec.cwd ?? null);
  } else {
    const args = spec.type === 'bind' ? ['--bind', ...(readonly ? ['-o', 'ro'] : []), spec.source, target] : ['-t', spec.type, '-o', spec.options.join(','), spec.source, target];
    await execFileAsync('mount', args, { cwd: spec.cwd });
  }
}

export async function unmount(target: string): Promise<void> {
  const addon = sys();
  if (addon) addon.umount(target, 0);
  else await execFileAsync('umount', [target]);
}

/** Unmounts (lazily, so a busy mount cannot block) what a crash may have left mounted; errors mean "was not". */
export async function unmountStale(target: string): Promise<void> {
  const addon = sys();
  if (!addon) return void (await execFileAsync('umount', ['-l', target]).catch(() => undefined));
  try {
    addon.umount(target, MNT_DETACH);
  } catch {
    // not mounted
  }
}

/** The probes under way in this process, by store: requests served at once on a new store (kiln serve) share one. */
const probing = new Map<string, Promise<Driver>>();

/**
 * overlay when this kernel and filesystem can mount it here, else vfs (said to the user by the caller).
 * The answer is kept in `<root>/storage-driver`, so the probe mount happens once per store; probes a
 * crash left behind are unmounted and removed first.
 */
export async function detectDriver(storeRoot: string): Promise<Driver> {
  if (process.getuid?.() !== 0) return 'vfs';
  const known = readTextIfPresent(storePaths(storeRoot).storageDriver)?.trim();
  if (known === 'overlay' || known === 'vfs') return known;
  let probe = probing.get(storeRoot);
  if (!probe) {
    probe = probeAndRecord(storeRoot).finally(() => probing.delete(storeRoot));
    probing.set(storeRoot, probe);
  }
  return probe;
}

async function probeAndRecord(storeRoot: string): Promise<Driver> {
  const recorded = storePaths(storeRoot).storageDriver;
  await mkdir(storeRoot, { recursive: true });
  // Another kiln starting on the same new store may be probing beside us: only a dead process's probe is stale.
  for (const stale of (await readdir(storeRoot)).filter((n) => n.startsWith('overlay-probe-') && !probeOwnerLives(n))) {
    await unmountStale(join(storeRoot, stale, 'm'));
    await rm(join(storeRoot, stale), { recursive: true, force: true });
  }
  const driver = await probeOverlay(storeRoot);
  const temp = `${recorded}.${process.pid}`;
  await writeFile(temp, `${driver}\n`);
  await rename(temp, recorded);
  return driver;
}

/** A probe's directory names its process (see {@link scratchName}); one from before that is anyone's, so stale. */
function probeOwnerLives(name: string): boolean {
  const owner = scratchOwner(name);
  return owner !== undefined && !ownerGone(owner);
}

async function probeOverlay(storeRoot: string): Promise<Driver> {
  const dir = join(storeRoot, scratchName('overlay-probe'));
  await mkdir(dir);
  try {
    for (const d of ['l', 'u', 'w', 'm']) await mkdir(join(dir, d));
    await mount({ type: 'overlay', source: 'overlay', options: ['lowerdir=l', 'upperdir=u', 'workdir=w'], cwd: dir }, join(dir, 'm'));
    await unmount(join(dir, 'm'));
    return 'overlay';
  } catch {
    return 'vfs';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
