/**
 * What every cataloguer is: the files it asks for (by path and mode, answered while the layers stream by)
 * and the packages it finds in them. Packages carry the layer their record came from; the catalogue gives
 * them their origin (the layer's Dockerfile line) after.
 */
import type { CataloguedPackage, Distro } from './model.js';
import type { Capture, FinalFile, FoundFile } from './tree.js';

/** A package before its origin is known: `layer` is the index of the layer its record came from. */
export type FoundPackage = Omit<CataloguedPackage, 'origin'> & { readonly layer: number };

export interface Cataloguer<T> {
  readonly name: string;
  /** A package manager of the distribution: the files its packages own are not catalogued again. */
  readonly owner: boolean;
  select(path: string, mode: number): Capture<T> | undefined;
  catalogue(files: readonly FinalFile<T>[], distro: Distro | null): FoundPackage[];
}

/** The fields of an RFC 822-style record (dpkg's status, Python's METADATA): `Key: value`, continuation lines indented. */
export function recordFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let key: string | undefined;
  for (const line of text.split('\n')) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && key !== undefined) {
      fields.set(key, `${fields.get(key) ?? ''}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      key = undefined;
      continue;
    }
    key = line.slice(0, colon);
    // The first value of a repeated key wins; Python's repeated Classifier keys are joined by the caller.
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
    else if (key === 'Classifier') fields.set(key, `${fields.get(key) ?? ''}\n${line.slice(colon + 1).trim()}`);
  }
  return fields;
}

/** Paragraphs of a record file, split at blank lines. */
export function paragraphs(text: string): string[] {
  return text.split(/\n[ \t]*\n/).filter((p) => p.trim() !== '');
}

/**
 * The layer a record first came from: walking a multi-record file's versions from the top down, the lowest
 * layer from which every version up to the final one holds it (a later rewrite that keeps it, an
 * `apt-get install` of something else, does not move it).
 */
export function firstLayerHolding<T>(file: FinalFile<T>, holds: (value: T) => boolean): number {
  let layer = file.layer;
  for (let i = file.versions.length - 1; i >= 0; i--) {
    const version = file.versions[i] as FoundFile<T>;
    if (!holds(version.value)) break;
    layer = version.layer;
  }
  return layer;
}

