/** Package URLs (purl) through packageurl-js, one way for every cataloguer. */
import { PackageURL } from 'packageurl-js';
import type { Distro, PackageType } from './model.js';

/**
 * The purl of a package. A version packageurl-js refuses (a Go version that starts with `v` but is no
 * semver) is left out rather than failing the whole SBOM.
 */
export function purlOf(type: PackageType, namespace: string | undefined, name: string, version: string, qualifiers: Readonly<Record<string, string | undefined>> = {}): string {
  const kept = Object.fromEntries(Object.entries(qualifiers).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
  const qualifiersOrUndefined = Object.keys(kept).length > 0 ? kept : undefined;
  try {
    return new PackageURL(type, namespace, name, version, qualifiersOrUndefined, undefined).toString();
  } catch {
    return new PackageURL(type, namespace, name, undefined, qualifiersOrUndefined, undefined).toString();
  }
}

/** The `distro` qualifier of an OS package's purl: `debian-12`, `alpine-3.19.1`. */
export function distroQualifier(distro: Distro | null): string | undefined {
  if (!distro) return undefined;
  return distro.versionId === '' ? distro.id : `${distro.id}-${distro.versionId}`;
}
