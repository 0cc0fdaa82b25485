import { posix } from 'node:path';
import { KilnError } from '../../errors.js';
import { BLOCK, FIELD, PAX_FIELD_KEYS, type TarHeader, TYPE_FLAGS, XATTR_PREFIX, checksum, diffBytes, padding, paxRecord } from './header.js';

/** What the writer needs of an entry; the body is required for files with a size. */
export interface TarInput {
  readonly header: TarHeader;
  readonly body?: Uint8Array | AsyncIterable<Uint8Array>;
}

/** Largest values the octal fields hold: 7 digits for ids and devices, 11 for sizes and times. */
const OCTAL_7 = 0o7777777;
const OCTAL_11 = 0o77777777777;

/** True when every character is one UTF-8 byte, i.e. ASCII. */
function isAscii(text: string): boolean {
  return Buffer.byteLength(text) === text.length;
}

function putString(block: Buffer, [offset, length]: readonly [number, number], value: string): void {
  block.write(value, offset, length, 'utf8');
}

function putOctal(block: Buffer, [offset, length]: readonly [number, number], value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

function sealChecksum(block: Buffer): void {
  block.write(`${checksum(block).unsigned.toString(8).padStart(6, '0')}\0 `, FIELD.checksum[0], 8, 'latin1');
}

/** Splits a path into ustar's prefix/name (at a slash, longest name first), or undefined when it cannot. */
function splitUstar(path: string): { prefix: string; name: string } | undefined {
  if (path.length <= 100) return { prefix: '', name: path };
  if (path.length > 256) return undefined;
  for (let i = path.indexOf('/'); i !== -1 && i <= 155; i = path.indexOf('/', i + 1)) {
    const name = path.slice(i + 1);
    if (name.length <= 100 && name !== '') return { prefix: path.slice(0, i), name };
  }
  return undefined;
}

/** PAX time: decimal seconds, never an exponent (String(1e-7) would be "1e-7"). */
function paxTime(seconds: number): string {
  const text = String(seconds);
  return text.includes('e') ? seconds.toFixed(9).replace(/\.?0+$/, '') : text;
}

/** Refuses what tar cannot represent, before any byte of the entry is written. */
function validate(h: TarHeader): void {
  const refuse = (why: string): never => {
    throw new KilnError('INVALID_INPUT', `tar: cannot write entry ${JSON.stringify(h.path)}: ${why}`);
  };
  if (h.path === '' || h.path.includes('\0')) refuse('the path is empty or contains a NUL byte');
  if ((h.type === 'symlink' || h.type === 'hardlink') && !h.linkname) refuse(`a ${h.type} needs a link target`);
  if (h.linkname?.includes('\0')) refuse('the link target contains a NUL byte');
  for (const [name, value] of [['uid', h.uid], ['gid', h.gid], ['size', h.size]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) refuse(`${name} ${value} is not a non-negative integer`);
  }
  if (!Number.isFinite(h.mtime) || Math.abs(h.mtime) > Number.MAX_SAFE_INTEGER) refuse(`mtime ${h.mtime} is not a time`);
  for (const [name, value] of [['devmajor', h.devmajor ?? 0], ['devminor', h.devminor ?? 0]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > OCTAL_7) refuse(`${name} ${value} does not fit a tar header`);
  }
  for (const key of [...(h.xattrs?.keys() ?? []), ...Object.keys(h.pax ?? {})]) {
    if (key === '' || key.includes('=') || key.includes('\0')) refuse(`the extended attribute or PAX key ${JSON.stringify(key)} cannot be written`);
  }
}

/** The PAX records for whatever the ustar block cannot hold exactly, in a fixed order. */
function paxRecords(h: TarHeader, linkname: string, pathFits: boolean, linkFits: boolean): Buffer[] {
  const records: Buffer[] = [];
  const add = (key: string, value: string | Buffer): void => {
    records.push(paxRecord(key, Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8')));
  };
  if (!pathFits) add('path', h.path);
  if (!linkFits) add('linkpath', linkname);
  if (h.uid > OCTAL_7) add('uid', String(h.uid));
  if (h.gid > OCTAL_7) add('gid', String(h.gid));
  if (h.type === 'file' && h.size > OCTAL_11) add('size', String(h.size));
  if (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > OCTAL_11) add('mtime', paxTime(h.mtime));
  for (const [key, name] of [['uname', h.uname], ['gname', h.gname]] as const) {
    if (name && (name.length > 32 || !isAscii(name))) add(key, name);
  }
  // Keys that stand for header fields or xattrs would contradict the header's own values.
  for (const [key, value] of Object.entries(h.pax ?? {})) if (!PAX_FIELD_KEYS.has(key) && !key.startsWith(XATTR_PREFIX)) add(key, value);
  const xattrs = [...(h.xattrs ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, value] of xattrs) add(XATTR_PREFIX + key, value);
  return records;
}

/** A header block with the common fields set; the caller adds what is specific and seals the checksum. */
function baseBlock(name: string, type: string, mode: number, uid: number, gid: number, size: number, mtime: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  putString(block, FIELD.name, name);
  putOctal(block, FIELD.mode, mode);
  putOctal(block, FIELD.uid, uid);
  putOctal(block, FIELD.gid, gid);
  putOctal(block, FIELD.size, size);
  putOctal(block, FIELD.mtime, mtime);
  block.write(type, FIELD.type[0], 1, 'latin1');
  block.write('ustar\x0000', FIELD.magic[0], 8, 'latin1');
  return block;
}

/**
 * An entry's header as one buffer: a ustar block, preceded by a PAX header when ustar cannot hold a
 * value exactly. Fields that move to PAX keep a best-effort ASCII value (or zero) in the ustar block
 * for readers that ignore PAX.
 */
function encodeHeader(h: TarHeader): Buffer {
  validate(h);
  const linkname = h.type === 'symlink' || h.type === 'hardlink' ? (h.linkname ?? '') : '';
  const split = isAscii(h.path) ? splitUstar(h.path) : undefined;
  const linkFits = isAscii(linkname) && linkname.length <= 100;
  const records = paxRecords(h, linkname, split !== undefined, linkFits);
  const fit = (value: number, max: number): number => (value >= 0 && value <= max ? value : 0);
  const asciiOnly = (text: string): string => text.replace(/[^\x20-\x7e]/g, '_');

  const block = baseBlock(
    split ? split.name : asciiOnly(posix.basename(h.path)).slice(0, 100),
    TYPE_FLAGS[h.type],
    h.mode & 0o7777,
    fit(h.uid, OCTAL_7),
    fit(h.gid, OCTAL_7),
    h.type === 'file' ? fit(h.size, OCTAL_11) : 0,
    fit(Math.floor(h.mtime), OCTAL_11),
  );
  putString(block, FIELD.linkname, asciiOnly(linkname).slice(0, 100));
  putString(block, FIELD.uname, asciiOnly(h.uname ?? '').slice(0, 32));
  putString(block, FIELD.gname, asciiOnly(h.gname ?? '').slice(0, 32));
  if (h.type === 'char' || h.type === 'block') {
    putOctal(block, FIELD.devmajor, h.devmajor ?? 0);
    putOctal(block, FIELD.devminor, h.devminor ?? 0);
  }
  if (split) putString(block, FIELD.prefix, split.prefix);
  sealChecksum(block);
  if (records.length === 0) return block;

  const body = Buffer.concat(records);
  // The PAX header's own name is informational; short and ASCII so that it never needs PAX itself.
  const paxBlock = baseBlock(`PaxHeaders.0/${asciiOnly(posix.basename(h.path))}`.slice(0, 99), 'x', 0o644, 0, 0, body.length, 0);
  sealChecksum(paxBlock);
  return Buffer.concat([paxBlock, body, Buffer.alloc(padding(body.length)), block]);
}

/** A file's body as it goes out: the chunks as given (no copies), checked against the declared size. */
async function* fileBody(header: TarHeader, body: TarInput['body']): AsyncGenerator<Buffer> {
  const chunks = body === undefined ? [] : body instanceof Uint8Array ? [body] : body;
  let written = 0;
  for await (const chunk of chunks) {
    written += chunk.length;
    if (written > header.size) throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(header.path)} has more data than its size ${header.size} (the file changed while it was read?)`);
    if (chunk.length > 0) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  if (written !== header.size) {
    throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(header.path)} ended after ${written} of its ${header.size} bytes (the file changed while it was read?)`);
  }
  const pad = padding(written);
  if (pad > 0) yield Buffer.alloc(pad);
}

/**
 * Writes a tar stream: ustar headers, with PAX records only where ustar cannot hold a value exactly
 * (long or non-ASCII names, large ids and sizes, negative or fractional times, owner names, xattrs).
 * The output is a function of the entries alone: the same input always gives the same bytes. Entries
 * and bodies are pulled only as the consumer reads, so a slow sink slows the source down. Bodies of
 * non-file entries are ignored.
 */
export async function* writeTar(entries: AsyncIterable<TarInput> | Iterable<TarInput>): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield encodeHeader(header);
    if (header.type === 'file') yield* fileBody(header, body);
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** A layer's tar as kiln encodes it, and its diffSize (see diffBytes), known once the tar is read to its end. */
export interface EncodedLayer {
  readonly tar: AsyncIterable<Buffer>;
  diffSize(): number;
}

/**
 * Encodes entries as a layer's tar, counting its diffSize on the way: what a scan of the tar would find,
 * without reading the tar back (see TransportStore.putEncodedLayer).
 */
export function encodeLayer(entries: AsyncIterable<TarInput> | Iterable<TarInput>): EncodedLayer {
  let diffSize = 0;
  async function* counted(): AsyncGenerator<TarInput> {
    for await (const entry of entries) {
      diffSize += diffBytes(entry.header);
      yield entry;
    }
  }
  return { tar: writeTar(counted()), diffSize: () => diffSize };
}
