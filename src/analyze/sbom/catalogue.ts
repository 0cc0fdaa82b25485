/**
 * The catalogue of a tree: every cataloguer asks for its files as the layers stream by (the first that
 * asks for a file has it), then finds its packages. A file the distribution's package manager owns (dpkg's
 * lists, apk's and rpm's file lists, through the tree's symlinked directories) is not catalogued again as a
 * language package or a Go binary: the OS package is the one to report, and to patch.
 */
import { apk } from './apk.js';
import type { Cataloguer, FoundPackage } from './cataloguer.js';
import { dpkg } from './dpkg.js';
import { golang } from './golang.js';
import { java } from './java.js';
import type { CataloguedPackage, Distro, PackageOrigin } from './model.js';
import { npm } from './npm.js';
import { distroOf, osReleaseCapture } from './os-release.js';
import { python } from './python.js';
import { rpm } from './rpm.js';
import { type FinalFile, type LayerWalk, canonicalPath, readFinalTree } from './tree.js';

/** In the order they are asked: a Java archive is the Java cataloguer's before the Go one looks at executables. */
const CATALOGUERS: readonly Cataloguer<unknown>[] = [dpkg, apk, rpm, npm, python, java, golang];
const OS_RELEASE = CATALOGUERS.length;

export interface Catalogue {
  readonly distro: Distro | null;
  readonly packages: readonly CataloguedPackage[];
}

/** Catalogues the final tree of `layers` (bottom first); `origins[i]` is where layer i came from. */
export async function catalogueLayers(layers: readonly LayerWalk[], origins: readonly PackageOrigin[]): Promise<Catalogue> {
  const { found, symlinks } = await readFinalTree(layers, (path, mode) => {
    const release = osReleaseCapture(path);
    if (release) return { asker: OS_RELEASE, capture: release };
    for (const [asker, cataloguer] of CATALOGUERS.entries()) {
      const capture = cataloguer.select(path, mode);
      if (capture) return { asker, capture };
    }
    return undefined;
  });
  const distro = distroOf((found[OS_RELEASE] ?? []) as FinalFile<Distro>[]);
  const owned = new Set<string>();
  const byOwners: FoundPackage[] = [];
  const others: FoundPackage[] = [];
  for (const [asker, cataloguer] of CATALOGUERS.entries()) {
    const packages = cataloguer.catalogue(found[asker] ?? [], distro);
    if (cataloguer.owner) {
      byOwners.push(...packages);
      for (const pkg of packages) for (const file of pkg.files) owned.add(canonicalPath(file, symlinks));
    } else others.push(...packages.filter((pkg) => !pkg.files.some((file) => owned.has(file))));
  }
  const packages = [...byOwners, ...others].map(({ layer, ...pkg }): CataloguedPackage => ({ ...pkg, origin: origins[layer] as PackageOrigin }));
  packages.sort((a, b) => compare(a.name, b.name) || compare(a.type, b.type) || compare(a.version, b.version) || compare(a.foundIn, b.foundIn));
  return { distro, packages };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
