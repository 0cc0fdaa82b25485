/**
 * Every path an image's layers name, interned once into small integers with their parents and children,
 * so that the analyses stack layers over arrays indexed by path (typed arrays of flags, sizes, versions)
 * instead of a tree of objects and maps per layer: a big image has hundreds of thousands of paths, and
 * objects per path per layer made most of an analysis's time garbage collection.
 */
import type { LayerEntries } from './walk.js';

/** The root's id: the path ''. */
export const ROOT = 0;

export class PathIndex {
  /** Ids by path: made as paths are interned, or on the first find of an index made whole (see of). */
  private ids: Map<string, number> | undefined = new Map<string, number>([['', ROOT]]);
  /** Each id's path (slash-separated, no leading slash). */
  paths: string[] = [''];
  parent: Int32Array;
  /** Children as linked lists: an id's first child, and each child's next sibling (-1 ends a list). */
  firstChild: Int32Array;
  nextSibling: Int32Array;
  /** The directory of the last path interned, and its id: a tar lists a directory's entries together. */
  private lastDir = '';
  private lastDirId = ROOT;

  /** An index with room for about `paths` paths. */
  constructor(paths = 64) {
    const room = Math.max(64, paths);
    this.parent = new Int32Array(room).fill(-1);
    this.firstChild = new Int32Array(room).fill(-1);
    this.nextSibling = new Int32Array(room).fill(-1);
  }

  get size(): number {
    return this.paths.length;
  }

  /** An index made whole elsewhere (native/sys's figures): its paths and links by id, as intern would have made them. */
  static of(paths: string[], parent: Int32Array, firstChild: Int32Array, nextSibling: Int32Array): PathIndex {
    const index = new PathIndex(0);
    index.ids = undefined;
    index.paths = paths;
    index.parent = parent;
    index.firstChild = firstChild;
    index.nextSibling = nextSibling;
    return index;
  }

  /** The id of a path, when some layer names it or a path under it. */
  find(path: string): number | undefined {
    this.ids ??= new Map(this.paths.map((p, id) => [p, id]));
    return this.ids.get(path);
  }

  /** The id of a path, interning it and its ancestors when they are new. */
  intern(path: string): number {
    this.ids ??= new Map(this.paths.map((p, id) => [p, id]));
    const known = this.ids.get(path);
    if (known !== undefined) return known;
    const slash = path.lastIndexOf('/');
    let parent: number;
    if (slash === -1) parent = ROOT;
    else if (slash === this.lastDir.length && path.startsWith(this.lastDir)) parent = this.lastDirId;
    else {
      const dir = path.slice(0, slash);
      parent = this.intern(dir);
      this.lastDir = dir;
      this.lastDirId = parent;
    }
    const id = this.paths.length;
    if (id === this.parent.length) this.grow();
    this.paths.push(path);
    this.ids.set(path, id);
    this.parent[id] = parent;
    this.nextSibling[id] = this.firstChild[parent] as number;
    this.firstChild[parent] = id;
    return id;
  }

  private grow(): void {
    const widen = (from: Int32Array): Int32Array => {
      const to = new Int32Array(from.length * 2).fill(-1);
      to.set(from);
      return to;
    };
    this.parent = widen(this.parent);
    this.firstChild = widen(this.firstChild);
    this.nextSibling = widen(this.nextSibling);
  }
}

/** The layers' paths interned: for each layer, each entry's id of its path and of its own name (they differ for whiteouts and opaque markers). */
export interface IndexedLayers {
  readonly index: PathIndex;
  readonly pathIds: readonly Int32Array[];
  readonly nameIds: readonly Int32Array[];
}

export function indexLayers(layers: readonly LayerEntries[]): IndexedLayers {
  // Nearly every path is some entry's name; the few others (directories no layer lists) grow the index.
  const index = new PathIndex(layers.reduce((sum, entries) => sum + entries.length, 1));
  const pathIds: Int32Array[] = [];
  const nameIds: Int32Array[] = [];
  for (const entries of layers) {
    const paths = new Int32Array(entries.length);
    const names = new Int32Array(entries.length);
    const { targets } = entries;
    for (let i = 0; i < entries.length; i++) {
      const name = index.intern(entries.names[i] as string);
      names[i] = name;
      const target = targets.size === 0 ? undefined : targets.get(i);
      paths[i] = target === undefined ? name : index.intern(target);
    }
    pathIds.push(paths);
    nameIds.push(names);
  }
  return { index, pathIds, nameIds };
}

/**
 * Visits `id`'s descendants that `present` holds (not `id` itself). A path absent there has no present
 * descendant (removing a path removes its subtree), so absent ones are not descended into.
 */
export function forEachPresentBelow(index: PathIndex, present: Uint8Array, id: number, visit: (id: number) => void): void {
  const stack: number[] = [];
  for (let child = index.firstChild[id] as number; child !== -1; child = index.nextSibling[child] as number) stack.push(child);
  while (stack.length > 0) {
    const next = stack.pop() as number;
    if (present[next] === 0) continue;
    visit(next);
    for (let child = index.firstChild[next] as number; child !== -1; child = index.nextSibling[child] as number) stack.push(child);
  }
}
