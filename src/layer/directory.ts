import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
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
  const seen = new Map<string, string>();
  async function* entries(dir: string, prefix: string): AsyncGenerator<TarInput> {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const path = prefix + name;
      const st = await lstat(full);
      const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isDirectory()) {
        yield { header: { ...base, path: `${path}/`, type: 'directory' } };
        yield* entries(full, `${path}/`);
      } else if (st.isSymbolicLink()) {
        yield { header: { ...base, type: 'symlink', linkname: await readlink(full) } };
      } else if (st.isFile()) {
        const inode = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(inode) : undefined;
        if (first) {
          yield { header: { ...base, type: 'hardlink', linkname: first } };
          continue;
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
  }
  yield* writeTar(entries(root, ''));
}
