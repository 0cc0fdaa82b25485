/**
 * Reads one layer's tar into a listing of its entries, in one streaming pass and without unpacking:
 * headers only where the tar lies uncompressed in a local file (bodies are seeked over, and hashed later
 * only for the few files an analysis needs), headers and a hash of every file's content otherwise.
 * Memory is proportional to the number of entries, never to their bytes.
 */
import { createHash, hash } from 'node:crypto';
import { readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { posix } from 'node:path';
import { KilnError } from '../../errors.js';
import type { BlobFile, Layer } from '../../image/image.js';
import { autoDecompress, detectCompression } from '../../layer/compression.js';
import type { TarEntryType } from '../../layer/tar/header.js';
import { FileSource } from '../../layer/tar/file-source.js';
import { type TarSource, readTar } from '../../layer/tar/reader.js';
import { scanTarHeaders } from '../../layer/tar/scan.js';

/** What an entry is: a tar type, or one of the two whiteout markers of the OCI layer format. */
export type EntryKind = TarEntryType | 'whiteout' | 'opaque';

export const WHITEOUT_PREFIX = '.wh.';
/** AUFS's own metadata (`.wh..wh.plnk`, `.wh..wh.aufs`) and the opaque marker all start so. */
const META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

export interface LayerEntry {
  /**
   * The cleaned path (`etc/passwd`, no leading slash) the entry is about: for a whiteout, the path it
   * deletes; for an opaque marker, the directory it empties ('' for the root).
   */
  readonly path: string;
  /** The entry's own cleaned name (`etc/.wh.passwd`), as dive lists it. */
  readonly name: string;
  readonly kind: EntryKind;
  /** The tar header's size: a regular file's bytes, 0 for every other kind. */
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** A symlink's target as written; a hardlink's target as a cleaned path. */
  readonly link?: string;
  /** Where a file's body starts in the uncompressed tar. */
  readonly offset: number;
}

/** One layer's entries in tar order, and the content digests learnt so far (by entry index). */
export interface LayerListing {
  readonly entries: readonly LayerEntry[];
  readonly fingerprints: Map<number, string>;
  /** Fills in the content digests of the given entries that are not known yet. */
  fingerprint(indexes: Iterable<number>): Promise<void>;
}

/** How long reading file contents may hold the event loop before letting it turn. */
const SYNC_SLICE_MS = 20;

/** A `.` or `..` segment, or an empty one. */
const NOT_CLEAN = /(?:^|\/)\.{1,2}(?:\/|$)|\/\//;

/** Cleans a tar path as dive and Go's path.Clean do, relative; undefined for the root itself. */
export function cleanEntryPath(path: string, what: string): string | undefined {
  let cleaned = path.startsWith('./') ? path.slice(2) : path;
  if (cleaned.endsWith('/')) cleaned = cleaned.slice(0, -1);
  // Most names are clean already (no segment starts with a dot, no empty one); only the others pay for normalizing.
  if (cleaned.startsWith('/') || ((cleaned.startsWith('.') || cleaned.includes('/.') || cleaned.includes('//')) && NOT_CLEAN.test(cleaned))) {
    const relative = posix.normalize(path);
    if (relative === '..' || relative.startsWith('../')) {
      throw new KilnError('INVALID_INPUT', `${what}: entry ${JSON.stringify(path)} points outside the root filesystem`);
    }
    cleaned = posix.normalize(`/${path}`).slice(1).replace(/\/$/, '');
  }
  return cleaned === '' || cleaned === '.' ? undefined : cleaned;
}

/** The content digest of one file, as a short string (equal digests, equal content). */
function digestOf(chunks: readonly Buffer[]): string {
  if (chunks.length === 1) return hash('sha256', chunks[0] as Buffer, 'base64');
  const h = createHash('sha256');
  for (const chunk of chunks) h.update(chunk);
  return h.digest('base64');
}

/** Turns one tar header's fields into an entry, or undefined for what is no entry at all (the root, AUFS metadata). */
function toEntry(rawPath: string, type: TarEntryType, linkname: string, size: number, mode: number, uid: number, gid: number, offset: number, what: string): LayerEntry | undefined {
  const name = cleanEntryPath(rawPath, what);
  if (name === undefined) return undefined;
  const slash = name.lastIndexOf('/');
  let path = name;
  let kind: EntryKind = type;
  let link: string | undefined;
  if (name.startsWith(WHITEOUT_PREFIX, slash + 1)) {
    const dir = slash === -1 ? '' : name.slice(0, slash);
    if (name.startsWith(META_PREFIX, slash + 1)) {
      if (name.length - slash - 1 !== OPAQUE_MARKER.length || !name.endsWith(OPAQUE_MARKER)) return undefined;
      path = dir;
      kind = 'opaque';
    } else {
      path = (dir ? `${dir}/` : '') + name.slice(slash + 1 + WHITEOUT_PREFIX.length);
      kind = 'whiteout';
    }
  } else if (kind === 'hardlink') {
    link = cleanEntryPath(linkname, what) ?? '';
  } else if (kind === 'symlink') {
    link = linkname;
  }
  // One object shape for every entry, so that the code reading entries stays monomorphic.
  return { path, name, kind, size: kind === 'file' ? size : 0, mode, uid, gid, link, offset };
}

/** A listing of `entries`, whose missing fingerprints are read from `file` on demand. */
function listingOf(entries: readonly LayerEntry[], fingerprints: Map<number, string>, file: BlobFile | undefined, what: string): LayerListing {
  return {
    entries,
    fingerprints,
    fingerprint: async (indexes) => {
      const wanted = [...indexes].filter((i) => !fingerprints.has(i) && entries[i]?.kind === 'file').sort((a, b) => (entries[a]?.offset ?? 0) - (entries[b]?.offset ?? 0));
      if (wanted.length === 0) return;
      if (!file) throw new KilnError('INTERNAL', `${what}: file contents were asked for after the layer was read`);
      const handle = await open(file.path, 'r');
      try {
        // One buffer for every read, and a one-shot hash for what fits in it (nearly every file).
        const buffer = Buffer.allocUnsafe(1 << 20);
        let sliceStart = Date.now();
        for (const index of wanted) {
          const entry = entries[index] as LayerEntry;
          const h = entry.size > buffer.length ? createHash('sha256') : undefined;
          let last = buffer.subarray(0, 0);
          for (let at = 0; at < entry.size; ) {
            if (Date.now() - sliceStart > SYNC_SLICE_MS) {
              await yieldTurn();
              sliceStart = Date.now();
            }
            const bytesRead = readSync(handle.fd, buffer, 0, Math.min(buffer.length, entry.size - at), file.start + entry.offset + at);
            if (bytesRead === 0) throw new KilnError('INVALID_INPUT', `${what}: entry ${JSON.stringify(entry.name)} is cut short (the layer is truncated)`);
            last = buffer.subarray(0, bytesRead);
            h?.update(last);
            at += bytesRead;
          }
          fingerprints.set(index, h ? h.digest('base64') : hash('sha256', last, 'base64'));
        }
      } finally {
        await handle.close();
      }
    },
  };
}

/** Lists a layer from a tar stream, which cannot be read again: every regular file's content is hashed on the way. */
export async function listTar(tar: TarSource, what: string): Promise<LayerListing> {
  const entries: LayerEntry[] = [];
  const fingerprints = new Map<number, string>();
  for await (const { header, body, offset } of readTar(tar)) {
    const entry = toEntry(header.path, header.type, header.linkname ?? '', header.size, header.mode, header.uid, header.gid, offset, what);
    if (!entry) continue;
    if (entry.kind === 'file' && entry.size > 0) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      fingerprints.set(entries.length, digestOf(chunks));
    }
    entries.push(entry);
  }
  return listingOf(entries, fingerprints, undefined, what);
}

/**
 * Runs `local` on a layer's file when it lies in the store uncompressed (open while `local` runs), else
 * `streamed` on its bytes decompressed as they stream.
 */
async function readLayer<T>(layer: Layer, local: (handle: FileHandle, file: BlobFile) => Promise<T>, streamed: (tar: TarSource) => Promise<T>): Promise<T> {
  const file = await layer.locate?.();
  if (file) {
    const handle = await open(file.path, 'r');
    try {
      const head = Buffer.alloc(4);
      await handle.read(head, 0, 4, file.start);
      if (detectCompression(head) === 'none') return await local(handle, file);
    } finally {
      await handle.close();
    }
  }
  const { stream } = await autoDecompress(await layer.open());
  return streamed(stream);
}

/**
 * Runs `fn` on a layer's tar: from its local file when it lies there uncompressed (`file` is given, and
 * bodies can be seeked over; the source reuses its read buffers, so a body chunk is good until the next
 * is read), else its bytes decompressed as they stream. The file is open while `fn` runs.
 */
export async function withLayerTar<T>(layer: Layer, fn: (tar: TarSource, file: BlobFile | undefined) => Promise<T>): Promise<T> {
  return readLayer(
    layer,
    (handle, file) => fn(new FileSource(handle, file.start + file.size, { start: file.start, sync: true, reuse: true }), file),
    (tar) => fn(tar, undefined),
  );
}

/**
 * Lists a layer of an image: from its local file when it lies there uncompressed (headers only, as
 * `tar -t` reads), else from its bytes decompressed as they stream (bodies hashed as they pass).
 */
export async function listLayer(layer: Layer, what: string): Promise<LayerListing> {
  return readLayer(
    layer,
    async (handle, file) => {
      const entries: LayerEntry[] = [];
      await scanTarHeaders(handle.fd, file.start, file.start + file.size, (path, type, linkname, size, mode, uid, gid, offset) => {
        const entry = toEntry(path, type, linkname, size, mode, uid, gid, offset, what);
        if (entry) entries.push(entry);
      });
      return listingOf(entries, new Map(), file, what);
    },
    (tar) => listTar(tar, what),
  );
}
