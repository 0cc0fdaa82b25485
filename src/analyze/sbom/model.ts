/**
 * What `kiln sbom` finds in an image and what `kiln scan` matches against advisories: one value shape
 * for both, so a scan can read a saved SBOM (`sbom:FILE`, kiln's JSON) as well as an image.
 */

/** The package ecosystems kiln catalogues, named as purl types name them. */
export type PackageType = 'deb' | 'apk' | 'rpm' | 'npm' | 'pypi' | 'golang' | 'maven';

/** The layer that added a package's files, and the Dockerfile line that made that layer, when known. */
export interface PackageOrigin {
  /** 0-based index of the layer in the image. */
  readonly layerIndex: number;
  /** The layer's diffID. */
  readonly diffId: string;
  /** The history entry's created_by. */
  readonly createdBy: string;
  readonly file: string | null;
  readonly line: number | null;
  readonly instruction: string | null;
}

export interface CataloguedPackage {
  readonly name: string;
  readonly version: string;
  readonly type: PackageType;
  readonly purl: string;
  /** An SPDX license expression, when the package says which license it has. */
  readonly license: string | null;
  /** The source package a distribution builds it from (dpkg `Source:`, apk origin, rpm source RPM). */
  readonly source: { readonly name: string; readonly version: string } | null;
  /** Where its record was found (the dpkg status file, a package.json, a binary). */
  readonly foundIn: string;
  /** Absolute paths of the files it owns, as the package manager lists them. */
  readonly files: readonly string[];
  readonly origin: PackageOrigin;
}

/** The distribution of the final tree, from /etc/os-release (`ID`, `VERSION_ID`). */
export interface Distro {
  readonly id: string;
  readonly versionId: string;
  readonly prettyName: string | null;
}

export interface Sbom {
  /** The source as the user named it. */
  readonly source: string;
  readonly imageId: string;
  readonly names: readonly string[];
  readonly distro: Distro | null;
  readonly packages: readonly CataloguedPackage[];
}
