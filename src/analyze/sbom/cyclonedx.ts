/**
 * An SBOM as a CycloneDX 1.5 JSON document, through the CycloneDX library: the image is the metadata's
 * component (type container, its digest as a SHA-256 hash), each package a library component with its
 * purl, license and kiln's properties (where it was found, the layer and the Dockerfile line).
 */
import { ComponentType, HashAlgorithm } from '@cyclonedx/cyclonedx-library/Enums';
import { Bom, Component, HashDictionary, LicenseExpression, LicenseRepository, Property, PropertyRepository, SpdxLicense } from '@cyclonedx/cyclonedx-library/Models';
import { JSON as JsonNormalize, JsonSerializer } from '@cyclonedx/cyclonedx-library/Serialize';
import { isSupportedSpdxId } from '@cyclonedx/cyclonedx-library/SPDX';
import { Spec1dot5 } from '@cyclonedx/cyclonedx-library/Spec';
import { type DocumentInfo, rootOf } from './describe.js';
import type { CataloguedPackage, Sbom } from './model.js';

function licensesOf(expression: string | null): LicenseRepository {
  const licenses = new LicenseRepository();
  if (expression === null) return licenses;
  licenses.add(isSupportedSpdxId(expression) ? new SpdxLicense(expression) : new LicenseExpression(expression));
  return licenses;
}

function propertiesOf(pkg: CataloguedPackage): PropertyRepository {
  const { origin } = pkg;
  const properties = new PropertyRepository([new Property('kiln:package:type', pkg.type), new Property('kiln:location', pkg.foundIn), new Property('kiln:layer:index', String(origin.layerIndex))]);
  if (origin.diffId !== '') properties.add(new Property('kiln:layer:diffID', origin.diffId));
  if (origin.createdBy !== '') properties.add(new Property('kiln:layer:createdBy', origin.createdBy));
  if (origin.line !== null) properties.add(new Property('kiln:dockerfile:line', `${origin.file ?? 'Dockerfile'}:${origin.line}`));
  if (origin.instruction !== null) properties.add(new Property('kiln:dockerfile:instruction', origin.instruction));
  if (pkg.source !== null) properties.add(new Property('kiln:source', `${pkg.source.name} ${pkg.source.version}`));
  return properties;
}

export function toCycloneDx(sbom: Sbom, info: DocumentInfo): string {
  const bom = new Bom();
  const root = rootOf(sbom);
  const hashes = new HashDictionary();
  if (root.digest !== undefined) hashes.set(HashAlgorithm['SHA-256'], root.digest.replace(/^sha256:/, ''));
  const image = new Component(ComponentType.Container, root.name, {
    bomRef: 'image',
    hashes,
    ...(root.digest !== undefined ? { version: root.digest } : {}),
    ...(root.purl !== undefined ? { purl: root.purl } : {}),
  });
  bom.metadata.component = image;
  bom.metadata.timestamp = info.created;
  bom.metadata.tools.components.add(new Component(ComponentType.Application, 'kiln', { version: info.toolVersion }));
  sbom.packages.forEach((pkg, index) => {
    const component = new Component(ComponentType.Library, pkg.name, {
      bomRef: `pkg-${index + 1}`,
      version: pkg.version,
      purl: pkg.purl,
      licenses: licensesOf(pkg.license),
      properties: propertiesOf(pkg),
    });
    bom.components.add(component);
    image.dependencies.add(component.bomRef);
  });
  const serializer = new JsonSerializer(new JsonNormalize.Normalize.Factory(Spec1dot5));
  return serializer.serialize(bom, { sortLists: false, space: 2 });
}
