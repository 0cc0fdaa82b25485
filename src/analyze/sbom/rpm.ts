/**
 * RPM packages from the sqlite database of rpm ≥ 4.16 (`/var/lib/rpm/rpmdb.sqlite`, or
 * `/usr/lib/sysimage/rpm/rpmdb.sqlite` where the distribution moved it): each row of `Packages` is a
 * package's header blob, decoded here. sqlite reads files only, so the database's bytes are written to a
 * private temporary file, opened read-only and removed at once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../../meta/db.js';
import { type Cataloguer, firstLayerHolding } from './cataloguer.js';
import { spdxExpression } from './licenses.js';
import { distroQualifier, purlOf } from './purl.js';

const DATABASES = ['/var/lib/rpm/rpmdb.sqlite', '/usr/lib/sysimage/rpm/rpmdb.sqlite'];

/** Header tags (rpmtag.h) and types kiln reads. */
const TAG = { name: 1000, version: 1001, release: 1002, epoch: 1003, license: 1014, arch: 1022, sourceRpm: 1044, dirIndexes: 1116, baseNames: 1117, dirNames: 1118 } as const;
const TYPE = { int32: 4, string: 6, stringArray: 8, i18nString: 9 } as const;

interface RpmRecord {
  readonly name: string;
  readonly version: string;
  readonly release: string;
  readonly epoch: number | undefined;
  readonly arch: string;
  readonly license: string | null;
  readonly sourceRpm: string | null;
  readonly files: readonly string[];
}

/**
 * A header blob as rpm keeps it in its database: the index length and data length (big-endian 32-bit),
 * 16-byte index entries (tag, type, offset into the data, count), then the data. Out-of-range entries are
 * corrupt: the header is passed over.
 */
export function decodeHeader(blob: Buffer): RpmRecord | undefined {
  if (blob.length < 8) return undefined;
  const entries = blob.readUInt32BE(0);
  const dataLength = blob.readUInt32BE(4);
  const dataStart = 8 + entries * 16;
  if (dataStart + dataLength > blob.length) return undefined;
  const index = new Map<number, { type: number; offset: number; count: number }>();
  for (let i = 0; i < entries; i++) {
    const at = 8 + i * 16;
    index.set(blob.readUInt32BE(at), { type: blob.readUInt32BE(at + 4), offset: blob.readUInt32BE(at + 8), count: blob.readUInt32BE(at + 12) });
  }
  const strings = (tag: number): string[] | undefined => {
    const entry = index.get(tag);
    if (!entry || (entry.type !== TYPE.string && entry.type !== TYPE.stringArray && entry.type !== TYPE.i18nString)) return undefined;
    const out: string[] = [];
    let at = dataStart + entry.offset;
    const count = entry.type === TYPE.string ? 1 : entry.count;
    for (let i = 0; i < count; i++) {
      const end = blob.indexOf(0, at);
      if (end === -1 || end >= dataStart + dataLength) return undefined;
      out.push(blob.toString('utf8', at, end));
      at = end + 1;
    }
    return out;
  };
  const ints = (tag: number): number[] | undefined => {
    const entry = index.get(tag);
    if (entry?.type !== TYPE.int32) return undefined;
    const at = dataStart + entry.offset;
    if (at + entry.count * 4 > dataStart + dataLength) return undefined;
    return Array.from({ length: entry.count }, (_, i) => blob.readUInt32BE(at + i * 4));
  };
  const name = strings(TAG.name)?.[0];
  const version = strings(TAG.version)?.[0];
  if (name === undefined || version === undefined) return undefined;
  const baseNames = strings(TAG.baseNames) ?? [];
  const dirNames = strings(TAG.dirNames) ?? [];
  const dirIndexes = ints(TAG.dirIndexes) ?? [];
  return {
    name,
    version,
    release: strings(TAG.release)?.[0] ?? '',
    epoch: ints(TAG.epoch)?.[0],
    arch: strings(TAG.arch)?.[0] ?? '',
    license: strings(TAG.license)?.[0] ?? null,
    sourceRpm: strings(TAG.sourceRpm)?.[0] ?? null,
    files: baseNames.map((base, i) => `${dirNames[dirIndexes[i] ?? -1] ?? ''}${base}`),
  };
}

/** The packages of an rpmdb.sqlite file's bytes; undefined when it is no rpm database. */
function readDatabase(bytes: Buffer): RpmRecord[] | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-rpmdb-'));
  try {
    const path = join(dir, 'rpmdb.sqlite');
    writeFileSync(path, bytes);
    const db = openSqlite(path, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT blob FROM Packages').all() as { blob: Buffer }[];
      // rpm's public keys are kept as pseudo-packages named gpg-pubkey: no software.
      return rows.map((row) => decodeHeader(row.blob)).filter((r): r is RpmRecord => r !== undefined && r.name !== 'gpg-pubkey');
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `[epoch:]version-release`, as rpm -q prints with %{EPOCH}. */
function fullVersion(record: RpmRecord): string {
  return `${record.epoch !== undefined ? `${record.epoch}:` : ''}${record.version}${record.release !== '' ? `-${record.release}` : ''}`;
}

/** The source package of `bash-5.1.8-6.el9.src.rpm`: bash, 5.1.8-6.el9. */
function sourceOf(sourceRpm: string | null): { name: string; version: string } | null {
  const match = /^(.+)-([^-]+-[^-]+)\.(?:no)?src\.rpm$/.exec(sourceRpm ?? '');
  return match ? { name: match[1] as string, version: match[2] as string } : null;
}

export const rpm: Cataloguer<readonly RpmRecord[]> = {
  name: 'rpm',
  owner: true,
  select: (path) => (DATABASES.includes(path) ? { maxBytes: 1 << 30, history: true, read: readDatabase } : undefined),
  catalogue: (files, distro) =>
    files.flatMap((file) =>
      file.value.map((record) => ({
        name: record.name,
        version: fullVersion(record),
        type: 'rpm' as const,
        purl: purlOf('rpm', distro?.id, record.name, `${record.version}${record.release !== '' ? `-${record.release}` : ''}`, {
          arch: record.arch,
          epoch: record.epoch === undefined ? undefined : String(record.epoch),
          distro: distroQualifier(distro),
        }),
        license: spdxExpression(record.license),
        source: sourceOf(record.sourceRpm),
        foundIn: file.path,
        files: record.files,
        layer: firstLayerHolding(file, (value) => value.some((r) => r.name === record.name && fullVersion(r) === fullVersion(record) && r.arch === record.arch)),
      })),
    ),
};
