/**
 * dive's figures, computed as dive computes them, so that its users can switch and keep their numbers
 * and CI thresholds. Each layer is a tree of cleaned paths; opaque-directory markers drop out, and `.wh.X`
 * is a whiteout entry for path X. Only leaves count (files, symlinks, empty directories, whiteouts): a
 * leaf's size is its tar header's size, and a whiteout's is the total size under X in the layers below
 * stacked together when X was a directory there, else 0. Per path over all layers: cum = Σ size, min =
 * the smallest, count = the layers it occurs in. The score is Σ min / Σ cum; the wasted bytes are Σ cum
 * over paths that occur in two layers or more (the surviving copy included).
 */
import { type TreeNode, lookupPath } from './tree.js';
import type { LayerEntry } from './walk.js';

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

/** A node of the tree of the layers below, stacked as dive stacks them: whiteouts remove, markers are ignored. */
interface StackNode extends TreeNode<StackNode> {
  size: number;
  dir: boolean;
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

class StackedTree {
  private readonly root: StackNode = { children: undefined, size: 0, dir: true };

  /** The total size under `path` when it is a directory here, else 0. */
  sizeUnder(path: string): number {
    const node = lookupPath(this.root, path)?.node;
    if (!node || !(node.dir || node.children)) return 0;
    let total = 0;
    const stack = [node];
    for (let next = stack.pop(); next; next = stack.pop()) {
      total += next.size;
      if (next.children) stack.push(...next.children.values());
    }
    return total;
  }

  /** Stacks a layer on top: its whiteouts remove what they name, its other entries are added or replace. */
  apply(entries: readonly LayerEntry[]): void {
    for (const entry of entries) {
      if (entry.kind !== 'whiteout') continue;
      const found = lookupPath(this.root, entry.path);
      found?.parent.children?.delete(found.name);
    }
    for (const entry of entries) {
      if (entry.kind === 'whiteout' || entry.kind === 'opaque') continue;
      let node = this.root;
      for (const name of entry.path.split('/')) {
        node.children ??= new Map();
        let child = node.children.get(name);
        if (!child) {
          child = { children: undefined, size: 0, dir: true };
          node.children.set(name, child);
        }
        node = child;
      }
      // As dive's AddPath: the payload is replaced, the children stay.
      node.size = entry.size;
      node.dir = entry.kind === 'directory';
    }
  }
}

/** dive's figures of an image's layers (bottom first). */
export function diveFigures(layers: readonly (readonly LayerEntry[])[]): DiveFigures {
  const paths = new Map<string, { cum: number; min: number; count: number }>();
  const stacked = new StackedTree();
  const layerSizes: number[] = [];
  for (const entries of layers) {
    let layerSize = 0;
    // The layer's own tree, by name: the last entry of a name wins; an opaque marker leaves its directory.
    const nodes = new Map<string, LayerEntry | undefined>();
    for (const entry of entries) {
      layerSize += entry.size;
      if (entry.kind !== 'opaque') nodes.set(entry.name, entry);
      else if (entry.path !== '' && !nodes.has(entry.path)) nodes.set(entry.path, undefined);
    }
    layerSizes.push(layerSize);
    // Every proper ancestor of a node has a child, so is no leaf. A chain stops at an ancestor seen
    // before: its own ancestors were added with it.
    const inner = new Set<string>();
    for (const name of nodes.keys()) {
      for (let p = parentOf(name); p !== '' && !inner.has(p); p = parentOf(p)) inner.add(p);
    }
    for (const [name, entry] of nodes) {
      if (inner.has(name)) continue;
      const whiteout = entry?.kind === 'whiteout';
      const size = whiteout ? stacked.sizeUnder(entry.path) : (entry?.size ?? 0);
      const key = whiteout ? entry.path : name;
      const known = paths.get(key);
      if (known) {
        known.cum += size;
        known.min = Math.min(known.min, size);
        known.count++;
      } else paths.set(key, { cum: size, min: size, count: 1 });
    }
    stacked.apply(entries);
  }
  let sumMin = 0;
  let sumCum = 0;
  let wasted = 0;
  const fileReference: DiveFileReference[] = [];
  for (const [path, { cum, min, count }] of paths) {
    sumMin += min;
    sumCum += cum;
    if (count >= 2) {
      wasted += cum;
      fileReference.push({ count, sizeBytes: cum, file: `/${path}` });
    }
  }
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
