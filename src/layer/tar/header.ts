/** The kinds of tar entries kiln reads and writes (sparse files are refused). */
export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/**
 * One tar entry's metadata, format-independent: the reader fills it from ustar, PAX and GNU headers; the
 * writer picks the smallest encoding that holds it exactly. Paths are as written in the archive.
 */
export interface TarHeader {
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname?: string;
  readonly gname?: string;
  readonly size: number;
  /** Seconds since the epoch; may carry a fraction (PAX). */
  readonly mtime: number;
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extended attributes (`SCHILY.xattr.*`), values kept as raw bytes. */
  readonly xattrs?: ReadonlyMap<string, Buffer>;
  /** PAX records kiln does not interpret, kept so that they are not lost silently. */
  readonly pax?: Readonly<Record<string, string>>;
}

export const BLOCK = 512;

/**
 * What an entry adds to its layer's size as Docker reports it (its graph drivers' DiffSize): a regular
 * file's bytes, a symlink's target's length; nothing for the rest (a hardlink's file counts once, as
 * the file it links to).
 */
export function diffBytes(header: Pick<TarHeader, 'type' | 'size' | 'linkname'>): number {
  if (header.type === 'file') return header.size;
  return header.type === 'symlink' ? Buffer.byteLength(header.linkname ?? '') : 0;
}

/**
 * PAX keys that stand for {@link TarHeader} fields, so never travel in `pax`. Access and change times
 * are among them but have no field: they are dropped, as a layer must not change when a file is read.
 */
export const PAX_FIELD_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime']);

/** The PAX key prefix of extended attributes (star's, which GNU tar, Go and Docker use). */
export const XATTR_PREFIX = 'SCHILY.xattr.';

export const TYPE_FLAGS: Readonly<Record<TarEntryType, string>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

/** Bytes of padding that follow a body of `size` bytes. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Header field offsets and lengths (POSIX ustar). */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  type: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

/** Sums of a header block's bytes, unsigned and (as some old tars wrote it) signed, with the checksum field counted as spaces. */
export function checksum(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return { unsigned, signed };
}

/** One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}
