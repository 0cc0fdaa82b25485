/**
 * The analysis as JSON text, in pieces: dive's export, field for field, with every layer's file list
 * written straight from the layer's listing into bytes. A big image lists hundreds of thousands of
 * entries; as objects, then strings, then buffers, they cost more than reading the layers did, so the
 * file lists (and kiln's list of wasted paths, as long) are written as JSON.stringify(…, null, 2) would
 * write them, byte for byte, into buffers of about 256 KiB with no object or string per entry.
 */
import type { ImageAnalysis } from './analysis.js';
import type { LayerEntry } from './layers/walk.js';
import type { WastedPath } from './waste.js';

/** The tar typeflag dive lists for each kind of entry (a whiteout or an opaque marker is a regular file). */
const TYPE_FLAGS: Readonly<Record<string, number>> = { file: 0x30, hardlink: 0x31, symlink: 0x32, char: 0x33, block: 0x34, directory: 0x35, fifo: 0x36, whiteout: 0x30, opaque: 0x30 };
const GO_TYPE_BITS: Readonly<Record<string, number>> = { directory: 1 << 31, symlink: 1 << 27, block: 1 << 26, char: (1 << 26) | (1 << 21), fifo: 1 << 25 };

/** Go's os.FileMode of a tar entry, as archive/tar's FileInfo().Mode() gives it. */
function goFileMode(entry: LayerEntry): number {
  let mode = entry.mode & 0o777;
  if (entry.mode & 0o4000) mode |= 1 << 23;
  if (entry.mode & 0o2000) mode |= 1 << 22;
  if (entry.mode & 0o1000) mode |= 1 << 20;
  return (mode | (GO_TYPE_BITS[entry.kind] ?? 0)) >>> 0;
}

const PIECE = 256 << 10;

/**
 * JSON text written into buffers of about PIECE bytes: the full ones are taken as they fill. Fixed text
 * is copied from bytes encoded once, strings and integers are written by hand where JSON.stringify would
 * write them as they are (printable ASCII, safe integers), else through JSON.stringify.
 */
class JsonBytes {
  private buffer = Buffer.allocUnsafe(PIECE);
  private at = 0;
  private readonly full: Buffer[] = [];

  /** Room for `bytes` more; a full buffer is put aside for take(). */
  reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    if (this.at > 0) this.full.push(this.buffer.subarray(0, this.at));
    this.buffer = Buffer.allocUnsafe(Math.max(PIECE, bytes));
    this.at = 0;
  }

  /** The buffers filled so far, the current one included when `all`. */
  take(all: boolean): Buffer[] {
    if (all && this.at > 0) {
      this.full.push(this.buffer.subarray(0, this.at));
      this.buffer = this.buffer.subarray(this.at);
      this.at = 0;
    }
    return this.full.splice(0);
  }

  /** Fixed text (reserved for by the caller). */
  bytes(text: Uint8Array): void {
    const { buffer } = this;
    let at = this.at;
    for (let i = 0; i < text.length; i++) buffer[at++] = text[i] as number;
    this.at = at;
  }

  /** JSON.stringify(value): reserves room for it. */
  string(value: string): void {
    this.reserve(value.length * 6 + 2);
    const { buffer } = this;
    let at = this.at;
    buffer[at++] = 0x22;
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      // Anything JSON escapes, and anything beyond ASCII (UTF-8, lone surrogates), is JSON.stringify's.
      if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) {
        this.at += this.buffer.write(JSON.stringify(value), this.at, 'utf8');
        return;
      }
      buffer[at++] = code;
    }
    buffer[at++] = 0x22;
    this.at = at;
  }

  /** JSON.stringify(value) of a number (reserved for by the caller, up to 24 bytes). */
  number(value: number): void {
    if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Math.floor(value) === value)) {
      this.at += this.buffer.write(JSON.stringify(value), this.at, 'latin1');
      return;
    }
    const { buffer } = this;
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let at = this.at + digits;
    this.at = at;
    let rest = value;
    do {
      buffer[--at] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (rest > 0);
  }
}

const ascii = (text: string): Uint8Array => Buffer.from(text, 'latin1');
/** A file list's entries (DiveFileInfo's fields, in order) at the depth of `layer[].fileList[]` in the document. */
const ENTRY = {
  path: ascii('        {\n          "path": '),
  typeFlag: ascii(',\n          "typeFlag": '),
  linkName: ascii(',\n          "linkName": '),
  size: ascii(',\n          "size": '),
  fileMode: ascii(',\n          "fileMode": '),
  uid: ascii(',\n          "uid": '),
  gid: ascii(',\n          "gid": '),
  isDir: ascii(',\n          "isDir": '),
  true: ascii('true\n        }'),
  false: ascii('false\n        }'),
  next: ascii(',\n'),
  last: ascii('\n      ]'),
};
/** Room for an entry's fixed text and numbers. */
const ENTRY_ROOM = 400;

/** The file list's text, as JSON.stringify(…, null, 2) writes it at its depth, in pieces. */
function* fileListJson(entries: readonly LayerEntry[]): Generator<Buffer | string> {
  if (entries.length === 0) {
    yield '"fileList": []';
    return;
  }
  yield '"fileList": [\n';
  const out = new JsonBytes();
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as LayerEntry;
    out.reserve(ENTRY_ROOM);
    out.bytes(ENTRY.path);
    out.string(entry.name);
    out.reserve(ENTRY_ROOM);
    out.bytes(ENTRY.typeFlag);
    out.number(TYPE_FLAGS[entry.kind] ?? 0x30);
    out.bytes(ENTRY.linkName);
    out.string(entry.link ?? '');
    out.reserve(ENTRY_ROOM);
    out.bytes(ENTRY.size);
    out.number(entry.size);
    out.bytes(ENTRY.fileMode);
    out.number(goFileMode(entry));
    out.bytes(ENTRY.uid);
    out.number(entry.uid);
    out.bytes(ENTRY.gid);
    out.number(entry.gid);
    out.bytes(ENTRY.isDir);
    out.bytes(entry.kind === 'directory' ? ENTRY.true : ENTRY.false);
    out.bytes(i === entries.length - 1 ? ENTRY.last : ENTRY.next);
    for (const piece of out.take(false)) yield piece;
  }
  yield* out.take(true);
}

/** kiln's wasted paths at the depth of `kiln.wasted[]` in the document. */
const WASTED = {
  path: ascii('      {\n        "path": '),
  bytes: ascii(',\n        "bytes": '),
  layer: ascii(',\n        "layer": '),
  endedBy: ascii(',\n        "endedBy": '),
  how: ascii(',\n        "how": '),
  end: ascii('\n      }'),
  next: ascii(',\n'),
  last: ascii('\n    ]'),
};

/** kiln.wasted's text (after its key), as JSON.stringify(…, null, 2) writes it at its depth, in pieces. */
function* wastedJson(wasted: readonly WastedPath[]): Generator<Buffer | string> {
  if (wasted.length === 0) {
    yield '[]';
    return;
  }
  yield '[\n';
  const out = new JsonBytes();
  for (let i = 0; i < wasted.length; i++) {
    const w = wasted[i] as WastedPath;
    out.reserve(ENTRY_ROOM);
    out.bytes(WASTED.path);
    out.string(w.path);
    out.reserve(ENTRY_ROOM);
    out.bytes(WASTED.bytes);
    out.number(w.bytes);
    out.bytes(WASTED.layer);
    out.number(w.layer);
    out.bytes(WASTED.endedBy);
    out.number(w.endedBy);
    out.bytes(WASTED.how);
    out.string(w.how);
    out.reserve(ENTRY_ROOM);
    out.bytes(WASTED.end);
    out.bytes(i === wasted.length - 1 ? WASTED.last : WASTED.next);
    for (const piece of out.take(false)) yield piece;
  }
  yield* out.take(true);
}

/** Where a long list goes in the rest of the document: a string no value can hold unescaped (its quotes are JSON's). */
const slotText = (name: string): string => `\u0000kiln-${name}`;
const slot = (name: string): string => JSON.stringify(slotText(name));

/**
 * The document `JSON.stringify({ layer, image, kiln }, null, 2)` of the analysis with its file lists
 * (`document` may add fields to the analysis, such as kiln.ci), and a newline, in pieces.
 */
export function* analysisJson<D extends ImageAnalysis>(document: D, fileLists: readonly (readonly LayerEntry[])[]): Generator<string | Buffer> {
  const text = JSON.stringify(
    {
      ...document,
      layer: document.layer.map((layer) => ({ ...layer, fileList: slotText(`file-list-${layer.index}`) })),
      kiln: { ...document.kiln, wasted: slotText('wasted') },
    },
    null,
    2,
  );
  // The slots in the order the document has them: the layers' file lists, then kiln's wasted paths.
  const lists: [string, () => Iterable<string | Buffer>][] = document.layer.map((layer) => [`"fileList": ${slot(`file-list-${layer.index}`)}`, () => fileListJson(fileLists[layer.index] ?? [])]);
  lists.push([slot('wasted'), () => wastedJson(document.kiln.wasted)]);
  let at = 0;
  for (const [marker, write] of lists) {
    const found = text.indexOf(marker, at);
    yield text.slice(at, found);
    yield* write();
    at = found + marker.length;
  }
  yield `${text.slice(at)}\n`;
}
