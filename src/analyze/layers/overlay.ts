/**
 * The layers stacked as a runtime stacks them (the OCI layer rules: whiteouts and opaque directories hide
 * what is below, an entry replaces what was at its path, a non-directory replaces a whole tree), keeping
 * for every version of every path who wrote it and what became of it. This is what kiln's own figures
 * stand on: bytes that do not survive to the final tree are the ones a user could save.
 */
import { type IndexedLayers, type PathIndex, ROOT, forEachPresentBelow, indexLayers } from './tree.js';
import { KIND, type LayerEntries, type LayerEntry } from './walk.js';

/** One entry of one layer, as a version of its path (an object made on demand: the overlay keeps columns). */
export interface Version {
  readonly layer: number;
  /** The entry's index in its layer's listing. */
  readonly index: number;
  readonly entry: LayerEntry;
  /** The id of the entry's path in the overlay's path index. */
  readonly node: number;
}

/** No version: a version that lives on has no ending, and one deleted no successor. */
export const NONE = -1;

/**
 * The stacked layers, as columns by version number: a version is an entry of a layer that is no whiteout
 * or opaque marker, numbered in layer order (a layer's versions come after those of the layers below).
 * An image has a version per entry, so these are typed arrays rather than an object per version.
 */
export class Overlay {
  constructor(
    /** The paths of the layers, by id. */
    readonly index: PathIndex,
    readonly layers: readonly LayerEntries[],
    /** Each version's layer, entry index in it, and path id. */
    readonly versionLayer: Int32Array,
    readonly versionIndex: Int32Array,
    readonly versionNode: Int32Array,
    /** The layer whose entry replaced or deleted each version (NONE: it is in the final tree). */
    readonly endLayer: Int32Array,
    /** 1 when that entry deleted it (a whiteout, an opaque marker), 0 when it overwrote it. */
    readonly endDeleted: Uint8Array,
    /** The version that took its place when it was overwritten (at its own path or an ancestor's), else NONE. */
    readonly endBy: Int32Array,
    /** The versions that are not in the final tree, in layer order, and the bytes each cost for nothing (a file's, unless a hardlink to it survives; a symlink's target length; else 0). */
    readonly dead: Int32Array,
    readonly deadBytes: Float64Array,
    /** The versions of the final tree that are not directories, in layer order, and the bytes each holds (a file's size, or its file's for a surviving hardlink whose file is gone; a symlink's target length). */
    readonly live: Int32Array,
    readonly liveBytes: Float64Array,
    /** Each layer's content bytes as Docker counts them: files once per inode, symlink targets. */
    readonly layerBytes: readonly number[],
  ) {}

  /** A version's path (no leading slash). */
  path(version: number): string {
    return this.index.paths[this.versionNode[version] as number] as string;
  }

  /** A version's entry kind, as a KIND number. */
  kind(version: number): number {
    return (this.layers[this.versionLayer[version] as number] as LayerEntries).kinds[this.versionIndex[version] as number] as number;
  }

  /** A version's tar header size. */
  size(version: number): number {
    return (this.layers[this.versionLayer[version] as number] as LayerEntries).sizes[this.versionIndex[version] as number] as number;
  }

  version(version: number): Version {
    const layer = this.versionLayer[version] as number;
    const index = this.versionIndex[version] as number;
    return { layer, index, entry: (this.layers[layer] as LayerEntries).entry(index), node: this.versionNode[version] as number };
  }
}

/** The bytes entry `i` holds as Docker counts a layer's size. */
function ownBytes(entries: LayerEntries, i: number): number {
  const kind = entries.kinds[i];
  if (kind === KIND.file) return entries.sizes[i] as number;
  if (kind === KIND.symlink) return Buffer.byteLength(entries.links.get(i) ?? '');
  return 0;
}

/** Stacks the layers (bottom first) and follows every version to its end. */
export function stackLayers(layers: readonly LayerEntries[], indexed: IndexedLayers = indexLayers(layers)): Overlay {
  const { index, pathIds, nameIds } = indexed;
  const n = index.size;
  // The stacked tree, by path id: whether a path is there, and the number of its version (NONE: none).
  const present = new Uint8Array(n);
  present[ROOT] = 1;
  const versionAt = new Int32Array(n).fill(NONE);
  const room = layers.reduce((sum, entries) => sum + entries.length, 0);
  const versionLayer = new Int32Array(room);
  const versionIndex = new Int32Array(room);
  const versionNode = new Int32Array(room);
  const endLayer = new Int32Array(room).fill(NONE);
  const endDeleted = new Uint8Array(room);
  const endBy = new Int32Array(room).fill(NONE);
  let versions = 0;
  const { parent } = index;
  const end = (version: number, layer: number, by: number): void => {
    endLayer[version] = layer;
    endDeleted[version] = by === NONE ? 1 : 0;
    endBy[version] = by;
  };

  /** Ends every version below a path, and takes them out of the tree. */
  const endBelow = (id: number, layer: number, by: number): void => {
    forEachPresentBelow(index, present, id, (below) => {
      const version = versionAt[below] as number;
      if (version !== NONE) end(version, layer, by);
      present[below] = 0;
      versionAt[below] = NONE;
    });
  };

  // Each layer's version numbers by entry index (NONE for whiteouts and opaque markers), for hardlinks.
  const numbers: Int32Array[] = [];
  layers.forEach((entries, layer) => {
    const ids = pathIds[layer] as Int32Array;
    const { kinds } = entries;
    // Whiteouts and opaque markers hide what the layers below have, never what their own layer adds.
    for (let i = 0; i < entries.length; i++) {
      const kind = kinds[i];
      const id = ids[i] as number;
      if (kind === KIND.whiteout) {
        // A whiteout with no name names nothing.
        if (id === ROOT || present[id] === 0) continue;
        endBelow(id, layer, NONE);
        const version = versionAt[id] as number;
        if (version !== NONE) end(version, layer, NONE);
        present[id] = 0;
        versionAt[id] = NONE;
      } else if (kind === KIND.opaque) {
        if (present[id] === 0) continue;
        endBelow(id, layer, NONE);
      }
    }
    const layerNumbers = new Int32Array(entries.length).fill(NONE);
    numbers.push(layerNumbers);
    for (let i = 0; i < entries.length; i++) {
      const kind = kinds[i];
      if (kind === KIND.whiteout || kind === KIND.opaque) continue;
      const id = ids[i] as number;
      const number = versions++;
      versionLayer[number] = layer;
      versionIndex[number] = i;
      versionNode[number] = id;
      layerNumbers[i] = number;
      for (let p = id; p !== -1 && present[p] === 0; p = parent[p] as number) present[p] = 1;
      const old = versionAt[id] as number;
      const isDir = kind === KIND.directory;
      if (old !== NONE && !(isDir && (layers[versionLayer[old] as number] as LayerEntries).kinds[versionIndex[old] as number] === KIND.directory)) end(old, layer, number);
      if (!isDir && index.firstChild[id] !== -1) endBelow(id, layer, number);
      versionAt[id] = number;
    }
  });

  // A file's bytes are spent for nothing only when no hardlink to its inode survives; a surviving link
  // whose file is gone carries the bytes in the final tree.
  const links = new Map<number, number[]>();
  const linked = new Uint8Array(versions);
  layers.forEach((entries, layer) => {
    if (!entries.kinds.subarray(0, entries.length).includes(KIND.hardlink)) return;
    const layerNumbers = numbers[layer] as Int32Array;
    for (const [link, target] of linkTargets(entries, nameIds[layer] as Int32Array, index)) {
      const file = layerNumbers[target] as number;
      const member = layerNumbers[link] as number;
      if (file === NONE || member === NONE) continue;
      const members = links.get(file);
      if (members) members.push(member);
      else links.set(file, [member]);
      linked[member] = 1;
    }
  });
  const layerBytes = layers.map(() => 0);
  const dead = new Int32Array(versions);
  const deadBytes = new Float64Array(versions);
  const live = new Int32Array(versions);
  const liveBytes = new Float64Array(versions);
  let deadCount = 0;
  let liveCount = 0;
  const settle = (number: number, bytes: number): void => {
    if (endLayer[number] !== NONE) {
      dead[deadCount] = number;
      deadBytes[deadCount++] = bytes;
    } else {
      live[liveCount] = number;
      liveBytes[liveCount++] = bytes;
    }
  };
  for (let number = 0; number < versions; number++) {
    const layer = versionLayer[number] as number;
    const entries = layers[layer] as LayerEntries;
    const i = versionIndex[number] as number;
    if (entries.kinds[i] === KIND.directory || linked[number] === 1) continue;
    const bytes = ownBytes(entries, i);
    layerBytes[layer] = (layerBytes[layer] ?? 0) + bytes;
    const members = links.get(number);
    if (!members) {
      settle(number, bytes);
      continue;
    }
    const group = [number, ...members];
    const carrier = group.find((m) => endLayer[m] === NONE) ?? number;
    for (const member of group) settle(member, member === carrier ? bytes : 0);
  }
  return new Overlay(index, layers, versionLayer, versionIndex, versionNode, endLayer, endDeleted, endBy, dead.subarray(0, deadCount), deadBytes.subarray(0, deadCount), live.subarray(0, liveCount), liveBytes.subarray(0, liveCount), layerBytes);
}

/**
 * Hardlinks of a layer grouped with the file they name (within the layer, as tar writes them): for each
 * hardlink's index, the index of its file.
 */
function linkTargets(entries: LayerEntries, nameIds: Int32Array, index: PathIndex): Map<number, number> {
  // The last entry of each name so far, by the name's id.
  const byName = new Map<number, number>();
  const targets = new Map<number, number>();
  for (let i = 0; i < entries.length; i++) {
    if (entries.kinds[i] === KIND.hardlink) {
      const linkId = index.find(entries.links.get(i) ?? '');
      const target = linkId === undefined ? undefined : byName.get(linkId);
      if (target !== undefined) targets.set(i, targets.get(target) ?? target);
    }
    byName.set(nameIds[i] as number, i);
  }
  return targets;
}
