/**
 * kiln's own figures, what dive's users ask for: the bytes a user would actually save (reclaimable: every
 * version of a path that a later layer replaced or deleted), a score that counts the whole base image
 * as base (not only layer 0), the wasted paths, and the largest files and directories of the final tree.
 */
import type { Overlay } from './layers/overlay.js';
import { ROOT } from './layers/tree.js';

export interface WastedPath {
  /** With a leading slash. */
  readonly path: string;
  readonly bytes: number;
  /** The layer that wrote the bytes. */
  readonly layer: number;
  /** The layer that replaced or deleted them. */
  readonly endedBy: number;
  readonly how: 'overwritten' | 'deleted';
}

export interface SizedPath {
  readonly path: string;
  readonly bytes: number;
  /** For a file: the layer that wrote it. */
  readonly layer?: number;
}

export interface LayerWaste {
  /** Content bytes as Docker counts a layer's size. */
  readonly contentBytes: number;
  /** Bytes this layer wrote that a later layer replaced or deleted. */
  readonly reclaimableBytes: number;
  /** Bytes of earlier layers this layer replaced or deleted. */
  readonly removedBytes: number;
}

export interface KilnFigures {
  /** Σ content bytes of all layers: the image's size as Docker reports it. */
  readonly sizeBytes: number;
  readonly baseSizeBytes: number;
  readonly userSizeBytes: number;
  /** Bytes written that are not in the final tree: replaced (all but the surviving copy) or deleted. */
  readonly reclaimableBytes: number;
  /** Of those, the ones the image's own layers (not its base's) wrote. */
  readonly userReclaimableBytes: number;
  /** 1 − userReclaimable / userSize: the share of what the image adds to its base that it keeps; undefined with nothing added. */
  readonly efficiencyScore: number | undefined;
  readonly layers: readonly LayerWaste[];
  /** Made when first read (see wastedOrder). */
  readonly wasted: readonly WastedPath[];
  /** The wasted versions' places in the overlay's dead, in the order of `wasted`. */
  readonly wastedOrder: ArrayLike<number>;
  readonly largestFiles: readonly SizedPath[];
  readonly largestDirectories: readonly SizedPath[];
}

const TOP = 20;

/**
 * The `n` first in `order` of the numbers below `count` that `counts` takes, without sorting them all:
 * kept sorted as they come.
 */
function firstOf(count: number, counts: (item: number) => boolean, n: number, order: (a: number, b: number) => number): number[] {
  const top: number[] = [];
  for (let item = 0; item < count; item++) {
    if (!counts(item) || (top.length === n && order(item, top[n - 1] as number) >= 0)) continue;
    let at = top.length;
    while (at > 0 && order(item, top[at - 1] as number) < 0) at--;
    top.splice(at, 0, item);
    if (top.length > n) top.pop();
  }
  return top;
}

/** Bytes of live files summed into every directory above them (the root excluded), by path id. */
function directorySizes(overlay: Overlay): Float64Array {
  const { parent } = overlay.index;
  const { live, liveBytes, versionNode } = overlay;
  const sizes = new Float64Array(overlay.index.size);
  for (let k = 0; k < live.length; k++) {
    const bytes = liveBytes[k] as number;
    if (bytes === 0) continue;
    for (let p = parent[versionNode[live[k] as number] as number] as number; p > ROOT; p = parent[p] as number) sizes[p] = (sizes[p] as number) + bytes;
  }
  return sizes;
}

/**
 * What native/sys's figures computes of kiln's figures: the wasted versions' places in dead in the
 * wasted list's order, the bytes each layer wrote that were wasted and removed of the layers below, the
 * largest files (places in live) and directories (path ids, with their bytes).
 */
export interface SortedWaste {
  readonly order: Int32Array;
  readonly reclaimable: Float64Array;
  readonly removed: Float64Array;
  readonly largestFiles: Int32Array;
  readonly largestDirectories: Int32Array;
  readonly largestDirectoryBytes: Float64Array;
}

/** kiln's figures of the stacked layers; `sorted`, when given, are their wasted versions, then not sorted and summed here. */
export function kilnFigures(overlay: Overlay, baseLayers: number, sorted?: SortedWaste): KilnFigures {
  const layers = overlay.layerBytes.map((contentBytes, layer) => ({ contentBytes, reclaimableBytes: sorted?.reclaimable[layer] ?? 0, removedBytes: sorted?.removed[layer] ?? 0 }));
  let reclaimable = 0;
  let userReclaimable = 0;
  const { dead, deadBytes, versionLayer, endLayer, endDeleted } = overlay;
  // The wasted versions (by their place in dead), most bytes first, then by path.
  let order: ArrayLike<number>;
  if (sorted) {
    order = sorted.order;
    // Sums of whole numbers of bytes: the same in any order.
    layers.forEach((layer, index) => {
      reclaimable += layer.reclaimableBytes;
      if (index >= baseLayers) userReclaimable += layer.reclaimableBytes;
    });
  } else {
    const wastedVersions: number[] = [];
    for (let k = 0; k < dead.length; k++) {
      const bytes = deadBytes[k] as number;
      if (bytes === 0) continue;
      const version = dead[k] as number;
      const layer = versionLayer[version] as number;
      const endedBy = endLayer[version] as number;
      reclaimable += bytes;
      if (layer >= baseLayers) userReclaimable += bytes;
      const writer = layers[layer];
      const ender = layers[endedBy];
      if (writer) writer.reclaimableBytes += bytes;
      if (ender) ender.removedBytes += bytes;
      wastedVersions.push(k);
    }
    order = wastedVersions.sort((a, b) => {
      const more = (deadBytes[b] as number) - (deadBytes[a] as number);
      if (more !== 0) return more;
      const pathA = overlay.path(dead[a] as number);
      const pathB = overlay.path(dead[b] as number);
      return pathA < pathB ? -1 : pathA > pathB ? 1 : 0;
    });
  }
  // Made when first read: a big image wastes tens of thousands of paths, and its JSON document is written from the order.
  let wasted: WastedPath[] | undefined;
  const wastedPaths = (): WastedPath[] =>
    (wasted ??= Array.from(order, (k): WastedPath => {
      const version = dead[k] as number;
      return { path: `/${overlay.path(version)}`, bytes: deadBytes[k] as number, layer: versionLayer[version] as number, endedBy: endLayer[version] as number, how: endDeleted[version] === 1 ? 'deleted' : 'overwritten' };
    }));
  const sizeBytes = overlay.layerBytes.reduce((sum, n) => sum + n, 0);
  const baseSizeBytes = overlay.layerBytes.slice(0, baseLayers).reduce((sum, n) => sum + n, 0);
  const userSizeBytes = sizeBytes - baseSizeBytes;
  // The paths compare as they would with their leading slash; only the few kept are written out.
  const { live, liveBytes } = overlay;
  const { paths } = overlay.index;
  let files: ArrayLike<number>;
  let directories: { id: number; bytes: number }[];
  if (sorted) {
    files = sorted.largestFiles;
    directories = Array.from(sorted.largestDirectories, (id, d) => ({ id, bytes: sorted.largestDirectoryBytes[d] as number }));
  } else {
    files = firstOf(live.length, (k) => (liveBytes[k] as number) > 0, TOP, (a, b) => {
      const more = (liveBytes[b] as number) - (liveBytes[a] as number);
      if (more !== 0) return more;
      const pathA = overlay.path(live[a] as number);
      const pathB = overlay.path(live[b] as number);
      return pathA < pathB ? -1 : pathA > pathB ? 1 : 0;
    });
    const sizes = directorySizes(overlay);
    const top = firstOf(sizes.length, (id) => (sizes[id] as number) > 0, TOP, (a, b) => (sizes[b] as number) - (sizes[a] as number) || ((paths[a] as string) < (paths[b] as string) ? -1 : (paths[a] as string) > (paths[b] as string) ? 1 : 0));
    directories = top.map((id) => ({ id, bytes: sizes[id] as number }));
  }
  return {
    sizeBytes,
    baseSizeBytes,
    userSizeBytes,
    reclaimableBytes: reclaimable,
    userReclaimableBytes: userReclaimable,
    efficiencyScore: userSizeBytes > 0 ? 1 - userReclaimable / userSizeBytes : undefined,
    layers,
    get wasted() {
      return wastedPaths();
    },
    wastedOrder: order,
    largestFiles: Array.from(files, (k) => ({ path: `/${overlay.path(live[k] as number)}`, bytes: liveBytes[k] as number, layer: versionLayer[live[k] as number] as number })),
    largestDirectories: directories.map(({ id, bytes }) => ({ path: `/${paths[id] as string}`, bytes })),
  };
}

/** A node of the final tree for a treemap: directories with children, files with the layer that wrote them. */
export interface TreeNode {
  readonly name: string;
  bytes: number;
  layer?: number;
  children?: TreeNode[];
}

/**
 * The final tree by size, cut to about `limit` nodes for a page to draw: in each directory, what is
 * smaller than `total / limit` is gathered into one node, coloured by the layer that wrote most of it.
 */
export function sizeTree(overlay: Overlay, limit = 2000): TreeNode {
  const root: TreeNode = { name: '/', bytes: 0, children: [] };
  const byPath = new Map<string, TreeNode>([['', root]]);
  const dirOf = (path: string): TreeNode => {
    const known = byPath.get(path);
    if (known) return known;
    const slash = path.lastIndexOf('/');
    const parent = dirOf(slash === -1 ? '' : path.slice(0, slash));
    const node: TreeNode = { name: path.slice(slash + 1), bytes: 0, children: [] };
    parent.children?.push(node);
    byPath.set(path, node);
    return node;
  };
  const { live, liveBytes, versionLayer } = overlay;
  for (let k = 0; k < live.length; k++) {
    const bytes = liveBytes[k] as number;
    if (bytes === 0) continue;
    const path = overlay.path(live[k] as number);
    const slash = path.lastIndexOf('/');
    dirOf(slash === -1 ? '' : path.slice(0, slash)).children?.push({ name: path.slice(slash + 1), bytes, layer: versionLayer[live[k] as number] });
  }
  const total = (node: TreeNode): number => {
    if (node.children) node.bytes = node.children.reduce((sum, child) => sum + total(child), 0);
    return node.bytes;
  };
  total(root);
  const floor = root.bytes / limit;
  const prune = (node: TreeNode): void => {
    if (!node.children) return;
    const kept: TreeNode[] = [];
    const small = new Map<number, number>();
    let smallBytes = 0;
    let smallCount = 0;
    for (const child of node.children) {
      if (child.bytes >= floor) {
        prune(child);
        kept.push(child);
      } else {
        smallBytes += child.bytes;
        smallCount++;
        const layer = child.layer ?? dominantLayer(child);
        small.set(layer, (small.get(layer) ?? 0) + child.bytes);
      }
    }
    if (smallCount > 0) {
      const layer = [...small].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
      kept.push({ name: smallCount === 1 ? (node.children.find((c) => c.bytes < floor)?.name ?? '') : `(${smallCount} smaller)`, bytes: smallBytes, layer });
    }
    kept.sort((a, b) => b.bytes - a.bytes);
    node.children = kept;
  };
  prune(root);
  return root;
}

/** The layer that wrote most of a subtree's bytes. */
function dominantLayer(node: TreeNode): number {
  const bytes = new Map<number, number>();
  const stack = [node];
  for (let next = stack.pop(); next; next = stack.pop()) {
    if (next.children) stack.push(...next.children);
    else if (next.layer !== undefined) bytes.set(next.layer, (bytes.get(next.layer) ?? 0) + next.bytes);
  }
  return [...bytes].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
}
