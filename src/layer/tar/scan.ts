/**
 * A headers-only pass over a tar that lies uncompressed in a file: what `tar -t` does, at its pace. It
 * reads with readSync into one buffer (a few microseconds a read, where a read through the thread pool
 * costs tens), jumps over bodies (a skip of more than a buffer is a seek, so big files cost no I/O), and
 * decodes the plain ustar and GNU headers that nearly every layer holds in place, field by field, with no
 * object, Buffer or closure per entry. Whatever else comes (PAX records, GNU long names, base-256
 * numbers, devices, unknown types) goes through the full reader's decoder, with its checks and errors.
 */
import { readSync } from 'node:fs';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { KilnError } from '../../errors.js';
import { BLOCK, FIELD, type TarEntryType, padding } from './header.js';
import { EXTENSIONS, type Extensions, MAX_META_BYTES, decodeHeader, decodeName, field, numeric, parsePax, truncatedError } from './reader.js';

/** How long the scan may hold the event loop before letting it turn. */
const SYNC_SLICE_MS = 20;
/** A read after a skip of more than this is small (the next header is all it needs); reads that follow on are large. */
const SMALL_READ = 16 << 10;
const LARGE_READ = 256 << 10;

/**
 * Called once per entry, in tar order, with the header's fields: `size` is a regular file's size (0 for
 * every other type), `linkname` is '' unless the entry is a link, `offset` is where its body starts in
 * the file (relative to the tar's start).
 */
export type HeaderVisitor = (path: string, type: TarEntryType, linkname: string, size: number, mode: number, uid: number, gid: number, offset: number) => void;

/** Typeflags the fast path decodes; '7' (contiguous) is a regular file everywhere that matters. */
const FAST_TYPES: readonly (TarEntryType | undefined)[] = (() => {
  const types: (TarEntryType | undefined)[] = new Array<TarEntryType | undefined>(256).fill(undefined);
  types[0x30] = 'file';
  types[0] = 'file';
  types[0x37] = 'file';
  types[0x31] = 'hardlink';
  types[0x32] = 'symlink';
  types[0x35] = 'directory';
  types[0x36] = 'fifo';
  return types;
})();

/** An octal field padded with spaces or NULs on either side; -1 when it is anything else (base-256, garbage). */
function octal(block: Buffer, at: number, length: number): number {
  const end = at + length;
  let i = at;
  let byte = 0;
  while (i < end && ((byte = block[i] as number) === 0x20 || byte === 0)) i++;
  let value = 0;
  for (; i < end; i++) {
    byte = block[i] as number;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
  }
  for (; i < end; i++) {
    byte = block[i] as number;
    if (byte !== 0x20 && byte !== 0) return -1;
  }
  return value;
}

/** A NUL-terminated name field: latin1 when ASCII (most names: no decoding), else as the full reader decodes it. */
function nameField(block: Buffer, at: number, length: number): string {
  let end = at;
  const limit = at + length;
  let ascii = true;
  for (let byte = 0; end < limit && (byte = block[end] as number) !== 0; end++) if (byte >= 0x80) ascii = false;
  if (end === at) return '';
  return ascii ? block.toString('latin1', at, end) : decodeName(block.subarray(at, end));
}

/**
 * Whether the header's checksum matches, summed unsigned or (as some old tars did) signed. The unsigned
 * sum, which nearly every header matches, is taken four bytes at a time from `words` (the buffer as
 * 32-bit words, when it is aligned so): a run of a few seconds is over before a per-byte loop is compiled.
 */
function checksumOk(block: Buffer, words: Uint32Array | undefined, at: number): boolean {
  const stored = octal(block, at + FIELD.checksum[0], FIELD.checksum[1]);
  if (stored < 0) return false;
  let unsigned = 8 * 0x20;
  if (words) {
    // Two 16-bit lanes of byte pairs: 128 words add at most 128 × 2 × 255 to a lane, which cannot overflow
    // it. Four words a turn, and the checksum field (bytes 148-155, words 37 and 38, counted as spaces)
    // taken out after, with no test in the loop: twice as fast as a word a turn while the scan is young.
    const first = at >>> 2;
    const last = first + 128;
    let lanes = 0;
    for (let w = first; w < last; w += 4) {
      const a = words[w] as number;
      const b = words[w + 1] as number;
      const c = words[w + 2] as number;
      const d = words[w + 3] as number;
      lanes += (a & 0x00ff00ff) + ((a >>> 8) & 0x00ff00ff) + (b & 0x00ff00ff) + ((b >>> 8) & 0x00ff00ff) + (c & 0x00ff00ff) + ((c >>> 8) & 0x00ff00ff) + (d & 0x00ff00ff) + ((d >>> 8) & 0x00ff00ff);
    }
    const x = words[first + 37] as number;
    const y = words[first + 38] as number;
    lanes -= (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff) + (y & 0x00ff00ff) + ((y >>> 8) & 0x00ff00ff);
    unsigned += (lanes & 0xffff) + (lanes >>> 16);
  } else {
    for (let i = at; i < at + 148; i++) unsigned += block[i] as number;
    for (let i = at + 156; i < at + BLOCK; i++) unsigned += block[i] as number;
  }
  if (stored === unsigned) return true;
  let signed = 8 * 0x20;
  for (let i = at; i < at + BLOCK; i++) {
    if (i >= at + 148 && i < at + 156) continue;
    const byte = block[i] as number;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === signed;
}

/** Whether the magic field at `at` is POSIX's `ustar\0` (old GNU writes `ustar `, v7 nothing). */
function isPosixMagic(block: Buffer, at: number): boolean {
  return block[at] === 0x75 && block[at + 1] === 0x73 && block[at + 2] === 0x74 && block[at + 3] === 0x61 && block[at + 4] === 0x72 && block[at + 5] === 0;
}

function isZeroBlock(block: Buffer, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * Visits every entry's header of the tar at [start, end) of the file `fd`, as the full reader would read
 * them (the same entries, fields and errors), without reading bodies.
 */
export async function scanTarHeaders(fd: number, start: number, end: number, visit: HeaderVisitor): Promise<void> {
  let buffer = Buffer.allocUnsafe(LARGE_READ);
  const wordsOf = (of: Buffer): Uint32Array | undefined => (of.byteOffset % 4 === 0 ? new Uint32Array(of.buffer, of.byteOffset, of.length >>> 2) : undefined);
  let words = wordsOf(buffer);
  /** The file range the buffer holds: [bufferStart, bufferEnd). */
  let bufferStart = 0;
  let bufferEnd = 0;
  let sliceStart = Date.now();
  /** Reads `length` bytes at `position` (relative to the tar) into the buffer; they start there at 0. */
  const refill = async (position: number, length: number): Promise<number> => {
    if (Date.now() - sliceStart > SYNC_SLICE_MS) {
      await yieldTurn();
      sliceStart = Date.now();
    }
    const wanted = Math.min(Math.max(length, position - bufferEnd > LARGE_READ ? SMALL_READ : LARGE_READ), end - start - position);
    if (wanted > buffer.length) {
      buffer = Buffer.allocUnsafe(wanted);
      words = wordsOf(buffer);
    }
    let got = 0;
    while (got < wanted) {
      const n = readSync(fd, buffer, got, wanted - got, start + position + got);
      if (n === 0) break;
      got += n;
    }
    bufferStart = position;
    bufferEnd = position + got;
    return 0;
  };

  /** Where `length` bytes at `position` start in the buffer (most headers are there already: no promise to wait for). */
  const ensure = (position: number, length: number): number | Promise<number> => (position >= bufferStart && position + length <= bufferEnd ? position - bufferStart : refill(position, length));
  const size = end - start;
  let position = 0;
  let ext: Extensions = { pax: new Map() };
  let hasExt = false;
  let last: string | undefined;
  const after = (): string => (last === undefined ? 'at the start of the archive' : `after entry ${JSON.stringify(last)}`);
  while (position < size) {
    if (position + BLOCK > size) throw truncatedError(`in the header ${after()}`);
    const inBuffer = ensure(position, BLOCK);
    const at = typeof inBuffer === 'number' ? inBuffer : await inBuffer;
    const block = buffer;
    if (block[at] === 0 && isZeroBlock(block, at)) return; // end-of-archive marker; what follows is padding
    if (!checksumOk(block, words, at)) throw new KilnError('INVALID_INPUT', `tar: bad header checksum ${after()} (not a tar file, or corrupt)`);
    const flag = block[at + 156] as number;
    const extension = EXTENSIONS[String.fromCharCode(flag)];
    if (extension !== undefined) {
      const header = block.subarray(at, at + BLOCK);
      const metaSize = numeric(header, FIELD.size, 'size', () => `the extended header ${after()}`);
      if (metaSize > MAX_META_BYTES) throw new KilnError('INVALID_INPUT', `tar: ${extension} of ${metaSize} bytes ${after()} is too large (the archive is corrupt or hostile)`);
      const next = position + BLOCK + metaSize + padding(metaSize);
      if (next > size) throw truncatedError(`in a ${extension} ${after()}`);
      const bodyAt = await ensure(position + BLOCK, metaSize);
      const body = Buffer.from(buffer.subarray(bodyAt, bodyAt + metaSize));
      if (flag === 0x78) parsePax(body, ext.pax, after);
      else if (flag === 0x4c) ext.longName = decodeName(field(body, [0, body.length]));
      else if (flag === 0x4b) ext.longLink = decodeName(field(body, [0, body.length]));
      hasExt = flag !== 0x67 || hasExt; // global PAX headers ('g') describe the archive, not its entries
      position = next;
      continue;
    }
    let type = FAST_TYPES[flag];
    // POSIX ustar splits long names into prefix/name; old GNU keeps other fields where the prefix is.
    const posix = isPosixMagic(block, at + 257);
    const mode = octal(block, at + FIELD.mode[0], FIELD.mode[1]);
    const uid = octal(block, at + FIELD.uid[0], FIELD.uid[1]);
    const gid = octal(block, at + FIELD.gid[0], FIELD.gid[1]);
    let fileSize = octal(block, at + FIELD.size[0], FIELD.size[1]);
    const mtime = octal(block, at + FIELD.mtime[0], FIELD.mtime[1]);
    let path: string;
    let linkname = '';
    let entryMode = mode & 0o7777;
    let entryUid = uid;
    let entryGid = gid;
    if (!hasExt && type !== undefined && mode >= 0 && uid >= 0 && gid >= 0 && fileSize >= 0 && mtime >= 0) {
      const name = nameField(block, at + FIELD.name[0], FIELD.name[1]);
      const prefix = posix ? nameField(block, at + FIELD.prefix[0], FIELD.prefix[1]) : '';
      path = prefix ? `${prefix}/${name}` : name;
      // An old-style regular file whose name ends in a slash is a directory (as Go and Python read it).
      if (flag === 0 && path.endsWith('/')) type = 'directory';
      if (type === 'symlink' || type === 'hardlink') linkname = nameField(block, at + FIELD.linkname[0], FIELD.linkname[1]);
      if (type !== 'file') fileSize = 0;
    } else {
      const header = decodeHeader(block.subarray(at, at + BLOCK), ext);
      ext = { pax: new Map() };
      hasExt = false;
      ({ path, type } = header);
      linkname = header.linkname ?? '';
      fileSize = header.size;
      entryMode = header.mode;
      entryUid = header.uid;
      entryGid = header.gid;
    }
    last = path;
    const bodyStart = position + BLOCK;
    position = bodyStart + fileSize + padding(fileSize);
    if (position > size) throw truncatedError(`in entry ${JSON.stringify(path)}`);
    visit(path, type, linkname, fileSize, entryMode, entryUid, entryGid, bodyStart);
  }
}
