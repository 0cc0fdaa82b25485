import { type Stats, createReadStream } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TarHeader } from './tar/header.js';
import { type TarInput, writeTar } from './tar/writer.js';

/** Linux's major/minor split of a device number (glibc's gnu_dev_major/minor). */
export function deviceNumbers(rdev: number): { devmajor: number; devminor: number } {
  const big = BigInt(rdev);
  return {
    devmajor: Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn)),
    devminor: Number((big & 0xffn) | ((big >> 12n) & ~0xffn)),
  };
}

/**
 * A directory as a tar stream, in sorted order with owners, modes, whole-second mtimes, symlinks,
 * hardlinks (the second name of an inode links to the first), devices and fifos. Extended attributes
 * are not read (Node has no xattr call); sockets are skipped, as tar does.
 */
export async function* tarDirectory(root: string): AsyncGenerator<Buffer> {
  yield* writeTar(children(root, '', new Map()));
}

/**
 * Where a walk takes another path's content in place of one it meets (a container's mount point: the
 * mount's source), or undefined to take the path's own.
 */
export type Graft = (path: string) => string | undefined;

/**
 * `path` itself as a tar (`docker cp`'s archive), its entry named `name`: a file, symlink or device as
 * one entry, a directory with everything under it, as tarDirectory writes them. With `follow`, a symlink
 * at `path` is taken as what it points to; with `graft`, what is mounted over a path below it is taken
 * in its place.
 */
export async function* tarPath(path: string, name: string, follow = false, graft?: Graft): AsyncGenerator<Buffer> {
  yield* writeTar(entries(path, name, await (follow ? stat : lstat)(path), new Map(), graft));
}

/** The entries under `dir`, named under `prefix`; `seen` maps inodes to their first name (hardlinks). */
async function* children(dir: string, prefix: string, seen: Map<string, string>, graft?: Graft): AsyncGenerator<TarInput> {
  for (const name of (await readdir(dir)).sort()) {
    const full = graft?.(join(dir, name)) ?? join(dir, name);
    yield* entries(full, prefix + name, await lstat(full), seen, graft);
  }
}

/** The entry for `full` named `path`, and for a directory everything under it. */
async function* entries(full: string, path: string, st: Stats, seen: Map<string, string>, graft?: Graft): AsyncGenerator<TarInput> {
  const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) };
  if (st.isDirectory()) {
    yield { header: { ...base, path: `${path}/`, type: 'directory' } };
    yield* children(full, `${path}/`, seen, graft);
  } else if (st.isSymbolicLink()) {
    yield { header: { ...base, type: 'symlink', linkname: await readlink(full) } };
  } else if (st.isFile()) {
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? seen.get(inode) : undefined;
    if (first) {
      yield { header: { ...base, type: 'hardlink', linkname: first } };
      return;
    }
    if (st.nlink > 1) seen.set(inode, path);
    const header: TarHeader = { ...base, type: 'file', size: st.size };
    yield { header, body: st.size > 0 ? createReadStream(full, { highWaterMark: 1 << 20 }) : new Uint8Array(0) };
  } else if (st.isCharacterDevice() || st.isBlockDevice()) {
    yield { header: { ...base, type: st.isCharacterDevice() ? 'char' : 'block', ...deviceNumbers(st.rdev) } };
  } else if (st.isFIFO()) {
    yield { header: { ...base, type: 'fifo' } };
  }
}
