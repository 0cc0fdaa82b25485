import { createReadStream } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import { KilnError, isErrno } from '../errors.js';
import type { BlobFile } from '../image/image.js';

/**
 * Read access to the files of an image archive or layout, whether it is a directory or a tar file.
 * Paths are relative and slash-separated; a path that would leave the tree is refused.
 */
export interface FileTree {
  /** Names the tree in error messages: "archive busybox.tar", "directory ./layout". */
  readonly description: string;
  size(path: string): Promise<number | undefined>;
  /** Reads a small file whole, refusing one larger than `maxBytes`. */
  read(path: string, maxBytes: number): Promise<Buffer>;
  open(path: string): Promise<AsyncIterable<Uint8Array>>;
  /** Where a file's bytes lie on disk, uncut (undefined when it is missing). */
  locate(path: string): Promise<BlobFile | undefined>;
}

/** Normalizes an archive-relative path, refusing absolute paths and `..` that climbs out. */
export function cleanTreePath(path: string, description: string): string {
  const normalized = posix.normalize(path.replace(/^\.\//, ''));
  if (path.startsWith('/') || normalized === '..' || normalized.startsWith('../')) {
    throw new KilnError('INVALID_INPUT', `${description}: path ${JSON.stringify(path)} points outside the archive`);
  }
  return normalized;
}

export async function readBounded(tree: FileTree, path: string, maxBytes: number): Promise<Buffer> {
  const size = await tree.size(path);
  if (size === undefined) throw new KilnError('INVALID_INPUT', `${tree.description}: ${path} is missing`);
  if (size > maxBytes) throw new KilnError('INVALID_INPUT', `${tree.description}: ${path} is ${size} bytes, more than the ${maxBytes} allowed for it`);
  const chunks: Buffer[] = [];
  for await (const chunk of await tree.open(path)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** A directory on disk (an OCI image layout). Symlinks are not followed out of it. */
export class DirectoryTree implements FileTree {
  readonly description: string;

  private constructor(private readonly root: string) {
    this.description = `directory ${root}`;
  }

  static async open(root: string): Promise<DirectoryTree> {
    return new DirectoryTree(
      await realpath(root).catch((err: unknown) => {
        if (isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `no such directory: ${root}`);
        throw err;
      }),
    );
  }

  private async resolve(path: string): Promise<string | undefined> {
    const full = join(this.root, cleanTreePath(path, this.description));
    let real: string;
    try {
      real = await realpath(full);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    if (real !== this.root && !real.startsWith(this.root + sep)) {
      throw new KilnError('INVALID_INPUT', `${this.description}: ${path} is a link that points outside the directory`);
    }
    return real;
  }

  async size(path: string): Promise<number | undefined> {
    const real = await this.resolve(path);
    if (!real) return undefined;
    const st = await lstat(real);
    return st.isFile() ? st.size : undefined;
  }

  read(path: string, maxBytes: number): Promise<Buffer> {
    return readBounded(this, path, maxBytes);
  }

  async open(path: string): Promise<AsyncIterable<Uint8Array>> {
    const real = await this.resolve(path);
    if (!real) throw new KilnError('INVALID_INPUT', `${this.description}: ${path} is missing`);
    const handle = await open(real, 'r');
    return createReadStream('', { fd: handle, highWaterMark: 1 << 20 });
  }

  async locate(path: string): Promise<BlobFile | undefined> {
    const real = await this.resolve(path);
    const st = real === undefined ? undefined : await lstat(real);
    return real !== undefined && st?.isFile() ? { path: real, start: 0, size: st.size } : undefined;
  }
}
