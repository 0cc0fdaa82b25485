/**
 * Reads one layer's tar into a listing of its entries, in one streaming pass and without unpacking:
 * headers only where the tar lies uncompressed in a local file (bodies are seeked over, and hashed later
 * only for the few files an analysis needs), headers and a hash of every file's content otherwise.
 * Memory is proportional to the number of entries, never to their bytes.
 */
import { createHash, hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../../errors.js';
import type { BlobFile, Layer } from '../../image/image.js';
import { autoDecompress, detectCompression } from '../../layer/compression.js';
import { FileSource } from '../../layer/tar/file-source.js';
import type { TarEntryType, TarHeader } from '../../layer/tar/header.js';
import { type TarSource, readTar } from '../../layer/tar/reader.js';

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

/** A `.` or `..` segment, or an empty one. */
const NOT_CLEAN = /(?:^|\/)\.{1,2}(?:\/|$)|\/\//;

/** Cleans a tar path as dive and Go's path.Clean do, relative; undefined for the root itself. */
export function cleanEntryPath(path: string, what: string): string | undefined {
  let cleaned = path.startsWith('./') ? path.slice(2) : path;
  if (cleaned.endsWith('/')) cleaned = cleaned.slice(0, -1);
  // Most names are clean already; only the others pay for normalizing.
  if (cleaned.startsWith('/') || NOT_CLEAN.test(cleaned)) {
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

/** Turns one tar header into an entry, or undefined for what is no entry at all (the root, AUFS metadata). */
function toEntry(header: TarHeader, offset: number, what: string): LayerEntry | undefined {
  const name = cleanEntryPath(header.path, what);
  if (name === undefined) return undefined;
  const slash = name.lastIndexOf('/');
  let path = name;
  let kind: EntryKind = header.type;
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
    link = cleanEntryPath(header.linkname ?? '', what) ?? '';
  } else if (kind === 'symlink') {
    link = header.linkname ?? '';
  }
  // One object shape for every entry, so that the code reading entries stays monomorphic.
  return { path, name, kind, size: kind === 'file' ? header.size : 0, mode: header.mode, uid: header.uid, gid: header.gid, link, offset };
}

/**
 * Lists a layer from its tar. `hashBodies` hashes every regular file's content on the way (for a stream
 * that cannot be read again); otherwise bodies are skipped, and `fingerprint` reads them later from `file`.
 */
export async function listTar(tar: TarSource, what: string, options: { hashBodies: boolean; file?: BlobFile }): Promise<LayerListing> {
  const entries: LayerEntry[] = [];
  const fingerprints = new Map<number, string>();
  for await (const { header, body, offset } of readTar(tar)) {
    const entry = toEntry(header, offset, what);
    if (!entry) continue;
    if (options.hashBodies && entry.kind === 'file' && entry.size > 0) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      fingerprints.set(entries.length, digestOf(chunks));
    }
    entries.push(entry);
  }
  const { file } = options;
  return {
    entries,
    fingerprints,
    fingerprint: async (indexes) => {
      const wanted = [...indexes].filter((i) => !fingerprints.has(i) && entries[i]?.kind === 'file').sort((a, b) => (entries[a]?.offset ?? 0) - (entries[b]?.offset ?? 0));
      if (wanted.length === 0) return;
      if (!file) throw new KilnError('INTERNAL', `${what}: file contents were asked for after the layer was read`);
      const handle = await open(file.path, 'r');
      try {
        for (const index of wanted) {
          const entry = entries[index] as LayerEntry;
          const chunks: Buffer[] = [];
          for (let at = 0; at < entry.size; ) {
            const buffer = Buffer.allocUnsafe(Math.min(1 << 20, entry.size - at));
            const { bytesRead } = await handle.read(buffer, 0, buffer.length, file.start + entry.offset + at);
            if (bytesRead === 0) throw new KilnError('INVALID_INPUT', `${what}: entry ${JSON.stringify(entry.name)} is cut short (the layer is truncated)`);
            chunks.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
            at += bytesRead;
          }
          fingerprints.set(index, digestOf(chunks));
        }
      } finally {
        await handle.close();
      }
    },
  };
}

/**
 * Lists a layer of an image: from its local file when it lies there uncompressed (bodies seeked over),
 * else from its bytes decompressed as they stream (bodies hashed as they pass).
 */
export async function listLayer(layer: Layer, what: string): Promise<LayerListing> {
  const file = await layer.locate?.();
  if (file) {
    const handle = await open(file.path, 'r');
    try {
      const head = Buffer.alloc(4);
      await handle.read(head, 0, 4, file.start);
      if (detectCompression(head) === 'none') {
        return await listTar(new FileSource(handle, file.start + file.size, { start: file.start, sync: true, reuse: true }), what, { hashBodies: false, file });
      }
    } finally {
      await handle.close();
    }
  }
  const { stream } = await autoDecompress(await layer.open());
  return listTar(stream, what, { hashBodies: true });
}
