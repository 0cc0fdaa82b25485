/**
 * `kiln scan sbom:FILE`: kiln's own SBOM JSON (the `Sbom` value as `kiln sbom --format json` writes it),
 * checked field by field so that a hand-edited or foreign file fails with the field that is wrong.
 */
import { KilnError } from '../../errors.js';
import type { CataloguedPackage, Distro, PackageOrigin, PackageType, Sbom } from '../sbom/model.js';

const TYPES: readonly PackageType[] = ['deb', 'apk', 'rpm', 'npm', 'pypi', 'golang', 'maven'];

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

export function parseSbomJson(text: string, file: string): Sbom {
  const bad = (path: string, what: string): never => {
    throw new KilnError('INVALID_INPUT', `${file}: ${path}: ${what} (kiln scan reads the JSON of kiln sbom --format json)`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return bad('the file', `not JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) return bad('the file', 'not a JSON object');
  const str = (value: unknown, path: string): string => (typeof value === 'string' ? value : bad(path, 'missing or not a string'));
  const strOrNull = (value: unknown, path: string): string | null => (value === null || value === undefined ? null : str(value, path));
  const intOrNull = (value: unknown, path: string): number | null => (value === null || value === undefined ? null : Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : bad(path, 'not a whole number'));
  const strings = (value: unknown, path: string): string[] => (value === undefined ? [] : Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : bad(path, 'not a list of strings'));

  let distro: Distro | null = null;
  if (json.distro !== null && json.distro !== undefined) {
    if (!isObject(json.distro)) return bad('distro', 'not an object');
    distro = { id: str(json.distro.id, 'distro.id'), versionId: str(json.distro.versionId, 'distro.versionId'), prettyName: strOrNull(json.distro.prettyName, 'distro.prettyName') };
  }
  if (!Array.isArray(json.packages)) return bad('packages', 'missing or not a list');
  const packages = json.packages.map((p: unknown, n): CataloguedPackage => {
    const at = `packages[${n}]`;
    if (!isObject(p)) return bad(at, 'not an object');
    const type = str(p.type, `${at}.type`);
    if (!(TYPES as readonly string[]).includes(type)) bad(`${at}.type`, `${JSON.stringify(type)} is not one of ${TYPES.join(', ')}`);
    let source: CataloguedPackage['source'] = null;
    if (p.source !== null && p.source !== undefined) {
      if (!isObject(p.source)) return bad(`${at}.source`, 'not an object');
      source = { name: str(p.source.name, `${at}.source.name`), version: str(p.source.version, `${at}.source.version`) };
    }
    if (!isObject(p.origin)) return bad(`${at}.origin`, 'missing or not an object');
    const o = p.origin;
    const layerIndex = intOrNull(o.layerIndex, `${at}.origin.layerIndex`);
    if (layerIndex === null) return bad(`${at}.origin.layerIndex`, 'missing');
    const origin: PackageOrigin = {
      layerIndex,
      diffId: str(o.diffId, `${at}.origin.diffId`),
      createdBy: typeof o.createdBy === 'string' ? o.createdBy : '',
      file: strOrNull(o.file, `${at}.origin.file`),
      line: intOrNull(o.line, `${at}.origin.line`),
      instruction: strOrNull(o.instruction, `${at}.origin.instruction`),
    };
    return {
      name: str(p.name, `${at}.name`),
      version: str(p.version, `${at}.version`),
      type: type as PackageType,
      purl: str(p.purl, `${at}.purl`),
      license: strOrNull(p.license, `${at}.license`),
      source,
      foundIn: typeof p.foundIn === 'string' ? p.foundIn : '',
      files: strings(p.files, `${at}.files`),
      origin,
    };
  });
  return { source: str(json.source, 'source'), imageId: str(json.imageId, 'imageId'), names: strings(json.names, 'names'), distro, packages };
}
