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
import { sys } from '../../sys.js';

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

/** The kinds as the numbers LayerEntries keeps (their order is KIND_NAMES'). */
export const KIND = { file: 0, hardlink: 1, symlink: 2, char: 3, block: 4, directory: 5, fifo: 6, whiteout: 7, opaque: 8 } as const satisfies Record<EntryKind, number>;
export const KIND_NAMES: readonly EntryKind[] = ['file', 'hardlink', 'symlink', 'char', 'block', 'directory', 'fifo', 'whiteout', 'opaque'];

/**
 * One layer's entries in tar order, as columns by entry index rather than an object per entry: a big
 * layer has a hundred thousand entries, and objects that live through the whole analysis made much of
 * its time garbage collection and first touches of fresh memory.
 */
export class LayerEntries {
  length = 0;
  private nameList: string[] = [];
  private readonly targetMap = new Map<number, string>();
  private readonly linkMap = new Map<number, string>();
  /** Makes the strings of entries tarscan read (see unpack), when first asked for. */
  private strings: (() => void) | undefined;

  /** Makes the names', targets' and links' strings now, if they are still to be made (see unpack). */
  makeStrings(): void {
    this.strings?.();
  }

  /** Each entry's own cleaned name (`etc/.wh.passwd`), as dive lists it. */
  get names(): string[] {
    this.strings?.();
    return this.nameList;
  }

  /** The path an entry is about where it is not its name: a whiteout's target, an opaque marker's directory. */
  get targets(): Map<number, string> {
    this.strings?.();
    return this.targetMap;
  }

  /** A symlink's target as written; a hardlink's target as a cleaned path. */
  get links(): Map<number, string> {
    this.strings?.();
    return this.linkMap;
  }
  /** KIND numbers. */
  kinds: Uint8Array = new Uint8Array(256);
  /** The tar header's size: a regular file's bytes, 0 for every other kind. */
  sizes: Float64Array = new Float64Array(256);
  modes: Float64Array = new Float64Array(256);
  uids: Float64Array = new Float64Array(256);
  gids: Float64Array = new Float64Array(256);
  /** Where a file's body starts in the uncompressed tar. */
  offsets: Float64Array = new Float64Array(256);

  push(name: string, path: string, kind: number, size: number, mode: number, uid: number, gid: number, link: string | undefined, offset: number): void {
    const i = this.length;
    if (i === this.kinds.length) this.grow();
    this.names.push(name);
    if (path !== name) this.targets.set(i, path);
    if (link !== undefined) this.links.set(i, link);
    this.kinds[i] = kind;
    this.sizes[i] = size;
    this.modes[i] = mode;
    this.uids[i] = uid;
    this.gids[i] = gid;
    this.offsets[i] = offset;
    this.length = i + 1;
  }

  /** What native/sys's tarscan gave, when it read the layer (see unpack). */
  scanned: readonly [columns: Buffer, names: Buffer, links: Buffer] | undefined;

  /**
   * dive's `fileList` of these entries as the JSON document has it (see json.ts), made by native/sys on
   * the thread pool while the caller goes on; undefined when tarscan did not read the layer, or the
   * rendering failed (json.ts writes the list then).
   */
  fileListJson(): Promise<Buffer | undefined> | undefined {
    const render = sys()?.tarjson;
    return this.scanned && render?.(...this.scanned).catch(() => undefined);
  }

  /** The path entry `i` is about (see LayerEntry.path). */
  path(i: number): string {
    return this.targets.get(i) ?? (this.names[i] as string);
  }

  kind(i: number): EntryKind {
    return KIND_NAMES[this.kinds[i] as number] as EntryKind;
  }

  /** Entry `i` as one object, for the few places that want one. */
  entry(i: number): LayerEntry {
    return { path: this.path(i), name: this.names[i] as string, kind: this.kind(i), size: this.sizes[i] as number, mode: this.modes[i] as number, uid: this.uids[i] as number, gid: this.gids[i] as number, link: this.links.get(i), offset: this.offsets[i] as number };
  }

  /**
   * The entries native/sys's tarscan read (its packed layout is in tarscan.c): the columns are views of
   * its buffers; the names and links, one string each split, are made when first read (native/sys's
   * figures, which reads them from the buffers, runs meanwhile).
   */
  static unpack(scanned: readonly [columns: Buffer, names: Buffer, links: Buffer]): LayerEntries {
    const [columns, names, links] = scanned;
    const entries = new LayerEntries();
    entries.scanned = scanned;
    const count = columns.readUInt32LE(0);
    const encoding = columns.readUInt32LE(4) === 0 ? 'latin1' : 'utf8';
    const column = (c: number): Float64Array => new Float64Array(columns.buffer, columns.byteOffset + 16 + c * count * 8, count);
    entries.sizes = column(0);
    entries.modes = column(1);
    entries.uids = column(2);
    entries.gids = column(3);
    entries.offsets = column(4);
    entries.kinds = new Uint8Array(columns.buffer, columns.byteOffset + 16 + count * 40, count);
    entries.length = count;
    if (count === 0) return entries;
    entries.strings = () => {
      entries.strings = undefined;
      const list = names.toString(encoding, 0, names.length - 1).split('\0');
      entries.nameList = list;
      const targets = links.length === 0 ? [] : links.toString(encoding, 0, links.length - 1).split('\0');
      const { kinds, linkMap, targetMap } = entries;
      let link = 0;
      for (let i = 0; i < count; i++) {
        const kind = kinds[i] as number;
        if (kind === KIND.hardlink || kind === KIND.symlink) linkMap.set(i, targets[link++] as string);
        else if (kind === KIND.whiteout || kind === KIND.opaque) targetMap.set(i, targetOf(list[i] as string, kind));
      }
    };
    return entries;
  }

  private grow(): void {
    const room = this.kinds.length * 2;
    const widen = <T extends Uint8Array | Float64Array>(from: T, to: T): T => {
      to.set(from);
      return to;
    };
    this.kinds = widen(this.kinds, new Uint8Array(room));
    this.sizes = widen(this.sizes, new Float64Array(room));
    this.modes = widen(this.modes, new Float64Array(room));
    this.uids = widen(this.uids, new Float64Array(room));
    this.gids = widen(this.gids, new Float64Array(room));
    this.offsets = widen(this.offsets, new Float64Array(room));
  }
}

/** One layer's entries in tar order, and the content digests learnt so far (by entry index). */
export interface LayerListing {
  readonly entries: LayerEntries;
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

/** The path a whiteout (KIND.whiteout) or an opaque marker (KIND.opaque) named `name` is about. */
function targetOf(name: string, kind: number): string {
  const slash = name.lastIndexOf('/');
  const dir = slash === -1 ? '' : name.slice(0, slash);
  return kind === KIND.opaque ? dir : (dir ? `${dir}/` : '') + name.slice(slash + 1 + WHITEOUT_PREFIX.length);
}

/**
 * Adds one tar header's fields to `entries` as an entry; false for what is no entry at all (the root,
 * AUFS metadata).
 */
function addEntry(entries: LayerEntries, rawPath: string, type: TarEntryType, linkname: string, size: number, mode: number, uid: number, gid: number, offset: number, what: string): boolean {
  const name = cleanEntryPath(rawPath, what);
  if (name === undefined) return false;
  const slash = name.lastIndexOf('/');
  let path = name;
  let kind: number = KIND[type];
  let link: string | undefined;
  if (name.startsWith(WHITEOUT_PREFIX, slash + 1)) {
    if (name.startsWith(META_PREFIX, slash + 1) && (name.length - slash - 1 !== OPAQUE_MARKER.length || !name.endsWith(OPAQUE_MARKER))) return false;
    kind = name.startsWith(META_PREFIX, slash + 1) ? KIND.opaque : KIND.whiteout;
    path = targetOf(name, kind);
  } else if (kind === KIND.hardlink) {
    link = cleanEntryPath(linkname, what) ?? '';
  } else if (kind === KIND.symlink) {
    link = linkname;
  }
  entries.push(name, path, kind, kind === KIND.file ? size : 0, mode, uid, gid, link, offset);
  return true;
}

/** A listing of `entries`, whose missing fingerprints are read from `file` on demand. */
function listingOf(entries: LayerEntries, fingerprints: Map<number, string>, file: BlobFile | undefined, what: string): LayerListing {
  const { kinds, offsets, sizes } = entries;
  return {
    entries,
    fingerprints,
    fingerprint: async (indexes) => {
      const wanted = [...indexes].filter((i) => !fingerprints.has(i) && i < entries.length && kinds[i] === KIND.file).sort((a, b) => (offsets[a] as number) - (offsets[b] as number));
      if (wanted.length === 0) return;
      if (!file) throw new KilnError('INTERNAL', `${what}: file contents were asked for after the layer was read`);
      // native/sys hashes on the thread pool, while the caller computes on; a layer cut short is left to the reading below, which says so.
      const hashRanges = sys()?.hashranges;
      if (hashRanges) {
        const ranges = new Float64Array(wanted.length * 2);
        wanted.forEach((index, k) => {
          ranges[2 * k] = file.start + (offsets[index] as number);
          ranges[2 * k + 1] = sizes[index] as number;
        });
        const digests = await hashRanges(file.path, ranges);
        if (digests) {
          wanted.forEach((index, k) => fingerprints.set(index, digests.toString('base64', 32 * k, 32 * k + 32)));
          return;
        }
      }
      const handle = await open(file.path, 'r');
      try {
        // One buffer for every read, and a one-shot hash for what fits in it (nearly every file).
        const buffer = Buffer.allocUnsafe(1 << 20);
        let sliceStart = Date.now();
        for (const index of wanted) {
          const size = sizes[index] as number;
          const offset = offsets[index] as number;
          const h = size > buffer.length ? createHash('sha256') : undefined;
          let last = buffer.subarray(0, 0);
          for (let at = 0; at < size; ) {
            if (Date.now() - sliceStart > SYNC_SLICE_MS) {
              await yieldTurn();
              sliceStart = Date.now();
            }
            const bytesRead = readSync(handle.fd, buffer, 0, Math.min(buffer.length, size - at), file.start + offset + at);
            if (bytesRead === 0) throw new KilnError('INVALID_INPUT', `${what}: entry ${JSON.stringify(entries.names[index])} is cut short (the layer is truncated)`);
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
  const entries = new LayerEntries();
  const fingerprints = new Map<number, string>();
  for await (const { header, body, offset } of readTar(tar)) {
    if (!addEntry(entries, header.path, header.type, header.linkname ?? '', header.size, header.mode, header.uid, header.gid, offset, what)) continue;
    const last = entries.length - 1;
    if (entries.kinds[last] === KIND.file && (entries.sizes[last] as number) > 0) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      fingerprints.set(last, digestOf(chunks));
    }
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
 * The entries of a layer tar lying uncompressed at [start, end) of the open file `fd`, headers only:
 * native/sys's tarscan reads the usual tars on the thread pool (unless `native` is false) and leaves the
 * others to the scan here, which knows every rule and error.
 */
export async function scanLayerFile(fd: number, start: number, end: number, what: string, native = true): Promise<LayerEntries> {
  // Out of memory for its columns (a layer of tens of GB), it leaves the layer to the scan here too.
  const scanned = native ? await sys()?.tarscan?.(fd, start, end).catch(() => undefined) : undefined;
  if (scanned) return LayerEntries.unpack(scanned);
  const entries = new LayerEntries();
  await scanTarHeaders(fd, start, end, (path, type, linkname, size, mode, uid, gid, offset) => {
    addEntry(entries, path, type, linkname, size, mode, uid, gid, offset, what);
  });
  return entries;
}

/**
 * Lists a layer of an image: from its local file when it lies there uncompressed (headers only, as
 * `tar -t` reads), else from its bytes decompressed as they stream (bodies hashed as they pass).
 */
export async function listLayer(layer: Layer, what: string): Promise<LayerListing> {
  return readLayer(
    layer,
    async (handle, file) => {
      const entries = await scanLayerFile(handle.fd, file.start, file.start + file.size, what);
      return listingOf(entries, new Map(), file, what);
    },
    (tar) => listTar(tar, what),
  );
}
