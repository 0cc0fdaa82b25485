/**
 * Every path an image's layers name, interned once into small integers with their parents and children,
 * so that the analyses stack layers over arrays indexed by path (typed arrays of flags, sizes, versions)
 * instead of a tree of objects and maps per layer: a big image has hundreds of thousands of paths, and
 * objects per path per layer made most of an analysis's time garbage collection.
 */
import type { LayerEntry } from './walk.js';

/** The root's id: the path ''. */
export const ROOT = 0;

export class PathIndex {
  private readonly ids = new Map<string, number>([['', ROOT]]);
  /** Each id's path (slash-separated, no leading slash). */
  readonly paths: string[] = [''];
  parent: Int32Array = new Int32Array(64).fill(-1);
  /** Children as linked lists: an id's first child, and each child's next sibling (-1 ends a list). */
  firstChild: Int32Array = new Int32Array(64).fill(-1);
  nextSibling: Int32Array = new Int32Array(64).fill(-1);

  get size(): number {
    return this.paths.length;
  }

  /** The id of a path, when some layer names it or a path under it. */
  find(path: string): number | undefined {
    return this.ids.get(path);
  }

  /** The id of a path, interning it and its ancestors when they are new. */
  intern(path: string): number {
    const known = this.ids.get(path);
    if (known !== undefined) return known;
    const slash = path.lastIndexOf('/');
    const parent = slash === -1 ? ROOT : this.intern(path.slice(0, slash));
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

export function indexLayers(layers: readonly (readonly LayerEntry[])[]): IndexedLayers {
  const index = new PathIndex();
  const pathIds: Int32Array[] = [];
  const nameIds: Int32Array[] = [];
  for (const entries of layers) {
    const paths = new Int32Array(entries.length);
    const names = new Int32Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as LayerEntry;
      const name = index.intern(entry.name);
      names[i] = name;
      paths[i] = entry.path === entry.name ? name : index.intern(entry.path);
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
