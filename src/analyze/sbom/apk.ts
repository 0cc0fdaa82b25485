/**
 * Alpine packages from apk's database, `/lib/apk/db/installed`: one paragraph a package, one `K:value`
 * line a field (P name, V version, A arch, L license, o origin, F a directory, R a file in the last F).
 */
import { type Cataloguer, firstLayerHolding, paragraphs } from './cataloguer.js';
import { spdxExpression } from './licenses.js';
import { distroQualifier, purlOf } from './purl.js';

const INSTALLED = '/lib/apk/db/installed';

interface ApkRecord {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  readonly license: string | null;
  readonly origin: string | null;
  readonly files: readonly string[];
}

function parseInstalled(text: string): ApkRecord[] {
  const records: ApkRecord[] = [];
  for (const paragraph of paragraphs(text)) {
    const fields = new Map<string, string>();
    const files: string[] = [];
    let dir = '';
    for (const line of paragraph.split('\n')) {
      if (line[1] !== ':') continue;
      const key = line[0] as string;
      const value = line.slice(2);
      if (key === 'F') {
        dir = value;
        files.push(`/${dir}`);
      } else if (key === 'R') files.push(`/${dir === '' ? '' : `${dir}/`}${value}`);
      else if (!fields.has(key)) fields.set(key, value);
    }
    const name = fields.get('P');
    const version = fields.get('V');
    if (name === undefined || version === undefined) continue;
    records.push({ name, version, arch: fields.get('A') ?? '', license: fields.get('L') ?? null, origin: fields.get('o') ?? null, files });
  }
  return records;
}

export const apk: Cataloguer<readonly ApkRecord[]> = {
  name: 'apk',
  owner: true,
  select: (path) => (path === INSTALLED ? { maxBytes: 256 << 20, history: true, read: (bytes) => parseInstalled(bytes.toString('utf8')) } : undefined),
  catalogue: (files, distro) =>
    files.flatMap((file) =>
      file.value.map((record) => ({
        name: record.name,
        version: record.version,
        type: 'apk' as const,
        purl: purlOf('apk', distro?.id ?? 'alpine', record.name, record.version, { arch: record.arch, distro: distroQualifier(distro) }),
        license: spdxExpression(record.license),
        source: record.origin === null ? null : { name: record.origin, version: record.version },
        foundIn: file.path,
        files: record.files,
        layer: firstLayerHolding(file, (value) => value.some((r) => r.name === record.name && r.version === record.version)),
      })),
    ),
};
