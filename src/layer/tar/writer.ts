import { posix } from 'node:path';
import { KilnError } from '../../errors.js';
import { BLOCK, FIELD, type TarHeader, TYPE_FLAGS, checksum, padding, paxRecord } from './header.js';

/** What the writer needs of an entry; the body is required for files with a size. */
export interface TarInput {
  readonly header: TarHeader;
  readonly body?: Uint8Array | AsyncIterable<Uint8Array>;
}

const OCTAL_MAX = { 8: 0o7777777, 12: 0o77777777777 } as const;

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0 || code > 0x7f) return false;
  }
  return true;
}

function putString(block: Buffer, [offset, length]: readonly [number, number], value: string): void {
  block.write(value, offset, length, 'utf8');
}

function putOctal(block: Buffer, [offset, length]: readonly [number, number], value: number): void {
  const digits = Math.floor(value).toString(8).padStart(length - 1, '0');
  block.write(`${digits}\0`, offset, length, 'latin1');
}

function writeChecksum(block: Buffer): void {
  block.write(`${checksum(block).unsigned.toString(8).padStart(6, '0')}\0 `, FIELD.checksum[0], 8, 'latin1');
}

/** Splits a long path into ustar's prefix/name when it fits, else undefined (PAX is needed). */
function splitUstar(path: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  if (Buffer.byteLength(path) > 256) return undefined;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') return { prefix, name };
  }
  return undefined;
}

/** The ustar header block, plus the PAX records needed for whatever ustar cannot hold exactly. */
function encodeHeader(h: TarHeader): Buffer[] {
  const records: Buffer[] = [];
  const pax = (key: string, value: string | Buffer): void => {
    records.push(paxRecord(key, Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8')));
  };
  const split = isAscii(h.path) ? splitUstar(h.path) : undefined;
  if (!split) pax('path', h.path);
  const linkname = h.linkname ?? '';
  if (Buffer.byteLength(linkname) > 100 || !isAscii(linkname)) pax('linkpath', linkname);
  if (h.uid > OCTAL_MAX[8]) pax('uid', String(h.uid));
  if (h.gid > OCTAL_MAX[8]) pax('gid', String(h.gid));
  if (h.size > OCTAL_MAX[12]) pax('size', String(h.size));
  if (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > OCTAL_MAX[12]) pax('mtime', String(h.mtime));
  for (const [key, name] of [['uname', h.uname], ['gname', h.gname]] as const) {
    if (name && (Buffer.byteLength(name) > 32 || !isAscii(name))) pax(key, name);
  }
  for (const [key, value] of Object.entries(h.pax ?? {})) pax(key, value);
  for (const [key, value] of [...(h.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) pax(`SCHILY.xattr.${key}`, value);

  const block = Buffer.alloc(BLOCK);
  const fit = (value: number, max: number): number => (value >= 0 && value <= max ? value : 0);
  putString(block, FIELD.name, split ? split.name : posix.basename(h.path).slice(0, 100));
  putOctal(block, FIELD.mode, h.mode & 0o7777);
  putOctal(block, FIELD.uid, fit(h.uid, OCTAL_MAX[8]));
  putOctal(block, FIELD.gid, fit(h.gid, OCTAL_MAX[8]));
  putOctal(block, FIELD.size, fit(h.type === 'file' ? h.size : 0, OCTAL_MAX[12]));
  putOctal(block, FIELD.mtime, fit(Math.floor(h.mtime), OCTAL_MAX[12]));
  block.write(TYPE_FLAGS[h.type], FIELD.type[0], 1, 'latin1');
  if (isAscii(linkname)) putString(block, FIELD.linkname, linkname.slice(0, 100));
  block.write('ustar\x0000', FIELD.magic[0], 8, 'latin1');
  if (h.uname && isAscii(h.uname)) putString(block, FIELD.uname, h.uname.slice(0, 32));
  if (h.gname && isAscii(h.gname)) putString(block, FIELD.gname, h.gname.slice(0, 32));
  if (h.type === 'char' || h.type === 'block') {
    putOctal(block, FIELD.devmajor, h.devmajor ?? 0);
    putOctal(block, FIELD.devminor, h.devminor ?? 0);
  }
  if (split) putString(block, FIELD.prefix, split.prefix);
  writeChecksum(block);
  if (records.length === 0) return [block];

  const body = Buffer.concat(records);
  const paxBlock = Buffer.alloc(BLOCK);
  // The PAX header's own name is informational; keep it short and ASCII so it never needs PAX itself.
  putString(paxBlock, FIELD.name, `PaxHeaders.0/${posix.basename(h.path).replace(/[^\x20-\x7e]/g, '_')}`.slice(0, 99));
  putOctal(paxBlock, FIELD.mode, 0o644);
  putOctal(paxBlock, FIELD.uid, 0);
  putOctal(paxBlock, FIELD.gid, 0);
  putOctal(paxBlock, FIELD.size, body.length);
  putOctal(paxBlock, FIELD.mtime, 0);
  paxBlock.write('x', FIELD.type[0], 1, 'latin1');
  paxBlock.write('ustar\x0000', FIELD.magic[0], 8, 'latin1');
  writeChecksum(paxBlock);
  return [paxBlock, body, Buffer.alloc(padding(body.length)), block];
}

/**
 * Writes a tar stream: ustar headers, with PAX records only where ustar cannot hold a value exactly
 * (long or non-ASCII names, large ids and sizes, fractional times, xattrs). The output is a function
 * of the entries alone, so the same input always gives the same bytes. Bodies stream through uncopied.
 */
export async function* writeTar(entries: AsyncIterable<TarInput> | Iterable<TarInput>): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield* encodeHeader(header);
    if (header.type !== 'file') continue;
    let written = 0;
    const tooMuch = (): KilnError => new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(header.path)} has more data than its size ${header.size}`);
    if (body instanceof Uint8Array) {
      written = body.length;
      if (written > header.size) throw tooMuch();
      if (written > 0) yield Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    } else if (body) {
      for await (const chunk of body) {
        written += chunk.length;
        if (written > header.size) throw tooMuch();
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    }
    if (written !== header.size) {
      throw new KilnError('INVALID_INPUT', `tar: entry ${JSON.stringify(header.path)} ended after ${written} of its ${header.size} bytes (the file changed while it was read?)`);
    }
    const pad = padding(written);
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(BLOCK * 2);
}
