/**
 * A reader of zip archives (PKWARE APPNOTE): the central directory (ZIP64 too, for the 100,000-entry
 * exports of osv.dev), stored and deflated entries, each checked as it is read: a name that would climb
 * out of the archive's root, an entry larger than its bound or than it declared, or bytes that do not
 * match its CRC-32 end in a KilnError naming the archive and the entry. Nothing is written to disk.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { KilnError } from '../../errors.js';

export interface ZipEntry {
  readonly name: string;
  readonly size: number;
  /** The entry's bytes, inflated and verified. */
  read(): Buffer;
}

export interface ZipLimits {
  /** The largest entry, uncompressed. */
  readonly maxEntryBytes: number;
  /** All entries together, uncompressed. */
  readonly maxTotalBytes: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Why a name is refused, or undefined when it stays inside the archive's root. */
function unsafeName(name: string): string | undefined {
  if (name.includes('\0')) return 'has a NUL byte';
  if (name.includes('\\')) return 'has a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'is absolute';
  if (name.split('/').includes('..')) return 'climbs out with ..';
  return undefined;
}

/** The entries of a zip held in memory; `label` names it in errors. */
export function readZip(zip: Buffer, label: string, limits: ZipLimits): ZipEntry[] {
  const fail = (what: string): never => {
    throw new KilnError('INVALID_INPUT', `${label}: ${what}: not a readable zip archive`);
  };
  const u16 = (at: number): number => (at + 2 <= zip.length ? zip.readUInt16LE(at) : fail(`truncated at byte ${at}`));
  const u32 = (at: number): number => (at + 4 <= zip.length ? zip.readUInt32LE(at) : fail(`truncated at byte ${at}`));
  const u64 = (at: number): number => {
    if (at + 8 > zip.length) fail(`truncated at byte ${at}`);
    const value = zip.readBigUInt64LE(at);
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? fail('a ZIP64 size or offset is out of range') : Number(value);
  };

  // The end of central directory record: the last one in the final 64 KiB + 22 bytes (its comment may hold anything).
  let eocd = -1;
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === EOCD && at + 22 + zip.readUInt16LE(at + 20) === zip.length) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) fail('no end of central directory record');
  let count = u16(eocd + 10);
  let directorySize = u32(eocd + 12);
  let directoryOffset = u32(eocd + 16);
  if (eocd >= 20 && u32(eocd - 20) === ZIP64_LOCATOR) {
    const record = u64(eocd - 20 + 8);
    if (u32(record) !== ZIP64_EOCD) fail('the ZIP64 locator points at no ZIP64 record');
    count = u64(record + 32);
    directorySize = u64(record + 40);
    directoryOffset = u64(record + 48);
  }
  if (directoryOffset + directorySize > zip.length) fail('the central directory lies outside the file');

  const entries: ZipEntry[] = [];
  let total = 0;
  let at = directoryOffset;
  for (let n = 0; n < count; n++) {
    if (u32(at) !== CENTRAL) fail(`central directory entry ${n} has a bad signature`);
    const flags = u16(at + 8);
    const method = u16(at + 10);
    const crc = u32(at + 16);
    let compressedSize = u32(at + 20);
    let size = u32(at + 24);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    let localOffset = u32(at + 42);
    if (at + 46 + nameLength + extraLength + commentLength > zip.length) fail(`central directory entry ${n} is truncated`);
    const name = zip.toString(flags & 0x800 ? 'utf8' : 'latin1', at + 46, at + 46 + nameLength);
    // ZIP64 extra field: the 64-bit values of the fields that hold 0xffffffff, in this order.
    for (let extra = at + 46 + nameLength; extra + 4 <= at + 46 + nameLength + extraLength; ) {
      const id = u16(extra);
      const length = u16(extra + 2);
      if (id === 0x0001) {
        let field = extra + 4;
        if (size === 0xffffffff) {
          size = u64(field);
          field += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(field);
          field += 8;
        }
        if (localOffset === 0xffffffff) localOffset = u64(field);
      }
      extra += 4 + length;
    }
    at += 46 + nameLength + extraLength + commentLength;
    const unsafe = unsafeName(name);
    if (unsafe !== undefined) throw new KilnError('INVALID_INPUT', `${label}: entry ${JSON.stringify(name)} ${unsafe}: refusing the archive`);
    if (name.endsWith('/')) continue;
    if (flags & 0x1) throw new KilnError('UNSUPPORTED', `${label}: ${name} is encrypted: give kiln the records unencrypted`);
    if (method !== 0 && method !== 8) throw new KilnError('UNSUPPORTED', `${label}: ${name} is compressed with method ${method}: kiln reads stored and deflated entries`);
    if (size > limits.maxEntryBytes) throw new KilnError('INVALID_INPUT', `${label}: ${name} is ${size} bytes uncompressed, over the ${limits.maxEntryBytes}-byte bound for one record`);
    total += size;
    if (total > limits.maxTotalBytes) throw new KilnError('INVALID_INPUT', `${label}: the entries are over ${limits.maxTotalBytes} bytes uncompressed in all: refusing a zip bomb`);
    const local = localOffset;
    entries.push({
      name,
      size,
      read: () => {
        if (u32(local) !== LOCAL) fail(`${name}: bad local header signature`);
        const start = local + 30 + u16(local + 26) + u16(local + 28);
        if (start + compressedSize > zip.length) fail(`${name}: its data runs past the end`);
        const raw = zip.subarray(start, start + compressedSize);
        let data: Buffer;
        try {
          // One byte more than declared is enough to tell an entry that lies about its size.
          data = method === 0 ? raw : inflateRawSync(raw, { maxOutputLength: Math.max(1, size + 1) });
        } catch (err) {
          throw new KilnError('INVALID_INPUT', `${label}: ${name}: ${(err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? `inflates to more than the ${size} bytes it declares` : `bad deflate data (${(err as Error).message})`}`);
        }
        if (data.length !== size) throw new KilnError('INVALID_INPUT', `${label}: ${name}: inflates to ${data.length} bytes, not the ${size} it declares`);
        if (crc32(data) !== crc) throw new KilnError('INVALID_INPUT', `${label}: ${name}: CRC-32 mismatch (the archive is damaged)`);
        return data;
      },
    });
  }
  return entries;
}
