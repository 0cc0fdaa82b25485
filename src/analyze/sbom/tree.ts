/**
 * The final tree of an image as the SBOM cataloguers see it: the layers are read bottom first, one pass
 * each, whiteouts and opaque directories applied, and only the files a cataloguer asks for are read (the
 * rest are seeked over where the layer lies uncompressed). Each kept file remembers the layer that last
 * wrote it; a file asked for with `history` keeps the versions lower layers wrote too, as long as no layer
 * removed it in between, so that a cataloguer can tell in which layer a record inside it first appeared.
 */
import { type FileHandle, lstat, open, readdir, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { KilnError, isErrno } from '../../errors.js';
import type { BlobFile } from '../../image/image.js';
import type { TarSource } from '../../layer/tar/reader.js';
import { readTar } from '../../layer/tar/reader.js';
import { cleanEntryPath } from '../layers/walk.js';

/** What a cataloguer wants of a file it asked for. */
export interface Capture<T> {
  /** Files larger than this are passed over (a hostile or broken record cannot fill the memory). */
  readonly maxBytes: number;
  /** Keep the versions lower layers wrote too. */
  readonly history?: boolean;
  /** Decides from the file's first bytes (at least 64, or all of a smaller file) whether it is wanted. */
  readonly head?: (first: Buffer) => boolean;
  /** Turns the file's bytes into what the cataloguer keeps (undefined: nothing to keep). */
  readonly read: (bytes: Buffer, path: string) => T | undefined | Promise<T | undefined>;
  /**
   * Where the file can be read at any position (a layer lying uncompressed in a local file): finds the
   * value from the few parts it needs, or says READ_ALL to have `read` take the whole file.
   */
  readonly probe?: (readAt: ReadAt, size: number) => Promise<T | undefined | typeof READ_ALL>;
}

/** Reads `length` bytes of a file at `position` (fewer at its end). */
export type ReadAt = (position: number, length: number) => Promise<Buffer>;

/** A probe's answer: it cannot tell from parts, read the whole file. */
export const READ_ALL = Symbol('read all');

/** One version of a file a cataloguer asked for. */
export interface FoundFile<T> {
  /** Absolute path in the image. */
  readonly path: string;
  readonly layer: number;
  readonly value: T;
}

/** The final version of a file, with the versions below it when its capture keeps history (bottom first). */
export interface FinalFile<T> extends FoundFile<T> {
  readonly versions: readonly FoundFile<T>[];
}

/** Asks, for an absolute path and its mode, which capture (by the asker's index) wants the file. */
export type Selector = (path: string, mode: number) => { readonly asker: number; readonly capture: Capture<unknown> } | undefined;

/** One entry of a layer, as the tree reader needs it. */
export interface TreeEntry {
  readonly path: string;
  readonly kind: 'file' | 'directory' | 'symlink' | 'other' | 'hardlink' | 'whiteout' | 'opaque';
  readonly mode: number;
  readonly size: number;
  /** A hardlink's target (cleaned, relative), a symlink's as written. */
  readonly link?: string;
  readonly body: () => AsyncIterable<Buffer>;
  /** Random access to a regular file's content, where the layer allows it. */
  readonly readAt?: ReadAt;
}

/** A layer's entries, handed to `visit` one at a time in the layer's order. */
export type LayerWalk = (visit: (entry: TreeEntry) => Promise<void>) => Promise<void>;

interface Live {
  readonly directory: boolean;
  readonly symlink?: string;
  readonly asker?: number;
  readonly history?: boolean;
  readonly found?: FinalFile<unknown>;
}

const HEAD_BYTES = 64;

/**
 * Reads a file up to `capture`'s limits and turns it into the asker's value: by position where the layer
 * allows it (the tar's own reads go on past the body), else from the body as it streams by.
 */
async function readBody(entry: TreeEntry, capture: Capture<unknown>, path: string): Promise<unknown> {
  try {
    return await readCapture(entry, capture, path);
  } catch (err) {
    // A record or binary cut short or malformed (a read out of its bounds) holds nothing to catalogue.
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

async function readCapture(entry: TreeEntry, capture: Capture<unknown>, path: string): Promise<unknown> {
  if (entry.size > capture.maxBytes) return undefined;
  const { readAt } = entry;
  if (readAt) {
    if (capture.probe) {
      const probed = await capture.probe(readAt, entry.size);
      if (probed !== READ_ALL) return probed;
    } else if (capture.head && !capture.head(await readAt(0, HEAD_BYTES))) return undefined;
    return capture.read(await readAt(0, entry.size), path);
  }
  const chunks: Buffer[] = [];
  let have = 0;
  let checked = capture.head === undefined;
  for await (const chunk of entry.body()) {
    // A copy: the source may reuse its buffers.
    chunks.push(Buffer.from(chunk));
    have += chunk.length;
    if (!checked && (have >= HEAD_BYTES || have >= entry.size)) {
      if (!capture.head?.(Buffer.concat(chunks))) return undefined;
      checked = true;
    }
  }
  if (!checked && !capture.head?.(Buffer.concat(chunks))) return undefined;
  return capture.read(Buffer.concat(chunks, have), path);
}

/** The paths a layer hides below: whiteouts, opaque directories, and directories replaced by other kinds. */
function hide(live: Map<string, Live>, gone: ReadonlySet<string>, emptied: ReadonlySet<string>): void {
  if (gone.size === 0 && emptied.size === 0) return;
  for (const path of live.keys()) {
    for (let at = path.length; at > 0; at = path.lastIndexOf('/', at - 1)) {
      const above = path.slice(0, at);
      if (gone.has(above) || (at < path.length && emptied.has(above))) {
        live.delete(path);
        break;
      }
    }
    if (emptied.has('') && live.has(path)) live.delete(path);
  }
}

/** What the final tree holds for the cataloguers: the wanted files by asker, and every symlink. */
export interface FinalTree {
  readonly found: readonly (readonly FinalFile<unknown>[] | undefined)[];
  /** Absolute path → target as written. */
  readonly symlinks: ReadonlyMap<string, string>;
}

/**
 * Reads layers bottom first into the final tree's wanted files, by asker. `layers` yields each layer's
 * entries; a layer's whiteouts apply to the layers below it only.
 */
export async function readFinalTree(layers: readonly LayerWalk[], select: Selector): Promise<FinalTree> {
  const live = new Map<string, Live>();
  for (const [index, walk] of layers.entries()) {
    const gone = new Set<string>();
    const emptied = new Set<string>();
    const added = new Map<string, Live>();
    await walk(async (entry) => {
      if (entry.kind === 'whiteout') gone.add(entry.path);
      else if (entry.kind === 'opaque') emptied.add(entry.path);
      else {
        if (entry.kind !== 'directory' && live.get(entry.path)?.directory) gone.add(entry.path);
        const absolute = `/${entry.path}`;
        const wanted = entry.kind === 'file' || entry.kind === 'hardlink' ? select(absolute, entry.mode) : undefined;
        if (!wanted) {
          added.set(entry.path, entry.kind === 'symlink' ? { directory: false, symlink: entry.link ?? '' } : { directory: entry.kind === 'directory' });
          return;
        }
        let value: unknown;
        if (entry.kind === 'hardlink') {
          // The target was written before it in this layer or lives below; its value is the file's.
          const target = added.get(entry.link ?? '') ?? live.get(entry.link ?? '');
          value = target?.asker === wanted.asker ? target.found?.value : undefined;
        } else value = await readBody(entry, wanted.capture, absolute);
        if (value === undefined) {
          added.set(entry.path, { directory: false });
          return;
        }
        added.set(entry.path, { directory: false, asker: wanted.asker, history: wanted.capture.history === true, found: { path: absolute, layer: index, value, versions: [] } });
      }
    });
    hide(live, gone, emptied);
    for (const [path, entry] of added) {
      const below = live.get(path)?.found;
      // The version below stays part of the history only if no layer removed it in between.
      const kept = entry.history && entry.found && below && live.get(path)?.asker === entry.asker ? { ...entry, found: { ...entry.found, versions: [...below.versions, { path: below.path, layer: below.layer, value: below.value }] } } : entry;
      live.set(path, kept);
    }
  }
  const byAsker: FinalFile<unknown>[][] = [];
  const symlinks = new Map<string, string>();
  for (const [path, entry] of live) {
    if (entry.symlink !== undefined) symlinks.set(`/${path}`, entry.symlink);
    if (entry.asker === undefined || !entry.found) continue;
    (byAsker[entry.asker] ??= []).push(entry.found);
  }
  return { found: byAsker, symlinks };
}

/**
 * A path with the symlinked directories on the way resolved in the tree (Debian's merged /usr: dpkg lists
 * `/lib/x86_64-linux-gnu/libc.so.6`, which lies at `/usr/lib/…`). The last component is not resolved.
 */
export function canonicalPath(path: string, symlinks: ReadonlyMap<string, string>): string {
  if (symlinks.size === 0) return path;
  const parts = path.split('/').filter((p) => p !== '');
  let current = '';
  for (let i = 0, hops = 0; i < parts.length; i++) {
    const next = `${current}/${parts[i] as string}`;
    const target = i < parts.length - 1 ? symlinks.get(next) : undefined;
    if (target === undefined || hops++ > 40) {
      current = next;
      continue;
    }
    const resolved = posix.normalize(target.startsWith('/') ? target : `${current}/${target}`);
    // The target may itself go through symlinks: resolve it again, with the rest of the path after it.
    parts.splice(0, i + 1, ...resolved.split('/').filter((p) => p !== '' && p !== '..'));
    current = '';
    i = -1;
  }
  return current === '' ? '/' : current;
}

/**
 * A layer's tar as tree entries. With `file` (the tar lies uncompressed there), regular files can also be
 * read at any position, through a handle of its own that is open while the layer is walked.
 */
export function tarLayer(tar: TarSource, what: string, file?: BlobFile): LayerWalk {
  return async (visit) => {
    const handle = file && (await open(file.path, 'r'));
    try {
      await walkTar(tar, what, visit, handle && file ? { handle, start: file.start } : undefined);
    } finally {
      await handle?.close();
    }
  };
}

async function walkTar(tar: TarSource, what: string, visit: (entry: TreeEntry) => Promise<void>, random: { handle: FileHandle; start: number } | undefined): Promise<void> {
  for await (const { header, body, offset } of readTar(tar)) {
    const name = cleanEntryPath(header.path, what);
    if (name === undefined) continue;
    const slash = name.lastIndexOf('/');
    const base = name.slice(slash + 1);
    const dir = slash === -1 ? '' : name.slice(0, slash);
    if (base.startsWith('.wh.')) {
      if (base === '.wh..wh..opq') await visit({ path: dir, kind: 'opaque', mode: 0, size: 0, body: () => body });
      else if (!base.startsWith('.wh..wh.')) await visit({ path: (dir ? `${dir}/` : '') + base.slice(4), kind: 'whiteout', mode: 0, size: 0, body: () => body });
      continue;
    }
    const kind = header.type === 'file' || header.type === 'directory' || header.type === 'hardlink' || header.type === 'symlink' ? header.type : 'other';
    const link = header.type === 'hardlink' ? (cleanEntryPath(header.linkname ?? '', what) ?? '') : header.type === 'symlink' ? (header.linkname ?? '') : undefined;
    const readAt: ReadAt | undefined =
      random && kind === 'file'
        ? async (position, length) => {
            const wanted = Math.max(0, Math.min(length, header.size - position));
            const buffer = Buffer.alloc(wanted);
            const { bytesRead } = await random.handle.read(buffer, 0, wanted, random.start + offset + position);
            return bytesRead === wanted ? buffer : buffer.subarray(0, bytesRead);
          }
        : undefined;
    await visit({ path: name, kind, mode: header.mode, size: header.size, ...(link !== undefined ? { link } : {}), ...(readAt ? { readAt } : {}), body: () => body });
  }
}

/** A directory on this machine as one layer (`dir:PATH`): symlinks are not followed, nothing is written. */
export function directoryLayer(root: string): LayerWalk {
  return async (visit) => {
    const walk = async (relative: string): Promise<void> => {
      let names: string[];
      try {
        names = (await readdir(join(root, relative))).sort();
      } catch (err) {
        if (relative === '' && isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `dir:${root}: no such directory`);
        if (relative === '' && isErrno(err, 'ENOTDIR')) throw new KilnError('INVALID_ARGUMENT', `dir:${root}: not a directory`);
        if (isErrno(err, 'EACCES') || isErrno(err, 'ENOENT')) return;
        throw err;
      }
      for (const name of names) {
        const path = relative === '' ? name : `${relative}/${name}`;
        const stats = await lstat(join(root, path)).catch(() => undefined);
        if (!stats) continue;
        if (stats.isDirectory()) {
          await visit({ path, kind: 'directory', mode: stats.mode & 0o7777, size: 0, body: emptyBody });
          await walk(path);
        } else if (stats.isFile()) {
          await visit({ path, kind: 'file', mode: stats.mode & 0o7777, size: stats.size, body: () => fileBody(join(root, path)) });
        } else if (stats.isSymbolicLink()) {
          const link = await readlink(join(root, path)).catch(() => '');
          await visit({ path, kind: 'symlink', mode: stats.mode & 0o7777, size: 0, link, body: emptyBody });
        } else await visit({ path, kind: 'other', mode: stats.mode & 0o7777, size: 0, body: emptyBody });
      }
    };
    await walk('');
  };
}

async function* emptyBody(): AsyncGenerator<Buffer> {}

async function* fileBody(path: string): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  try {
    for (;;) {
      const buffer = Buffer.allocUnsafe(1 << 20);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
