/** npm packages: each `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`. */
import type { Cataloguer } from './cataloguer.js';
import { allOf, spdxExpression } from './licenses.js';
import { purlOf } from './purl.js';

const MANIFEST = /\/node_modules\/(?:@[^/]+\/)?[^/@][^/]*\/package\.json$/;

interface NpmManifest {
  readonly name: string;
  readonly version: string;
  readonly license: string | null;
}

/** `license` as a string, as the old `{ type }` object, or the older `licenses` array. */
function licenseOf(json: Record<string, unknown>): string | null {
  const one = (value: unknown): string | null => (typeof value === 'string' ? spdxExpression(value) : typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string' ? spdxExpression((value as { type: string }).type) : null);
  if (json.license !== undefined) return one(json.license);
  return Array.isArray(json.licenses) ? allOf(json.licenses.map(one)) : null;
}

function parseManifest(bytes: Buffer): NpmManifest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const record = json as Record<string, unknown>;
  if (typeof record.name !== 'string' || typeof record.version !== 'string' || record.name === '' || record.version === '') return undefined;
  return { name: record.name, version: record.version, license: licenseOf(record) };
}

export const npm: Cataloguer<NpmManifest> = {
  name: 'npm',
  owner: false,
  select: (path) => (MANIFEST.test(path) ? { maxBytes: 4 << 20, read: parseManifest } : undefined),
  catalogue: (files) =>
    files.map((file) => {
      const { name, version, license } = file.value;
      const slash = name.startsWith('@') ? name.indexOf('/') : -1;
      return {
        name,
        version,
        type: 'npm' as const,
        purl: purlOf('npm', slash === -1 ? undefined : name.slice(0, slash), slash === -1 ? name : name.slice(slash + 1), version),
        license,
        source: null,
        foundIn: file.path,
        files: [file.path],
        layer: file.layer,
      };
    }),
};
