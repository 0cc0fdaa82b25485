import { type Stats, createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync, unlinkSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './whiteout.js';
import { deviceNumbers } from './directory.js';
import { sys } from '../sys.js';
import type { TarHeader } from './tar/header.js';
import type { TarInput } from './tar/writer.js';
import { execFileAsync } from '../exec-file.js';

/** Files up to this size are read whole, at once. */
const SMALL_FILE = 1 << 20;

/** One change of a container against its image, as `docker diff` prints it. */
export interface Change {
  readonly kind: 'A' | 'C' | 'D';
  readonly path: string;
}

const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Tells the directories of an overlay upper dir marked opaque (`trusted.overlay.opaque=y`, absolute
 * paths): a call per directory through native/sys, else one getfattr over the whole tree.
 */
async function opaqueTest(upper: string): Promise<(dir: string) => boolean> {
  const addon = sys();
  if (addon) return (dir) => addon.getxattr(dir, OPAQUE_XATTR) === 'y';
  const { stdout } = await execFileAsync('getfattr', ['-R', '--absolute-names', '-n', OPAQUE_XATTR, upper], { maxBuffer: 64 << 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const dirs = new Set<string>();
  let file: string | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice('# file: '.length);
    else if (file && line === `${OPAQUE_XATTR}="y"`) dirs.add(file);
  }
  return (dir) => dirs.has(dir);
}

interface UpperEntry {
  readonly rel: string;
  readonly full: string;
  readonly whiteout: boolean;
  readonly opaque: boolean;
}

/**
 * Files the runtime bind-mounts over (created empty as mount points in the writable layer). They are the
 * container's, not the image's: Docker keeps them in a separate init layer, so they never show in a diff
 * or a commit.
 */
export const MOUNT_POINTS: ReadonlySet<string> = new Set(['etc/hostname', 'etc/hosts', 'etc/resolv.conf']);

/** The tree of an image with no layers: a path that names nothing, compared against and read as an empty tree. */
export const EMPTY_TREE = '/nonexistent-kiln-empty-tree';

/**
 * Removes from a build step's writable tree the mount points its runtime made (MOUNT_POINTS, empty files
 * where the trees `below` had none), once the step's container is gone: the step's snapshot then holds
 * what its layer does, for a later COPY --from or `-o` that reads it (BuildKit's hold no such files).
 */
export function removeMountStubs(tree: string, below: readonly string[]): void {
  for (const path of MOUNT_POINTS) {
    const st = lstatSync(join(tree, path), { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== 0 || below.some((dir) => lstatSync(join(dir, path), { throwIfNoEntry: false }) !== undefined)) continue;
    unlinkSync(join(tree, path)); // three entries at most: no round trip to the thread pool
  }
}

/** True when `lowers` (nearest first) show `rel` as a directory with the same mode and owner, or not at all. */
function sameOrAbsentBelow(lowers: readonly string[], rel: string, st: Stats): boolean {
  for (const lower of lowers) {
    const below = lstatSync(join(lower, rel), { throwIfNoEntry: false });
    if (below) return below.isDirectory() && below.mode === st.mode && below.uid === st.uid && below.gid === st.gid;
  }
  return true;
}

/**
 * The entries of an overlay upper dir in lexical order (parents before children), whiteouts marked.
 * `lowers` (nearest first) tell a directory copied up only to hold mount points from one also changed.
 */
async function walkUpper(upper: string, lowers: readonly string[]): Promise<UpperEntry[]> {
  const isOpaque = await opaqueTest(upper);
  const out: UpperEntry[] = [];
  // Synchronous calls: an upper dir of tens of thousands of entries is walked far faster without a
  // thread-pool round trip per entry.
  /** Visits a directory; returns how many of its entries were mount-point stubs left out. */
  const visit = (dir: string, rel: string): number => {
    let stubs = 0;
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(full);
      if (MOUNT_POINTS.has(path) && st.isFile() && st.size === 0) {
        stubs++;
        continue;
      }
      const whiteout = st.isCharacterDevice() && st.rdev === 0;
      const at = out.length;
      const opaque = st.isDirectory() && isOpaque(full);
      out.push({ rel: path, full, whiteout, opaque });
      if (st.isDirectory()) {
        const hidden = visit(full, path);
        // A directory copied up only to hold mount points (/etc for /etc/hosts) is not a change either,
        // unless its mode or owner changed too (a RUN chmod 700 /etc).
        if (hidden > 0 && out.length === at + 1 && !opaque && sameOrAbsentBelow(lowers, path, st)) out.pop();
      }
    }
    return stubs;
  };
  visit(upper, '');
  return out;
}

/**
 * The changes recorded in an overlay upper dir: D for whiteouts, C for paths the image already had
 * (`existsBelow`), A for new ones. Sorted by path, as Docker prints them.
 */
export async function overlayChanges(upper: string, lowers: readonly string[]): Promise<Change[]> {
  const changes: Change[] = [];
  const existsBelow = (rel: string): boolean => lowers.some((lower) => lstatSync(join(lower, rel), { throwIfNoEntry: false }) !== undefined);
  for (const entry of await walkUpper(upper, lowers)) {
    if (entry.whiteout) changes.push({ kind: 'D', path: `/${entry.rel}` });
    else changes.push({ kind: existsBelow(entry.rel) ? 'C' : 'A', path: `/${entry.rel}` });
  }
  return changes;
}

/**
 * An overlay upper dir as OCI layer entries: overlay whiteouts become `.wh.NAME` files, opaque
 * directories get a `.wh..wh..opq` marker, a second name of an inode becomes a hardlink. Lexical order,
 * whole-second times: the same upper dir always gives the same layer.
 */
export async function* overlayLayerEntries(upper: string, lowers: readonly string[]): AsyncGenerator<TarInput> {
  yield* layerEntries(await walkUpper(upper, lowers));
}

/** Layer entries for changed paths: whiteouts as `.wh.` files, opaque markers, hardlinks by inode. */
function* layerEntries(entries: readonly UpperEntry[]): Generator<TarInput> {
  const inodes = new Map<number, string>();
  for (const entry of entries) {
    const slash = entry.rel.lastIndexOf('/');
    const dir = slash < 0 ? '' : `${entry.rel.slice(0, slash)}/`;
    const name = entry.rel.slice(slash + 1);
    if (entry.whiteout) {
      // An overlay whiteout is a device node whose owner we keep; a vfs deletion has nothing left.
      const device = lstatSync(entry.full, { throwIfNoEntry: false });
      const owner = { uid: device?.uid ?? 0, gid: device?.gid ?? 0, mtime: device ? Math.floor(device.mtimeMs / 1000) : 0 };
      yield { header: { ...owner, path: `${dir}${WHITEOUT_PREFIX}${name}`, type: 'file', size: 0, mode: (device?.mode ?? 0) & 0o777 } };
      continue;
    }
    const st = lstatSync(entry.full);
    const base = { uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), size: 0, mode: st.mode & 0o7777 };
    let header: TarHeader;
    if (st.isDirectory()) header = { ...base, path: `${entry.rel}/`, type: 'directory' };
    else if (st.isSymbolicLink()) header = { ...base, path: entry.rel, type: 'symlink', linkname: readlinkSync(entry.full) };
    else if (st.isFile()) {
      const first = st.nlink > 1 ? inodes.get(st.ino) : undefined;
      if (first) {
        yield { header: { ...base, path: entry.rel, type: 'hardlink', linkname: first } };
        continue;
      }
      if (st.nlink > 1) inodes.set(st.ino, entry.rel);
      yield { header: { ...base, path: entry.rel, type: 'file', size: st.size }, body: st.size === 0 ? new Uint8Array(0) : st.size <= SMALL_FILE ? readFileSync(entry.full) : createReadStream(entry.full, { highWaterMark: 1 << 20 }) };
      continue;
    } else if (st.isFIFO()) header = { ...base, path: entry.rel, type: 'fifo' };
    else header = { ...base, path: entry.rel, type: st.isCharacterDevice() ? 'char' : 'block', ...deviceNumbers(st.rdev) };
    yield { header };
    if (entry.opaque) yield { header: { ...base, path: `${entry.rel}/${OPAQUE_MARKER}`, type: 'file', mode: 0o644 } };
  }
}

/** Whether two stats describe the same entry, as Docker's naive (vfs) diff compares them. */
function sameEntry(a: Stats, b: Stats): boolean {
  const kind = (s: Stats): number => s.mode & 0o170000;
  return kind(a) === kind(b) && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.rdev === b.rdev && (a.isDirectory() || (a.size === b.size && Math.floor(a.mtimeMs / 1000) === Math.floor(b.mtimeMs / 1000)));
}

/**
 * Compares a container's full copy (vfs) with the image's tree: the changed paths in the same shape an
 * overlay upper dir gives (a changed directory's parents are changed too; a deletion is a whiteout).
 */
async function treeDiff(lower: string, upper: string): Promise<{ entries: UpperEntry[]; changes: Change[] }> {
  const entries: UpperEntry[] = [];
  const changes: Change[] = [];
  const visit = async (rel: string): Promise<boolean> => {
    const lowerDir = join(lower, rel);
    const upperDir = join(upper, rel);
    const names = new Set([...(await readdir(upperDir)), ...(await readdir(lowerDir).catch(() => [] as string[]))]);
    let changed = false;
    for (const name of [...names].sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (MOUNT_POINTS.has(path)) continue;
      const up = await lstat(join(upperDir, name)).catch(() => undefined);
      const low = await lstat(join(lowerDir, name)).catch(() => undefined);
      if (!up) {
        entries.push({ rel: path, full: join(upperDir, name), whiteout: true, opaque: false });
        changes.push({ kind: 'D', path: `/${path}` });
        changed = true;
        continue;
      }
      const at = entries.length;
      const atChange = changes.length;
      const entry = { rel: path, full: join(upperDir, name), whiteout: false, opaque: false };
      const same = low !== undefined && sameEntry(up, low);
      const below = up.isDirectory() ? await visit(path) : false;
      if (!same || below) {
        entries.splice(at, 0, entry);
        changes.splice(atChange, 0, { kind: low ? 'C' : 'A', path: `/${path}` });
        changed = true;
      }
    }
    return changed;
  };
  await visit('');
  return { entries, changes };
}

/** `docker diff` for a vfs container: its copy against the image's tree. */
export async function treeChanges(lower: string, upper: string): Promise<Change[]> {
  return (await treeDiff(lower, upper)).changes;
}

/** The layer a vfs container's changes make. */
export async function* treeLayerEntries(lower: string, upper: string): AsyncGenerator<TarInput> {
  yield* layerEntries((await treeDiff(lower, upper)).entries);
}

/**
 * Every entry of the tree at `root` (not the root itself), each directory before what it holds, sorted
 * by name, hardlinks by inode: a filesystem as a tar (`kiln build -o`, as BuildKit's tar exporter).
 */
export async function* treeEntries(root: string): AsyncGenerator<TarInput> {
  if (root === EMPTY_TREE) return;
  const entries: UpperEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      entries.push({ rel: path, full, whiteout: false, opaque: false });
      if ((await lstat(full)).isDirectory()) await visit(path);
    }
  };
  await visit('');
  yield* layerEntries(entries);
}
