import { chmodSync, closeSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, utimesSync, write, writeSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type ErrorCode, KilnError } from '../errors.js';
import { postBytes } from './handover.js';
import { type TarHeader, diffBytes } from './tar/header.js';
import { readTar } from './tar/reader.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './whiteout.js';
import { execFileAsync } from '../exec-file.js';

/**
 * How whiteouts become real: `overlay` leaves overlayfs whiteouts (a 0/0 character device for a deleted
 * name, `trusted.overlay.opaque=y` on an opaque directory) for a layer that will be an overlay lower dir;
 * `delete` removes the named files from a tree that already holds the layers below (vfs).
 */
export type WhiteoutMode = 'overlay' | 'delete';

export interface ApplyOptions {
  readonly whiteouts: WhiteoutMode;
  /** Whether owners and device nodes can be set (running as root). */
  readonly privileged?: boolean;
  /** Names the layer in error messages. */
  readonly what?: string;
  /** Every entry gets this owner instead of its own (`docker cp` without -a). */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

export interface ApplyResult {
  readonly entries: number;
  /** The layer's size as Docker reports it: see `ScannedLayer.diffSize`. */
  readonly diffSize: number;
}

type WorkerReply = { type: 'ack' } | { type: 'done'; result: ApplyResult } | { type: 'error'; kiln?: ErrorCode; code?: string; message: string };

/**
 * `applyLayer` on a worker thread (see apply-worker.ts): the same result and errors, with the tar's bytes
 * handed over a few chunks ahead. The source's chunks are taken over (see `postBytes`): it must not use
 * one again after yielding it. A failing source stops the worker and fails with the source's error.
 */
export async function applyLayerOffThread(root: string, source: AsyncIterable<Uint8Array>, options: ApplyOptions): Promise<ApplyResult> {
  // Worker threads load here, not with this module: a build that runs no step imports it too.
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const worker = new Worker(new URL('./apply-worker.js', import.meta.url), { workerData: { root, options } });
  let unacknowledged = 0;
  let space: (() => void) | undefined;
  let settle!: { resolve: (result: ApplyResult) => void; reject: (err: Error) => void };
  const finished = new Promise<ApplyResult>((resolve, reject) => (settle = { resolve, reject }));
  finished.catch(() => undefined); // awaited below; a failure before then only stops the feeding
  // Set when the worker has answered: the rest of the source (padding after the tar's end) is not sent.
  let answered = false;
  const wakeFeeder = (): void => {
    space?.();
    space = undefined;
  };
  const fail = (err: Error): void => {
    answered = true;
    settle.reject(err);
    wakeFeeder();
  };
  worker.on('message', (reply: WorkerReply) => {
    if (reply.type === 'ack') {
      unacknowledged--;
      wakeFeeder();
    } else if (reply.type === 'done') {
      answered = true;
      settle.resolve(reply.result);
      wakeFeeder();
    } else fail(reply.kiln ? new KilnError(reply.kiln, reply.message) : Object.assign(new Error(reply.message), { code: reply.code }));
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new KilnError('INTERNAL', `the layer-apply worker exited unexpectedly (code ${code})`)));
  try {
    for await (const chunk of source) {
      if (answered) break;
      unacknowledged++;
      postBytes(worker, { type: 'data' }, chunk);
      while (unacknowledged >= 4 && !answered) await new Promise<void>((resolve) => (space = resolve));
    }
    if (!answered) worker.postMessage({ type: 'end' });
    return await finished;
  } finally {
    worker.removeAllListeners('exit');
    worker.on('error', () => undefined);
    await worker.terminate();
  }
}

/** Runs `mknod` for a device node (Node has no mknod call). */
async function mknod(path: string, type: 'c' | 'b' | 'p', major = 0, minor = 0): Promise<void> {
  await execFileAsync('mknod', type === 'p' ? [path, 'p'] : [path, type, String(major), String(minor)]);
}

async function setXattr(path: string, name: string, value: Buffer): Promise<void> {
  await execFileAsync('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, path]);
}

async function setOpaque(dir: string): Promise<void> {
  await setXattr(dir, 'trusted.overlay.opaque', Buffer.from('y'));
}

/** Files up to this size are read whole and written with one call. */
const SMALL_FILE = 1 << 20;

const writeAsync = promisify(write);

function writeFully(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
}

async function readBody(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

/** Linux's longest file name (NAME_MAX) and longest path a system call takes (PATH_MAX, less its NUL). */
export const NAME_MAX = 255;
export const PATH_MAX = 4095;

/** Removes everything under `dir` that this layer did not write (an opaque directory in a vfs tree). */
async function keepOnly(dir: string, written: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(dir)) {
    const child = join(dir, name);
    if (!written.has(child)) await rm(child, { recursive: true, force: true });
    else if ((await lstat(child)).isDirectory()) await keepOnly(child, written);
  }
}

/**
 * Applies a layer (an uncompressed tar stream) onto `root`. Every entry is placed inside `root` and
 * nowhere else: `..` that climbs out is refused, an absolute name is taken relative to the root, an entry
 * is never written through a symlink (its parent directories must be real directories, or are created),
 * a hardlink must name a file inside the root, and device nodes need privilege. A refused entry is an
 * INVALID_INPUT error naming it; what was applied before it stays (the caller discards the snapshot).
 */
export async function applyLayer(rootDir: string, source: AsyncIterable<Uint8Array>, options: ApplyOptions): Promise<ApplyResult> {
  // Paths below are built by joining normalized relative names to the root with '/', without path.join.
  const root = resolve(rootDir);
  const what = options.what ?? 'layer';
  const privileged = options.privileged ?? process.getuid?.() === 0;
  const refuse = (header: TarHeader, why: string): never => {
    throw new KilnError('INVALID_INPUT', `${what}: entry ${JSON.stringify(header.path)} ${why}`);
  };
  const umask = process.umask();
  /** Every path this layer writes, or writes under (the directories on the way). */
  const written = new Set<string>();
  const dirs: { path: string; mode: number; mtime: number }[] = [];
  const opaque: string[] = [];
  let entries = 0;
  let diffSize = 0;

  /**
   * The entry's path relative to the root, normalized, refusing any climb out of it and any name or path
   * longer than a filesystem takes (Linux's NAME_MAX and PATH_MAX, the root's own path included).
   */
  const relative = (header: TarHeader, name: string): string => {
    const cleaned = posix.normalize(`/${name}`).slice(1).replace(/\/$/, '');
    if (name.split('/').includes('..') && posix.normalize(name.replace(/^\/+/, '')).startsWith('..')) refuse(header, 'points outside the root filesystem');
    if (cleaned.split('/').some((part) => Buffer.byteLength(part) > NAME_MAX)) refuse(header, `has a name longer than the ${NAME_MAX} bytes a file name can have`);
    if (Buffer.byteLength(root) + 1 + Buffer.byteLength(cleaned) > PATH_MAX) refuse(header, `has a path longer than the ${PATH_MAX} bytes a path can have (with the ${root} it is written under)`);
    return cleaned;
  };

  // Directories proven real (not symlinks) during this apply, and those this apply created: a path under
  // a directory created here cannot exist unless this layer wrote it, which saves a stat per entry.
  const knownDirs = new Set<string>([root]);
  const createdDirs = new Set<string>();

  /** Makes sure every parent of `rel` is a real directory inside the root, creating missing ones. */
  const parentDir = (header: TarHeader, rel: string): string => {
    const slash = rel.lastIndexOf('/');
    if (slash < 0) return root;
    // A known directory's ancestors are known too (forgetting one forgets everything under it).
    const direct = `${root}/${rel.slice(0, slash)}`;
    if (knownDirs.has(direct)) return direct;
    let current = root;
    const parts = rel.split('/').slice(0, -1);
    for (const [index, part] of parts.entries()) {
      current = `${current}/${part}`;
      if (knownDirs.has(current)) continue;
      const st = lstatSync(current, { throwIfNoEntry: false });
      if (!st) {
        mkdirSync(current, { mode: 0o755 });
        createdDirs.add(current);
      } else if (st.isSymbolicLink()) refuse(header, `would be written through the symlink ${JSON.stringify(parts.slice(0, index + 1).join('/'))}`);
      else if (!st.isDirectory()) refuse(header, `has a parent ${JSON.stringify(part)} that is not a directory`);
      knownDirs.add(current);
      written.add(current); // the layer writes under it: an opaque parent keeps it, a later entry finds it
    }
    return current;
  };

  /**
   * Writes a regular file, then sets its owner, mode and times through its descriptor (a path lookup each
   * would cost more). It is created with its permission bits, which stand unless the umask took some away;
   * special bits are set after the chown, which clears setuid and setgid.
   */
  const writeRegularFile = async (path: string, header: TarHeader, body: AsyncIterable<Buffer>): Promise<void> => {
    const fd = openSync(path, 'w', header.mode & 0o777);
    try {
      // Small files with synchronous calls: a thread-pool round trip per call costs more than the write.
      if (header.size <= SMALL_FILE) writeFully(fd, await readBody(body));
      else for await (const chunk of body) for (let at = 0; at < chunk.length; ) at += (await writeAsync(fd, chunk, at, chunk.length - at)).bytesWritten;
      if (privileged && (header.uid !== 0 || header.gid !== 0)) fchownSync(fd, header.uid, header.gid);
      if ((header.mode & (0o7000 | umask)) !== 0) fchmodSync(fd, header.mode);
      futimesSync(fd, header.mtime, header.mtime);
    } finally {
      closeSync(fd);
    }
  };

  /** Whether `path` cannot exist yet: its directory was created by this apply, and no entry wrote it. */
  const unseen = (path: string, parent: string): boolean => createdDirs.has(parent) && !written.has(path);

  /** Clears the way for a new entry, keeping an existing directory when the entry is one. */
  const removeExisting = (path: string, keepDirectory: boolean): boolean => {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return false;
    if (keepDirectory && st.isDirectory()) return true;
    rmSync(path, { recursive: true, force: true });
    if (st.isDirectory()) {
      // Forget what was proven about the replaced directory and everything under it.
      for (const dir of knownDirs) if (dir === path || dir.startsWith(`${path}/`)) knownDirs.delete(dir);
    }
    return false;
  };

  for await (const entry of readTar(source)) {
    const { body } = entry;
    const header = options.owner ? { ...entry.header, uid: options.owner.uid, gid: options.owner.gid } : entry.header;
    entries++;
    diffSize += diffBytes(header);
    const rel = relative(header, header.path);
    if (rel === '' || rel === '.') {
      if (header.type === 'directory') dirs.push({ path: root, mode: header.mode, mtime: header.mtime });
      continue;
    }
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    const parent = parentDir(header, rel);
    const target = `${parent}/${base}`;

    if (base === OPAQUE_MARKER) {
      opaque.push(parent);
      continue;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const hidden = `${parent}/${base.slice(WHITEOUT_PREFIX.length)}`;
      if (base.length === WHITEOUT_PREFIX.length) refuse(header, 'is a whiteout with no name');
      if (!unseen(hidden, parent)) removeExisting(hidden, false);
      if (options.whiteouts === 'overlay') {
        if (!privileged) refuse(header, 'is a whiteout, and overlay whiteouts (device 0/0) need root');
        await mknod(hidden, 'c', 0, 0);
      }
      continue;
    }

    const mayExist = !unseen(target, parent);
    written.add(target);
    /** Clears the way for this entry; true when it is a directory and one is already there. */
    const clear = (keepDirectory = false): boolean => mayExist && removeExisting(target, keepDirectory);
    switch (header.type) {
      case 'directory':
        if (!clear(true)) {
          mkdirSync(target, { mode: 0o755 });
          createdDirs.add(target);
        }
        knownDirs.add(target);
        dirs.push({ path: target, mode: header.mode, mtime: header.mtime });
        break;
      case 'file':
        clear();
        await writeRegularFile(target, header, body);
        break;
      case 'symlink':
        if (Buffer.byteLength(header.linkname ?? '') > PATH_MAX) refuse(header, `is a symlink to a path longer than the ${PATH_MAX} bytes a path can have`);
        clear();
        symlinkSync(header.linkname ?? '', target);
        break;
      case 'hardlink': {
        const linkRel = relative(header, header.linkname ?? '');
        if (linkRel === '') refuse(header, 'is a hardlink to the root directory');
        const linkParent = parentDir(header, linkRel);
        const linkTarget = `${linkParent}/${linkRel.slice(linkRel.lastIndexOf('/') + 1)}`;
        const st = lstatSync(linkTarget, { throwIfNoEntry: false });
        if (!st) refuse(header, `is a hardlink to ${JSON.stringify(header.linkname)}, which does not exist in the layer or below`);
        if (st?.isDirectory()) refuse(header, `is a hardlink to the directory ${JSON.stringify(header.linkname)}`);
        clear();
        linkSync(linkTarget, target);
        continue; // a hardlink shares its target's owner, mode and times
      }
      case 'char':
      case 'block':
        if (!privileged) refuse(header, 'is a device node, which needs root to create');
        clear();
        await mknod(target, header.type === 'char' ? 'c' : 'b', header.devmajor, header.devminor);
        break;
      case 'fifo':
        clear();
        await mknod(target, 'p');
        break;
    }
    // Root creates files owned by 0:0 already; only other owners need a chown (a file has had its own).
    if (privileged && header.type !== 'file' && (header.uid !== 0 || header.gid !== 0)) lchownSync(target, header.uid, header.gid);
    // Extended attributes (file capabilities, SELinux labels, user.*): trusted.* and security.* need root;
    // overlay's own trusted.overlay.* are never taken from a layer.
    for (const [name, value] of header.xattrs ?? []) {
      if (name.startsWith('trusted.overlay.')) continue;
      if (!privileged && !name.startsWith('user.')) continue;
      await setXattr(target, name, value).catch((err: Error) => {
        throw new KilnError('UNSUPPORTED', `${what}: cannot set extended attribute ${name} on ${JSON.stringify(header.path)} (${err.message.trim()}); the filesystem under the store may not support it`);
      });
    }
    if (header.type === 'symlink') lutimesSync(target, header.mtime, header.mtime);
    else if (header.type !== 'directory' && header.type !== 'file') {
      chmodSync(target, header.mode); // after chown, which clears setuid and setgid
      utimesSync(target, header.mtime, header.mtime);
    }
  }

  // Opaque directories: everything the layers below put there is hidden.
  for (const dir of opaque) {
    if (options.whiteouts === 'overlay') {
      if (!privileged) throw new KilnError('INVALID_INPUT', `${what}: opaque directory ${JSON.stringify(dir)} needs root for its overlay xattr`);
      await setOpaque(dir);
    } else {
      await keepOnly(dir, written);
    }
  }
  // Directory modes and times last: a read-only directory must still take its children, and writing
  // inside a directory changes its mtime.
  for (const dir of dirs.reverse()) {
    chmodSync(dir.path, dir.mode);
    utimesSync(dir.path, dir.mtime, dir.mtime);
  }
  return { entries, diffSize };
}
