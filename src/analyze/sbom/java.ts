/**
 * Java archives (`.jar`, `.war`, `.ear`): the Maven coordinates in each `META-INF/maven/GROUP/ARTIFACT/
 * pom.properties`, and in the jars nested one level inside (a WAR's `WEB-INF/lib`, a Spring Boot jar's
 * `BOOT-INF/lib`). A jar is a zip: its central directory is read here, and entries inflated with node:zlib.
 */
import { inflateRawSync } from 'node:zlib';
import type { Cataloguer } from './cataloguer.js';
import { purlOf } from './purl.js';

const ARCHIVE = /\.(?:jar|war|ear)$/i;
const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const POM_PROPERTIES = /^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/;
/** Nested jars and pom.properties files larger than this are passed over. */
const MAX_ENTRY = 64 << 20;

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeader: number;
}

/** The central directory of a zip: its entries, or undefined when the bytes are no zip kiln can read. */
function zipEntries(zip: Buffer): ZipEntry[] | undefined {
  // The end-of-central-directory record is in the last 64 KiB + 22 bytes (its comment is at most 64 KiB).
  let end = zip.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
  while (end !== -1 && end + 22 > zip.length) end = zip.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'), end - 1);
  if (end === -1 || end < zip.length - 22 - 0xffff) return undefined;
  let count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  if ((count === 0xffff || at === 0xffffffff) && end >= 20 && zip.readUInt32LE(end - 20) === 0x07064b50) {
    // Zip64: the locator points at the zip64 end record, which has the 64-bit figures.
    const record = Number(zip.readBigUInt64LE(end - 20 + 8));
    if (record + 56 > zip.length || zip.readUInt32LE(record) !== 0x06064b50) return undefined;
    count = Number(zip.readBigUInt64LE(record + 32));
    at = Number(zip.readBigUInt64LE(record + 48));
  }
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== 0x02014b50) return entries;
    const nameLength = zip.readUInt16LE(at + 28);
    entries.push({
      name: zip.toString('utf8', at + 46, at + 46 + nameLength),
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localHeader: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

/** An entry's bytes, stored or deflated; undefined for another method, a zip64 size, or a corrupt entry. */
function entryBytes(zip: Buffer, entry: ZipEntry): Buffer | undefined {
  if (entry.size > MAX_ENTRY || entry.compressedSize === 0xffffffff) return undefined;
  const at = entry.localHeader;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== 0x04034b50) return undefined;
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const data = zip.subarray(start, start + entry.compressedSize);
  if (data.length !== entry.compressedSize) return undefined;
  try {
    if (entry.method === 0) return data;
    if (entry.method === 8) return inflateRawSync(data, { maxOutputLength: MAX_ENTRY });
  } catch {
    return undefined;
  }
  return undefined;
}

interface MavenArtifact {
  readonly groupId: string;
  readonly artifactId: string;
  readonly version: string;
  /** Where in the archive: '' for the archive itself, else the nested jar's path. */
  readonly nested: string;
}

function properties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([^#!\s=:][^=:]*?)\s*[=:]\s*(.*?)\s*$/.exec(line);
    if (match) out.set(match[1] as string, match[2] as string);
  }
  return out;
}

function artifactsOf(zip: Buffer, nested: string, depth: number): MavenArtifact[] {
  const entries = zipEntries(zip);
  if (!entries) return [];
  const found: MavenArtifact[] = [];
  for (const entry of entries) {
    if (POM_PROPERTIES.test(entry.name)) {
      const bytes = entryBytes(zip, entry);
      const fields = bytes && properties(bytes.toString('utf8'));
      const [groupId, artifactId, version] = ['groupId', 'artifactId', 'version'].map((key) => fields?.get(key));
      if (groupId && artifactId && version) found.push({ groupId, artifactId, version, nested });
    } else if (depth === 0 && ARCHIVE.test(entry.name)) {
      const bytes = entryBytes(zip, entry);
      if (bytes) found.push(...artifactsOf(bytes, entry.name, depth + 1));
    }
  }
  return found;
}

export const java: Cataloguer<readonly MavenArtifact[]> = {
  name: 'java',
  owner: false,
  select: (path) => (ARCHIVE.test(path) ? { maxBytes: 1 << 30, head: (first) => first.subarray(0, 4).equals(ZIP_MAGIC), read: (bytes) => artifactsOf(bytes, '', 0) } : undefined),
  catalogue: (files) =>
    files.flatMap((file) =>
      file.value.map((artifact) => ({
        name: `${artifact.groupId}:${artifact.artifactId}`,
        version: artifact.version,
        type: 'maven' as const,
        purl: purlOf('maven', artifact.groupId, artifact.artifactId, artifact.version),
        license: null,
        source: null,
        foundIn: artifact.nested === '' ? file.path : `${file.path}!/${artifact.nested}`,
        files: [file.path],
        layer: file.layer,
      })),
    ),
};
