/**
 * dive's figures, computed as dive computes them, so that its users can switch and keep their numbers
 * and CI thresholds. Each layer is a tree of cleaned paths; opaque-directory markers drop out, and `.wh.X`
 * is a whiteout entry for path X. Only leaves count (files, symlinks, empty directories, whiteouts): a
 * leaf's size is its tar header's size, and a whiteout's is the total size under X in the layers below
 * stacked together when X was a directory there, else 0. Per path over all layers: cum = Σ size, min =
 * the smallest, count = the layers it occurs in. The score is Σ min / Σ cum; the wasted bytes are Σ cum
 * over paths that occur in two layers or more (the surviving copy included).
 */
import { type IndexedLayers, type PathIndex, ROOT, forEachPresentBelow, indexLayers } from './tree.js';
import { KIND, type LayerEntries } from './walk.js';

export interface DiveFileReference {
  readonly count: number;
  readonly sizeBytes: number;
  /** The path with a leading slash, as dive prints it. */
  readonly file: string;
}

export interface DiveFigures {
  /** Every layer's header sizes, summed. */
  readonly sizeBytes: number;
  /** The same without layer 0, which dive takes for the base image. */
  readonly userSizeBytes: number;
  readonly layerSizes: readonly number[];
  readonly inefficientBytes: number;
  /** Σ min / Σ cum; 1 when Σ cum is 0. */
  readonly efficiencyScore: number;
  /** inefficientBytes / userSizeBytes; undefined where dive divides by zero (no bytes beyond layer 0). */
  readonly userWastedRatio: number | undefined;
  /** Paths in two layers or more, largest cum first. */
  readonly fileReference: readonly DiveFileReference[];
}

/**
 * The tree of the layers below, stacked as dive stacks them (whiteouts remove, opaque markers are
 * ignored), as flags and sizes by path id. `branched` is whether a node was ever given a child while it
 * was there (dive's tree keeps a node's child map once made, emptied or not, and counts such a node as a
 * directory).
 */
class StackedTree {
  private readonly present: Uint8Array;
  private readonly dir: Uint8Array;
  private readonly branched: Uint8Array;
  private readonly size: Float64Array;

  constructor(private readonly index: PathIndex) {
    const n = index.size;
    this.present = new Uint8Array(n);
    this.dir = new Uint8Array(n);
    this.branched = new Uint8Array(n);
    this.size = new Float64Array(n);
    this.present[ROOT] = 1;
    this.dir[ROOT] = 1;
  }

  /** The total size under `id` when it is a directory here, else 0. */
  sizeUnder(id: number): number {
    // The root is no whiteout's target: a whiteout with no name names nothing.
    if (id === ROOT || this.present[id] === 0 || (this.dir[id] === 0 && this.branched[id] === 0)) return 0;
    let total = this.size[id] as number;
    forEachPresentBelow(this.index, this.present, id, (below) => {
      total += this.size[below] as number;
    });
    return total;
  }

  /** Stacks a layer on top: its whiteouts remove what they name, its other entries are added or replace. */
  apply(entries: LayerEntries, ids: Int32Array): void {
    const { present } = this;
    const { kinds, sizes } = entries;
    for (let i = 0; i < entries.length; i++) {
      const id = ids[i] as number;
      if (kinds[i] !== KIND.whiteout || id === ROOT || present[id] === 0) continue;
      present[id] = 0;
      forEachPresentBelow(this.index, present, id, (below) => {
        present[below] = 0;
      });
    }
    const { parent } = this.index;
    const chain: number[] = [];
    for (let i = 0; i < entries.length; i++) {
      const kind = kinds[i] as number;
      if (kind === KIND.whiteout || kind === KIND.opaque) continue;
      const id = ids[i] as number;
      if (id === ROOT) continue;
      // The ancestors that are not there, or never had a child, from the nearest up.
      chain.length = 0;
      for (let p = parent[id] as number; p !== -1 && (present[p] === 0 || this.branched[p] === 0); p = parent[p] as number) chain.push(p);
      for (let c = chain.length - 1; c >= 0; c--) {
        const p = chain[c] as number;
        if (present[p] === 0) this.add(p);
        this.branched[p] = 1;
      }
      if (present[id] === 0) this.add(id);
      // As dive's AddPath: the payload is replaced, the children stay.
      this.size[id] = sizes[i] as number;
      this.dir[id] = kind === KIND.directory ? 1 : 0;
    }
  }

  /** A node made afresh: a directory of size 0 with no children. */
  private add(id: number): void {
    this.present[id] = 1;
    this.dir[id] = 1;
    this.branched[id] = 0;
    this.size[id] = 0;
  }
}

/** dive's figures of an image's layers (bottom first). */
export function diveFigures(layers: readonly LayerEntries[], indexed: IndexedLayers = indexLayers(layers)): DiveFigures {
  const { index, pathIds, nameIds } = indexed;
  const n = index.size;
  // Per path over all layers: cum, min and count, and the paths in the order they were first seen.
  const cum = new Float64Array(n);
  const min = new Float64Array(n);
  const count = new Int32Array(n);
  const seen = new Int32Array(n);
  let seenCount = 0;
  // Only a layer below another has whiteouts to weigh: a one-layer image needs no stacked tree.
  const stacked = layers.length > 1 ? new StackedTree(index) : undefined;
  const layerSizes: number[] = [];
  // Per layer, by path id: the layer that last put the path in its own tree, and which entry (-1: an
  // opaque marker's directory, no entry); the layer that found the path to be an ancestor.
  const nodeLayer = new Int32Array(n).fill(-1);
  const nodeEntry = new Int32Array(n);
  const innerLayer = new Int32Array(n).fill(-1);
  const { parent } = index;
  // A layer's own tree's nodes (its names, and its opaque markers' directories), in the order first named.
  const nodes = new Int32Array(layers.reduce((most, entries) => Math.max(most, entries.length), 0));
  layers.forEach((entries, layer) => {
    let layerSize = 0;
    const names = nameIds[layer] as Int32Array;
    const paths = pathIds[layer] as Int32Array;
    // The layer's own tree, by name: the last entry of a name wins; an opaque marker leaves its directory.
    let nodeCount = 0;
    const { kinds, sizes } = entries;
    for (let i = 0; i < entries.length; i++) {
      layerSize += sizes[i] as number;
      if (kinds[i] !== KIND.opaque) {
        const id = names[i] as number;
        if (nodeLayer[id] !== layer) nodes[nodeCount++] = id;
        nodeLayer[id] = layer;
        nodeEntry[id] = i;
      } else if (paths[i] !== ROOT) {
        const id = paths[i] as number;
        if (nodeLayer[id] === layer) continue;
        nodes[nodeCount++] = id;
        nodeLayer[id] = layer;
        nodeEntry[id] = -1;
      }
    }
    layerSizes.push(layerSize);
    // Every proper ancestor of a node has a child, so is no leaf. A chain stops at an ancestor seen
    // before: its own ancestors were marked with it.
    for (let k = 0; k < nodeCount; k++) {
      const id = nodes[k] as number;
      for (let p = parent[id] as number; p !== ROOT && innerLayer[p] !== layer; p = parent[p] as number) innerLayer[p] = layer;
    }
    for (let k = 0; k < nodeCount; k++) {
      const id = nodes[k] as number;
      if (innerLayer[id] === layer) continue;
      const at = nodeEntry[id] as number;
      const whiteout = at !== -1 && kinds[at] === KIND.whiteout;
      const key = whiteout ? (paths[at] as number) : id;
      const size = whiteout ? (stacked?.sizeUnder(key) ?? 0) : at === -1 ? 0 : (sizes[at] as number);
      if (count[key] === 0) {
        seen[seenCount++] = key;
        cum[key] = size;
        min[key] = size;
      } else {
        cum[key] = (cum[key] as number) + size;
        if (size < (min[key] as number)) min[key] = size;
      }
      count[key] = (count[key] as number) + 1;
    }
    // The stacked tree weighs the whiteouts of the layers above: the top layer has none above it.
    if (layer < layers.length - 1) stacked?.apply(entries, paths);
  });
  let sumMin = 0;
  let sumCum = 0;
  let wasted = 0;
  const references: number[] = [];
  for (let k = 0; k < seenCount; k++) {
    const id = seen[k] as number;
    sumMin += min[id] as number;
    sumCum += cum[id] as number;
    if ((count[id] as number) >= 2) {
      wasted += cum[id] as number;
      references.push(id, count[id] as number, cum[id] as number);
    }
  }
  return diveResult(layerSizes, sumMin, sumCum, wasted, references, index.paths);
}

/**
 * dive's figures from their sums: each layer's size, Σ min, Σ cum and the wasted bytes, and for each path in
 * two layers or more (in the order first seen) its id, count and cum, three numbers after another.
 */
export function diveResult(layerSizes: readonly number[], sumMin: number, sumCum: number, wasted: number, references: ArrayLike<number>, paths: readonly string[]): DiveFigures {
  const fileReference: DiveFileReference[] = [];
  for (let k = 0; k < references.length; k += 3) fileReference.push({ count: references[k + 1] as number, sizeBytes: references[k + 2] as number, file: `/${paths[references[k] as number] as string}` });
  fileReference.sort((a, b) => b.sizeBytes - a.sizeBytes || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const sizeBytes = layerSizes.reduce((sum, size) => sum + size, 0);
  const userSizeBytes = sizeBytes - (layerSizes[0] ?? 0);
  return {
    sizeBytes,
    userSizeBytes,
    layerSizes,
    inefficientBytes: wasted,
    efficiencyScore: sumCum === 0 ? 1 : sumMin / sumCum,
    userWastedRatio: userSizeBytes > 0 ? wasted / userSizeBytes : undefined,
    fileReference,
  };
}
