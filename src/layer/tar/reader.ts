import { KilnError } from '../../errors.js';
import { BLOCK, FIELD, type TarEntryType, type TarHeader, checksum, padding } from './header.js';

/** Largest PAX or GNU long-name body accepted: names and xattrs, not file contents. */
const MAX_META_BYTES = 8 << 20;

const TYPES: Readonly<Record<string, TarEntryType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Pulls exact byte counts out of a chunked stream without copying bodies: `some` hands out slices of
 * the chunks as they came.
 */
class ChunkReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far (the offset of the next byte). */
  offset = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array> & Partial<SeekableSource>) {}

  /** Drops `n` bytes, seeking past them when the source can; returns how many were really there. */
  async discard(n: number): Promise<number> {
    let left = n;
    while (left > 0 && this.buffered > 0) {
      const first = this.chunks[0] as Buffer;
      const part = Math.min(first.length, left);
      this.consume(part);
      left -= part;
    }
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

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async exact(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const first = this.chunks[0];
    let out: Buffer;
    if (first && first.length >= take) {
      out = first.subarray(0, take);
      this.consume(take);
    } else {
      out = Buffer.allocUnsafe(take);
      let at = 0;
      while (at < take) {
        const chunk = this.chunks[0] as Buffer;
        const part = Math.min(chunk.length, take - at);
        chunk.copy(out, at, 0, part);
        at += part;
        this.consume(part);
      }
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
}

function field(block: Buffer, [offset, length]: readonly [number, number]): Buffer {
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return nul === -1 ? raw : raw.subarray(0, nul);
}

function text(block: Buffer, f: readonly [number, number]): string {
  return field(block, f).toString('utf8');
}

/** An octal field (NUL/space terminated) or GNU base-256 for values that do not fit. */
function numeric(block: Buffer, [offset, length]: readonly [number, number], name: string, path: string): number {
  const raw = block.subarray(offset, offset + length);
  if ((raw[0] as number) & 0x80) {
    if (raw[0] === 0xff) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(path)} has a negative ${name}`);
    let value = (raw[0] as number) & 0x7f;
    for (let i = 1; i < raw.length; i++) value = value * 256 + (raw[i] as number);
    if (!Number.isSafeInteger(value)) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(path)} has a ${name} too large to handle`);
    return value;
  }
  const digits = raw.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '');
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(path)} has an invalid ${name} field ${JSON.stringify(digits)}`);
  return parseInt(digits, 8);
}

/** Parses PAX records; values stay bytes (xattrs may be binary). */
function parsePax(body: Buffer, path: string): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  while (at < body.length) {
    if (body[at] === 0) break; // NUL padding some writers leave
    const space = body.indexOf(0x20, at);
    const length = Number(body.toString('latin1', at, space));
    if (space === -1 || !Number.isInteger(length) || length <= space - at + 1 || at + length > body.length || body[at + length - 1] !== 0x0a) {
      throw new KilnError('INVALID_INPUT', `tar: malformed PAX header before entry ${JSON.stringify(path)}`);
    }
    const record = body.subarray(space + 1, at + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new KilnError('INVALID_INPUT', `tar: malformed PAX record before entry ${JSON.stringify(path)}`);
    records.set(record.toString('utf8', 0, eq), record.subarray(eq + 1));
    at += length;
  }
  return records;
}

/** A source that can jump forward without reading (a file), so that skipped bodies cost no I/O. */
export interface SeekableSource {
  /** Moves `n` bytes ahead; returns how many bytes were really there. */
  skipAhead(n: number): Promise<number>;
}

export interface TarEntry {
  readonly header: TarHeader;
  /** The entry's content; skipped automatically if the consumer moves on without reading it. */
  readonly body: AsyncIterable<Buffer>;
  /** Where the body starts in the stream (for indexing an archive file). */
  readonly offset: number;
}

/**
 * Reads a tar stream entry by entry: ustar, PAX (local and global), GNU long names and base-256
 * numbers. A stream that ends cleanly without the end-of-archive blocks is accepted, as Docker and Go
 * accept it; a stream that ends inside a header or body is an error naming the entry.
 */
export async function* readTar(source: AsyncIterable<Uint8Array> | (AsyncIterator<Uint8Array> & SeekableSource)): AsyncGenerator<TarEntry> {
  const reader = new ChunkReader(Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source);
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let pending = 0; // unread body bytes (plus padding) of the previous entry
  let lastPath = '(start of archive)';

  const truncated = (): KilnError => new KilnError('INVALID_INPUT', `tar: unexpected end of data at entry ${JSON.stringify(lastPath)} (the archive is truncated)`);

  const skip = async (n: number): Promise<void> => {
    if ((await reader.discard(n)) < n) throw truncated();
  };

  const readMeta = async (size: number, what: string): Promise<Buffer> => {
    if (size > MAX_META_BYTES) throw new KilnError('INVALID_INPUT', `tar: ${what} of ${size} bytes after entry ${JSON.stringify(lastPath)} is too large`);
    const body = await reader.exact(size);
    if (body.length < size) throw truncated();
    await skip(padding(size));
    return Buffer.from(body);
  };

  while (true) {
    if (pending > 0) {
      await skip(pending);
      pending = 0;
    }
    if (await reader.atEnd()) return;
    const block = await reader.exact(BLOCK);
    if (block.length < BLOCK) throw truncated();
    if (block.every((b) => b === 0)) return; // end-of-archive marker; what follows is padding
    const sums = checksum(block);
    const stored = numeric(block, FIELD.checksum, 'checksum', lastPath);
    if (stored !== sums.unsigned && stored !== sums.signed) {
      throw new KilnError('INVALID_INPUT', `tar: bad header checksum after entry ${JSON.stringify(lastPath)} (not a tar file, or corrupt)`);
    }
    const flag = String.fromCharCode(block[156] as number);
    const magic = block.toString('latin1', 257, 263);
    const ustar = magic === 'ustar\0';
    const name = text(block, FIELD.name);
    const prefix = ustar ? text(block, FIELD.prefix) : '';
    const path = longName ?? (prefix ? `${prefix}/${name}` : name);
    const size = numeric(block, FIELD.size, 'size', path);
    switch (flag) {
      case 'x':
        for (const [k, v] of parsePax(await readMeta(size, 'PAX header'), path)) pax.set(k, v);
        continue;
      case 'g':
        await readMeta(size, 'PAX global header');
        continue;
      case 'L':
        longName = (await readMeta(size, 'GNU long name')).toString('utf8').replace(/\0+$/, '');
        continue;
      case 'K':
        longLink = (await readMeta(size, 'GNU long link name')).toString('utf8').replace(/\0+$/, '');
        continue;
    }
    const type = TYPES[flag];
    const paxText = (key: string): string | undefined => pax.get(key)?.toString('utf8');
    const finalPath = paxText('path') ?? path;
    if (!type) {
      const what = flag === 'S' || pax.has('GNU.sparse.major') || pax.has('GNU.sparse.size') ? 'a sparse file, which kiln does not support' : `of unknown type ${JSON.stringify(flag)}`;
      throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(finalPath)} is ${what}`);
    }
    const paxNumber = (key: string, fallback: number): number => {
      const value = paxText(key);
      if (value === undefined) return fallback;
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(finalPath)} has an invalid PAX ${key} ${JSON.stringify(value)}`);
      return n;
    };
    const xattrs = new Map<string, Buffer>();
    const others: Record<string, string> = {};
    for (const [key, value] of pax) {
      if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
      else if (!['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime'].includes(key)) others[key] = value.toString('utf8');
    }
    const entrySize = type === 'file' ? paxNumber('size', size) : 0;
    if (!Number.isSafeInteger(entrySize)) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(finalPath)} has an invalid size`);
    const linkname = paxText('linkpath') ?? longLink ?? text(block, FIELD.linkname);
    const uname = paxText('uname') ?? text(block, FIELD.uname);
    const gname = paxText('gname') ?? text(block, FIELD.gname);
    const header: TarHeader = {
      path: finalPath,
      type,
      mode: numeric(block, FIELD.mode, 'mode', finalPath) & 0o7777,
      uid: paxNumber('uid', numeric(block, FIELD.uid, 'uid', finalPath)),
      gid: paxNumber('gid', numeric(block, FIELD.gid, 'gid', finalPath)),
      ...(uname ? { uname } : {}),
      ...(gname ? { gname } : {}),
      size: entrySize,
      mtime: paxNumber('mtime', numeric(block, FIELD.mtime, 'mtime', finalPath)),
      ...(type === 'symlink' || type === 'hardlink' ? { linkname } : {}),
      ...(type === 'char' || type === 'block' ? { devmajor: numeric(block, FIELD.devmajor, 'devmajor', finalPath), devminor: numeric(block, FIELD.devminor, 'devminor', finalPath) } : {}),
      ...(xattrs.size > 0 ? { xattrs } : {}),
      ...(Object.keys(others).length > 0 ? { pax: others } : {}),
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    lastPath = finalPath;
    // Bodies of non-files (a hardlink with a size, say) are skipped, as GNU tar does.
    const bodyBytes = type === 'file' ? entrySize : size;
    pending = bodyBytes + padding(bodyBytes);
    let unread = entrySize;
    const offset = reader.offset;
    const body = async function* (): AsyncGenerator<Buffer> {
      while (unread > 0) {
        const part = await reader.some(unread);
        if (part.length === 0) throw truncated();
        unread -= part.length;
        pending -= part.length;
        yield part;
      }
    };
    yield { header, body: body(), offset };
  }
}
