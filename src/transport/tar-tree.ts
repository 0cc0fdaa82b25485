import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../errors.js';
import type { BlobFile } from '../image/image.js';
import { FileSource } from '../layer/tar/file-source.js';
import { readTar } from '../layer/tar/reader.js';
import { type FileTree, cleanTreePath, readBounded } from './filetree.js';

interface IndexEntry {
  readonly type: 'file' | 'link';
  readonly offset: number;
  readonly size: number;
  /** For links: the archive path they point to (symlinks resolved relative to their directory); checked when followed. */
  readonly target?: string;
}

/**
 * A tar file seen as a {@link FileTree}: indexed once (headers only; bodies are seeked over), then
 * files are streamed from their offsets. Links inside the archive (Docker's legacy saves share layer
 * tars through symlinks) resolve within the archive, never outside it.
 */
export class TarTree implements FileTree {
  private constructor(
    readonly description: string,
    private readonly path: string,
    private readonly index: ReadonlyMap<string, IndexEntry>,
  ) {}

  static async open(path: string, description: string): Promise<TarTree> {
    const handle = await open(path, 'r');
    const index = new Map<string, IndexEntry>();
    try {
      const { size } = fstatSync(handle.fd);
      // Read in this thread (only headers: bodies are seeked over), where the pool took a round trip per header.
      for await (const { header, offset } of readTar(new FileSource(handle, size, { sync: true }))) {
        const name = cleanTreePath(header.path, description).replace(/\/$/, '');
        if (name === '.') continue;
        if (header.type === 'file') index.set(name, { type: 'file', offset, size: header.size });
        else if (header.type === 'symlink' || header.type === 'hardlink') {
          const link = header.linkname ?? '';
          const target = header.type === 'symlink' && !link.startsWith('/') ? posix.join(posix.dirname(name), link) : link;
          index.set(name, { type: 'link', offset, size: 0, target });
        }
      }
    } catch (err) {
      if (err instanceof KilnError && !err.message.startsWith(description)) throw new KilnError(err.code, `${description}: ${err.message}`, { cause: err });
      throw err;
    } finally {
      await handle.close();
    }
    return new TarTree(description, path, index);
  }

  private lookup(path: string): IndexEntry | undefined {
    let name = cleanTreePath(path, this.description);
    for (let hops = 0; hops < 16; hops++) {
      const entry = this.index.get(name);
      if (!entry || entry.type === 'file') return entry;
      name = entry.target as string;
    }
    throw new KilnError('INVALID_INPUT', `${this.description}: ${path} is a link loop`);
  }

  size(path: string): Promise<number | undefined> {
    return Promise.resolve(this.lookup(path)?.size);
  }

  read(path: string, maxBytes: number): Promise<Buffer> {
    const entry = this.lookup(path);
    if (!entry || entry.size > maxBytes) return readBounded(this, path, maxBytes); // its errors
    // A small file (a manifest, a config) in one read in this thread, where a stream took a round trip through the pool per step.
    const bytes = Buffer.allocUnsafe(entry.size);
    const fd = openSync(this.path, 'r');
    try {
      let got = 0;
      for (let n = 1; got < entry.size && n > 0; got += n) n = readSync(fd, bytes, got, entry.size - got, entry.offset + got);
      return Promise.resolve(bytes.subarray(0, got));
    } finally {
      closeSync(fd);
    }
  }

  open(path: string): Promise<AsyncIterable<Uint8Array>> {
    const entry = this.lookup(path);
    if (!entry) return Promise.reject(new KilnError('INVALID_INPUT', `${this.description}: ${path} is missing`));
    if (entry.size === 0) return Promise.resolve((async function* () {})());
    return Promise.resolve(createReadStream(this.path, { start: entry.offset, end: entry.offset + entry.size - 1, highWaterMark: 1 << 20 }));
  }

  locate(path: string): Promise<BlobFile | undefined> {
    const entry = this.lookup(path);
    return Promise.resolve(entry && { path: this.path, start: entry.offset, size: entry.size });
  }
}
