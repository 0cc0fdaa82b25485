/** What the SPDX and CycloneDX documents say alike about the image and each package. */
import { PackageURL } from 'packageurl-js';
import type { CataloguedPackage, Sbom } from './model.js';

/** How a document names the tool and the time it was made. */
export interface DocumentInfo {
  readonly toolVersion: string;
  readonly created: Date;
}

/** The described root: the image's name (its first tag, else the source as given) and its digest. */
export function rootOf(sbom: Sbom): { name: string; digest: string | undefined; purl: string | undefined } {
  const name = sbom.names[0] ?? sbom.source;
  if (sbom.imageId === '') return { name, digest: undefined, purl: undefined };
  // An image's purl (type oci) names its digest; the repository, when it has a name, is a qualifier.
  const repository = sbom.names[0]?.replace(/:[^:/]+$/, '');
  const last = repository?.split('/').pop() ?? 'image';
  const purl = new PackageURL('oci', undefined, last, sbom.imageId, repository !== undefined ? { repository_url: repository } : undefined, undefined).toString();
  return { name, digest: sbom.imageId, purl };
}

/** Where a package came from, for people: the layer, and the Dockerfile line when known. */
export function originText(pkg: CataloguedPackage): string {
  const { origin } = pkg;
  const layer = origin.diffId === '' ? 'the directory' : `layer ${origin.layerIndex} (${origin.diffId})`;
  const line = origin.line !== null ? `, ${origin.file ?? 'Dockerfile'}:${origin.line}: ${origin.instruction ?? ''}` : origin.createdBy !== '' ? `, made by ${origin.createdBy}` : '';
  return `found in ${pkg.foundIn}, added by ${layer}${line}`;
}
