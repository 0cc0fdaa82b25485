import { isUtf8 } from 'node:buffer';
import { KilnError } from '../../errors.js';
import { BLOCK, FIELD, PAX_FIELD_KEYS, type TarEntryType, type TarHeader, XATTR_PREFIX, checksum, padding } from './header.js';

/** Largest PAX or GNU long-name body accepted: names and xattrs, not file contents. */
export const MAX_META_BYTES = 8 << 20;

const ZERO_BLOCK = Buffer.alloc(BLOCK);

const TYPES: Readonly<Record<string, TarEntryType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere but on a few old Unixes
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};


/** Entries that describe the next entry (or, for 'g', the archive) rather than being one. */
export const EXTENSIONS: Readonly<Record<string, string>> = { x: 'PAX header', g: 'PAX global header', L: 'GNU long name', K: 'GNU long link name' };

/** A source that can jump forward without reading (a file), so that skipped bodies cost no I/O. */
export interface SeekableSource {
  /** Moves `n` bytes ahead; returns how many bytes were really there. */
  skipAhead(n: number): Promise<number>;
}

export type TarSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | (AsyncIterator<Uint8Array> & SeekableSource);

/**
 * Pulls exact byte counts out of a chunked stream without copying bodies: `some` hands out slices of
 * the chunks as they came. It owns the source iterator and closes it in `close`.
 */
class ChunkReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far (the offset of the next byte). */
  offset = 0;

  constructor(private readonly source: (AsyncIterator<Uint8Array> | Iterator<Uint8Array>) & Partial<SeekableSource>) {}

  /** Drops `n` bytes, seeking past them when the source can; returns how many were really there. */
  async discard(n: number): Promise<number> {
    let left = n - this.dropBuffered(n);
    if (left > 0 && this.source.skipAhead && !this.ended) {
      const skipped = await this.source.skipAhead(left);
      this.offset += skipped;
      left -= skipped;
    }
    while (left > 0) {
      const part = await this.some(left);
      if (part.length === 0) break;
      left -= part.length;
    }
    return n - left;
  }

  private async fill(wanted: number): Promise<void> {
    while (this.buffered < wanted && !this.ended) {
      const next = await this.source.next();
      if (next.done) {
        this.ended = true;
        break;
      }
      const value = next.value;
      if (value.length === 0) continue;
      this.chunks.push(Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      this.buffered += value.length;
    }
  }

  /** Exactly `n` bytes (a view when they sit in one chunk), or fewer only at the end of the stream. */
  async exact(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.take(Math.min(n, this.buffered));
  }

  /**
   * `exact` without waiting, when the bytes are buffered already (undefined when they are not): most
   * headers are, and a tar of many small files is read at the pace of its headers.
   */
  exactBuffered(n: number): Buffer | undefined {
    return this.buffered >= n ? this.take(n) : undefined;
  }

  /** Drops `n` bytes without waiting, when they are buffered already; false (and nothing dropped) when they are not. */
  discardBuffered(n: number): boolean {
    if (this.buffered < n) return false;
    this.dropBuffered(n);
    return true;
  }

  /** Drops up to `n` of the buffered bytes; returns how many. */
  private dropBuffered(n: number): number {
    let left = n;
    while (left > 0 && this.buffered > 0) {
      const part = Math.min((this.chunks[0] as Buffer).length, left);
      this.consume(part);
      left -= part;
    }
    return n - left;
  }

  /** Whether bytes are buffered (then the stream is not at its end). */
  get hasBuffered(): boolean {
    return this.buffered > 0;
  }

  private take(take: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= take) {
      const out = first.subarray(0, take);
      this.consume(take);
      return out;
    }
    const out = Buffer.allocUnsafe(take);
    for (let at = 0; at < take; ) {
      const chunk = this.chunks[0] as Buffer;
      const part = Math.min(chunk.length, take - at);
      chunk.copy(out, at, 0, part);
      at += part;
      this.consume(part);
    }
    return out;
  }

  /** Between 1 and `max` bytes, or an empty buffer at the end of the stream. */
  async some(max: number): Promise<Buffer> {
    await this.fill(1);
    const first = this.chunks[0];
    if (!first) return Buffer.alloc(0);
    const take = Math.min(max, first.length);
    const out = first.subarray(0, take);
    this.consume(take);
    return out;
  }

  private consume(n: number): void {
    const first = this.chunks[0] as Buffer;
    if (n === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    this.offset += n;
  }

  async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.buffered === 0;
  }

  async close(): Promise<void> {
    await this.source.return?.();
  }
}

function iteratorOf(source: TarSource): (AsyncIterator<Uint8Array> | Iterator<Uint8Array>) & Partial<SeekableSource> {
  if ('skipAhead' in source) return source;
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

/** Names are UTF-8 when they decode as such; otherwise bytes from an old or non-UTF-8 system, kept as latin1. */
export function decodeName(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('latin1');
}

export function field(block: Buffer, [offset, length]: readonly [number, number]): Buffer {
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return nul === -1 ? raw : raw.subarray(0, nul);
}

const quote = (path: string): string => JSON.stringify(path);

/**
 * An octal field (space or NUL padded on either side), or GNU base-256 (high bit set, two's complement)
 * for values that do not fit. Only times may be negative. `where` names the header for errors.
 */
export function numeric(block: Buffer, [offset, length]: readonly [number, number], name: string, where: () => string): number {
  const end = offset + length;
  const first = block[offset] as number;
  if (first & 0x80) {
    let value = (first & 0x7f) - (first & 0x40 ? 0x80 : 0);
    for (let i = offset + 1; i < end; i++) value = value * 256 + (block[i] as number);
    if (!Number.isSafeInteger(value) || (value < 0 && name !== 'mtime')) {
      throw new KilnError('INVALID_INPUT', `tar: ${where()} has a ${name} out of range (the archive is corrupt)`);
    }
    return value;
  }
  const isPad = (byte: number | undefined): boolean => byte === 0x20 || byte === 0;
  let i = offset;
  while (i < end && isPad(block[i])) i++;
  let value = 0;
  for (; i < end; i++) {
    const byte = block[i] as number;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
  }
  while (i < end && isPad(block[i])) i++;
  if (i < end) {
    const text = block.toString('latin1', offset, end).replace(/^[ \0]+|[ \0]+$/g, '');
    throw new KilnError('INVALID_INPUT', `tar: ${where()} has an invalid ${name} field ${quote(text)} (the archive is corrupt)`);
  }
  return value;
}

/** Whether a header's stored checksum matches its bytes, summed unsigned or (as some old tars did) signed. */
function checksumMatches(block: Buffer): boolean {
  const stored = /^[ \0]*([0-7]{1,7})[ \0]*$/.exec(block.toString('latin1', FIELD.checksum[0], FIELD.checksum[0] + FIELD.checksum[1]))?.[1];
  if (stored === undefined) return false;
  const sums = checksum(block);
  return parseInt(stored, 8) === sums.unsigned || parseInt(stored, 8) === sums.signed;
}

/** Parses PAX records (`"<len> <key>=<value>\n"`); values stay bytes, as xattrs may be binary. */
export function parsePax(body: Buffer, into: Map<string, Buffer>, where: () => string): void {
  const malformed = (): KilnError => new KilnError('INVALID_INPUT', `tar: malformed PAX record in the extended header ${where()} (the archive is corrupt)`);
  for (let at = 0; at < body.length; ) {
    if (body[at] === 0) break; // NUL padding some writers leave
    const space = body.indexOf(0x20, at);
    const digits = body.toString('latin1', at, space);
    const length = Number(digits);
    if (space === -1 || !/^[0-9]+$/.test(digits) || length <= space - at + 1 || at + length > body.length || body[at + length - 1] !== 0x0a) throw malformed();
    const record = body.subarray(space + 1, at + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw malformed();
    into.set(record.toString('utf8', 0, eq), record.subarray(eq + 1));
    at += length;
  }
}

/** What the extension entries ('x' PAX, GNU 'L' and 'K') before a real entry said about it. */
export interface Extensions {
  readonly pax: Map<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/** Builds the header of a real entry from its ustar block and the extensions that preceded it. */
export function decodeHeader(block: Buffer, ext: Extensions): TarHeader {
  const flag = String.fromCharCode(block[156] as number);
  const magic = block.toString('latin1', 257, 263);
  // POSIX ustar splits long names into prefix/name; old GNU keeps times in that space instead, and v7
  // has neither the prefix nor the owner names.
  const posix = magic === 'ustar\0';
  const hasOwnerNames = posix || magic === 'ustar ';
  const paxValue = (key: string): Buffer | undefined => {
    const value = ext.pax.get(key);
    return value && value.length > 0 ? value : undefined; // an empty record means "use the header field"
  };
  const paxName = (key: string): string | undefined => {
    const value = paxValue(key);
    return value && decodeName(value);
  };
  const name = decodeName(field(block, FIELD.name));
  const prefix = posix ? decodeName(field(block, FIELD.prefix)) : '';
  const path = paxName('path') ?? ext.longName ?? (prefix ? `${prefix}/${name}` : name);
  const where = (): string => `entry ${quote(path)}`;

  const sparse = flag === 'S' || [...ext.pax.keys()].some((key) => key.startsWith('GNU.sparse.'));
  if (sparse) throw new KilnError('INVALID_INPUT', `tar: ${where()} is a sparse file, which kiln does not support (re-create the archive without --sparse)`);
  // An old-style regular file whose name ends in a slash is a directory (as Go and Python read it).
  const type = flag === '\0' && path.endsWith('/') ? 'directory' : TYPES[flag];
  if (!type) throw new KilnError('INVALID_INPUT', `tar: ${where()} has the unsupported type ${quote(flag)}`);

  const paxNumber = (key: string, fallback: number, pattern: RegExp): number => {
    const value = paxValue(key)?.toString('latin1');
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!pattern.test(value) || !Number.isSafeInteger(Math.trunc(n))) throw new KilnError('INVALID_INPUT', `tar: ${where()} has an invalid PAX ${key} ${quote(value)}`);
    return n;
  };
  const integer = /^[0-9]+$/;
  const xattrs = new Map<string, Buffer>();
  const others: [string, string][] = [];
  for (const [key, value] of ext.pax) {
    if (key.startsWith(XATTR_PREFIX)) xattrs.set(key.slice(XATTR_PREFIX.length), value);
    else if (!PAX_FIELD_KEYS.has(key)) others.push([key, value.toString('utf8')]);
  }
  const linkname = paxName('linkpath') ?? ext.longLink ?? decodeName(field(block, FIELD.linkname));
  const uname = paxName('uname') ?? (hasOwnerNames ? decodeName(field(block, FIELD.uname)) : '');
  const gname = paxName('gname') ?? (hasOwnerNames ? decodeName(field(block, FIELD.gname)) : '');
  const device = type === 'char' || type === 'block';
  // Every header has the same keys in the same order (absent ones undefined): one object shape, so that
  // the code reading headers stays monomorphic.
  return {
    path,
    type,
    mode: numeric(block, FIELD.mode, 'mode', where) & 0o7777,
    uid: paxNumber('uid', numeric(block, FIELD.uid, 'uid', where), integer),
    gid: paxNumber('gid', numeric(block, FIELD.gid, 'gid', where), integer),
    uname: uname || undefined,
    gname: gname || undefined,
    // Only regular files carry data; other types' size fields are ignored, as Go and Python do.
    size: type === 'file' ? paxNumber('size', numeric(block, FIELD.size, 'size', where), integer) : 0,
    mtime: paxNumber('mtime', numeric(block, FIELD.mtime, 'mtime', where), /^-?[0-9]+(\.[0-9]+)?$/),
    linkname: type === 'symlink' || type === 'hardlink' ? linkname : undefined,
    devmajor: device ? (hasOwnerNames ? numeric(block, FIELD.devmajor, 'devmajor', where) : 0) : undefined,
    devminor: device ? (hasOwnerNames ? numeric(block, FIELD.devminor, 'devminor', where) : 0) : undefined,
    xattrs: xattrs.size > 0 ? xattrs : undefined,
    // fromEntries defines keys as data, so that a record named "__proto__" is kept like any other.
    pax: others.length > 0 ? Object.fromEntries(others) : undefined,
  };
}

/** The error for an archive that ends `where` (in a header, a body, an extension). */
export function truncatedError(where: string): KilnError {
  return new KilnError('INVALID_INPUT', `tar: unexpected end of data ${where} (the archive is truncated; fetch or export it again)`);
}

export interface TarEntry {
  readonly header: TarHeader;
  /**
   * The entry's content (regular files only; empty for other types). Read it before asking for the next
   * entry: whatever is left unread then is skipped, and reading it later is a bug that throws.
   */
  readonly body: AsyncIterable<Buffer>;
  /** Where the body starts in the stream (for indexing an archive file). */
  readonly offset: number;
}

/**
 * Reads a tar stream entry by entry: ustar, PAX (local records applied, global ones ignored), GNU long
 * names and base-256 numbers, old GNU and v7 headers. A stream that ends cleanly at a block boundary
 * without the end-of-archive blocks is accepted, as Docker and Go accept it; one that ends inside a
 * header or body is an error naming the entry. The source is pulled only as fast as the consumer reads,
 * and closed when the archive ends or the consumer stops early.
 */
export async function* readTar(source: TarSource): AsyncGenerator<TarEntry> {
  const reader = new ChunkReader(iteratorOf(source));
  let ext: Extensions = { pax: new Map() };
  let pending = 0; // unread body bytes (plus padding) of the current entry
  let entries = 0;
  let live = 0; // the entry whose body may be read now; 0 once the reader has moved past it
  let last: string | undefined;
  const after = (): string => (last === undefined ? 'at the start of the archive' : `after entry ${quote(last)}`);

  const readMeta = async (size: number, what: string): Promise<Buffer> => {
    if (size > MAX_META_BYTES) throw new KilnError('INVALID_INPUT', `tar: ${what} of ${size} bytes ${after()} is too large (the archive is corrupt or hostile)`);
    const body = await reader.exact(size);
    if (body.length < size || (await reader.discard(padding(size))) < padding(size)) throw truncatedError(`in a ${what} ${after()}`);
    return Buffer.from(body); // a copy: the view would pin the whole source chunk
  };

  try {
    while (true) {
      live = 0;
      if (pending > 0) {
        if (!reader.discardBuffered(pending) && (await reader.discard(pending)) < pending) throw truncatedError(`in entry ${quote(last ?? '')}`);
        pending = 0;
      }
      if (!reader.hasBuffered && (await reader.atEnd())) return;
      const block = reader.exactBuffered(BLOCK) ?? (await reader.exact(BLOCK));
      if (block.length < BLOCK) throw truncatedError(`in the header ${after()}`);
      if (block.equals(ZERO_BLOCK)) return; // end-of-archive marker; what follows is padding
      if (!checksumMatches(block)) {
        throw new KilnError('INVALID_INPUT', `tar: bad header checksum ${after()} (not a tar file, or corrupt)`);
      }
      const flag = String.fromCharCode(block[156] as number);
      const extension = EXTENSIONS[flag];
      if (extension !== undefined) {
        const size = numeric(block, FIELD.size, 'size', () => `the extended header ${after()}`);
        const body = await readMeta(size, extension);
        if (flag === 'x') parsePax(body, ext.pax, after);
        else if (flag === 'L') ext.longName = decodeName(field(body, [0, body.length]));
        else if (flag === 'K') ext.longLink = decodeName(field(body, [0, body.length]));
        continue; // global PAX headers ('g') describe the archive, not its entries
      }
      const header = decodeHeader(block, ext);
      ext = { pax: new Map() };
      last = header.path;
      const entry = (live = ++entries);
      let unread = header.size;
      pending = unread + padding(unread);
      const read = async function* (): AsyncGenerator<Buffer> {
        while (unread > 0) {
          if (entry !== live) {
            throw new KilnError('INTERNAL', `tar: the body of entry ${quote(header.path)} was read after the reader moved past it`);
          }
          const part = await reader.some(unread);
          if (part.length === 0) throw truncatedError(`in entry ${quote(header.path)}`);
          unread -= part.length;
          pending -= part.length;
          yield part;
        }
      };
      // The body's generator is made only for a consumer that reads it: most skip it.
      yield { header, body: { [Symbol.asyncIterator]: read }, offset: reader.offset };
    }
  } finally {
    live = 0;
    await reader.close();
  }
}
