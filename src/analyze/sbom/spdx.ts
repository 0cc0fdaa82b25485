/**
 * An SBOM as an SPDX 2.3 JSON document: the image is the package the document describes (with its digest
 * as a SHA256 checksum and an oci purl), and it CONTAINS each catalogued package (name, version, purl,
 * the declared license as an SPDX expression, the source package, where it came from).
 */
import { randomUUID } from 'node:crypto';
import { type DocumentInfo, originText, rootOf } from './describe.js';
import type { Sbom } from './model.js';

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: 'NOASSERTION';
  filesAnalyzed: false;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: 'NOASSERTION';
  checksums?: { algorithm: 'SHA256'; checksumValue: string }[];
  externalRefs?: { referenceCategory: 'PACKAGE-MANAGER'; referenceType: 'purl'; referenceLocator: string }[];
  primaryPackagePurpose?: 'CONTAINER' | 'LIBRARY' | 'APPLICATION' | 'OPERATING-SYSTEM';
  sourceInfo?: string;
  comment?: string;
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: SpdxPackage[];
  relationships: { spdxElementId: string; relationshipType: 'DESCRIBES' | 'CONTAINS'; relatedSpdxElement: string }[];
}

/** SPDX's date format: UTC, to the second. */
function spdxDate(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

export function toSpdx(sbom: Sbom, info: DocumentInfo): SpdxDocument {
  const root = rootOf(sbom);
  const image: SpdxPackage = {
    SPDXID: 'SPDXRef-Image',
    name: root.name,
    ...(root.digest !== undefined ? { versionInfo: root.digest } : {}),
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    ...(root.digest !== undefined ? { checksums: [{ algorithm: 'SHA256', checksumValue: root.digest.replace(/^sha256:/, '') }], primaryPackagePurpose: 'CONTAINER' } : {}),
    ...(root.purl !== undefined ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: root.purl }] } : {}),
  };
  const packages = sbom.packages.map(
    (pkg, index): SpdxPackage => ({
      // SPDX ids allow letters, digits, '.' and '-' only.
      SPDXID: `SPDXRef-Package-${pkg.type}-${index + 1}`,
      name: pkg.name,
      versionInfo: pkg.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: pkg.license ?? 'NOASSERTION',
      copyrightText: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: pkg.purl }],
      primaryPackagePurpose: pkg.type === 'golang' && pkg.files.length === 1 && pkg.name !== 'stdlib' ? 'APPLICATION' : 'LIBRARY',
      ...(pkg.source !== null ? { sourceInfo: `built from source package ${pkg.source.name} ${pkg.source.version}` } : {}),
      comment: originText(pkg),
    }),
  );
  const slug = root.name.replace(/[^A-Za-z0-9.-]+/g, '-');
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: root.name,
    documentNamespace: `https://kiln.invalid/spdxdocs/${slug}-${randomUUID()}`,
    creationInfo: { created: spdxDate(info.created), creators: [`Tool: kiln-${info.toolVersion}`] },
    packages: [image, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Image' },
      ...packages.map((p) => ({ spdxElementId: 'SPDXRef-Image', relationshipType: 'CONTAINS' as const, relatedSpdxElement: p.SPDXID })),
    ],
  };
}
