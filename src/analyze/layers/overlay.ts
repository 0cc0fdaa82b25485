/**
 * The layers stacked as a runtime stacks them (the OCI layer rules: whiteouts and opaque directories hide
 * what is below, an entry replaces what was at its path, a non-directory replaces a whole tree), keeping
 * for every version of every path who wrote it and what became of it. This is what kiln's own figures
 * stand on: bytes that do not survive to the final tree are the ones a user could save.
 */
import { type IndexedLayers, type PathIndex, ROOT, forEachPresentBelow, indexLayers } from './tree.js';
import type { LayerEntry } from './walk.js';

/** One entry of one layer, as a version of its path. */
export interface Version {
  readonly layer: number;
  /** The entry's index in its layer's listing. */
  readonly index: number;
  readonly entry: LayerEntry;
  /** The id of the entry's path in the overlay's path index. */
  readonly node: number;
}

export interface Ending {
  /** The layer whose entry replaced or deleted the version. */
  readonly layer: number;
  readonly how: 'overwritten' | 'deleted';
  /** The version that took its place, when it was overwritten (at its own path or an ancestor's). */
  readonly by?: Version;
}

/** A version that is not in the final tree, and the bytes that cost for nothing. */
export interface DeadVersion {
  readonly version: Version;
  readonly ending: Ending;
  /** Content bytes: a file's (unless a hardlink to it survives), a symlink's target length; else 0. */
  readonly bytes: number;
}

/** A path of the final tree that is not a directory, with the bytes it holds. */
export interface LiveFile {
  readonly version: Version;
  /** A file's size (a surviving hardlink carries its file's bytes when the file itself is gone), a symlink's target length. */
  readonly bytes: number;
}

export interface Overlay {
  /** The paths of the layers, by id. */
  readonly index: PathIndex;
  /** In layer order (as are live): a layer's versions come after those of the layers below. */
  readonly dead: readonly DeadVersion[];
  readonly live: readonly LiveFile[];
  /** Each layer's content bytes as Docker counts them: files once per inode, symlink targets. */
  readonly layerBytes: readonly number[];
}

/** The bytes an entry holds as Docker counts a layer's size. */
function ownBytes(entry: LayerEntry): number {
  if (entry.kind === 'file') return entry.size;
  if (entry.kind === 'symlink') return Buffer.byteLength(entry.link ?? '');
  return 0;
}

/** Stacks the layers (bottom first) and follows every version to its end. */
export function stackLayers(layers: readonly (readonly LayerEntry[])[], indexed: IndexedLayers = indexLayers(layers)): Overlay {
  const { index, pathIds, nameIds } = indexed;
  const n = index.size;
  // The stacked tree, by path id: whether a path is there, and the number of its version (-1: none).
  const present = new Uint8Array(n);
  present[ROOT] = 1;
  const versionAt = new Int32Array(n).fill(-1);
  const versions: Version[] = [];
  const endings: (Ending | undefined)[] = [];
  const { parent } = index;

  /** Ends every version below a path, and takes them out of the tree. */
  const endBelow = (id: number, ending: Ending): void => {
    forEachPresentBelow(index, present, id, (below) => {
      const version = versionAt[below] as number;
      if (version !== -1) endings[version] = ending;
      present[below] = 0;
      versionAt[below] = -1;
    });
  };

  // Each layer's version numbers by entry index (-1 for whiteouts and opaque markers), for hardlinks.
  const numbers: Int32Array[] = [];
  layers.forEach((entries, layer) => {
    const ids = pathIds[layer] as Int32Array;
    // Whiteouts and opaque markers hide what the layers below have, never what their own layer adds.
    for (let i = 0; i < entries.length; i++) {
      const kind = (entries[i] as LayerEntry).kind;
      const id = ids[i] as number;
      if (kind === 'whiteout') {
        // A whiteout with no name names nothing.
        if (id === ROOT || present[id] === 0) continue;
        const ending: Ending = { layer, how: 'deleted' };
        endBelow(id, ending);
        const version = versionAt[id] as number;
        if (version !== -1) endings[version] = ending;
        present[id] = 0;
        versionAt[id] = -1;
      } else if (kind === 'opaque') {
        if (present[id] === 0) continue;
        endBelow(id, { layer, how: 'deleted' });
      }
    }
    const layerNumbers = new Int32Array(entries.length).fill(-1);
    numbers.push(layerNumbers);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as LayerEntry;
      if (entry.kind === 'whiteout' || entry.kind === 'opaque') continue;
      const id = ids[i] as number;
      const number = versions.length;
      const version: Version = { layer, index: i, entry, node: id };
      versions.push(version);
      endings.push(undefined);
      layerNumbers[i] = number;
      for (let p = id; p !== -1 && present[p] === 0; p = parent[p] as number) present[p] = 1;
      const old = versionAt[id] as number;
      const isDir = entry.kind === 'directory';
      if (old !== -1 && !(isDir && (versions[old] as Version).entry.kind === 'directory')) endings[old] = { layer, how: 'overwritten', by: version };
      if (!isDir && index.firstChild[id] !== -1) endBelow(id, { layer, how: 'overwritten', by: version });
      versionAt[id] = number;
    }
  });

  // A file's bytes are spent for nothing only when no hardlink to its inode survives; a surviving link
  // whose file is gone carries the bytes in the final tree.
  const links = new Map<number, number[]>();
  const linked = new Uint8Array(versions.length);
  layers.forEach((entries, layer) => {
    if (!entries.some((entry) => entry.kind === 'hardlink')) return;
    const layerNumbers = numbers[layer] as Int32Array;
    for (const [link, target] of linkTargets(entries, nameIds[layer] as Int32Array, index)) {
      const file = layerNumbers[target] as number;
      const member = layerNumbers[link] as number;
      if (file === -1 || member === -1) continue;
      const members = links.get(file);
      if (members) members.push(member);
      else links.set(file, [member]);
      linked[member] = 1;
    }
  });
  const layerBytes = layers.map(() => 0);
  const dead: DeadVersion[] = [];
  const live: LiveFile[] = [];
  const settle = (number: number, bytes: number): void => {
    const version = versions[number] as Version;
    const ending = endings[number];
    if (ending) dead.push({ version, ending, bytes });
    else live.push({ version, bytes });
  };
  for (let number = 0; number < versions.length; number++) {
    const file = versions[number] as Version;
    if (file.entry.kind === 'directory' || linked[number] === 1) continue;
    const bytes = ownBytes(file.entry);
    layerBytes[file.layer] = (layerBytes[file.layer] ?? 0) + bytes;
    const members = links.get(number);
    if (!members) {
      settle(number, bytes);
      continue;
    }
    const group = [number, ...members];
    const carrier = group.find((m) => endings[m] === undefined) ?? number;
    for (const member of group) settle(member, member === carrier ? bytes : 0);
  }
  return { index, dead, live, layerBytes };
}

/**
 * Hardlinks of a layer grouped with the file they name (within the layer, as tar writes them): for each
 * hardlink's index, the index of its file.
 */
function linkTargets(entries: readonly LayerEntry[], nameIds: Int32Array, index: PathIndex): Map<number, number> {
  // The last entry of each name so far, by the name's id.
  const byName = new Map<number, number>();
  const targets = new Map<number, number>();
  entries.forEach((entry, i) => {
    if (entry.kind === 'hardlink') {
      const linkId = index.find(entry.link ?? '');
      const target = linkId === undefined ? undefined : byName.get(linkId);
      if (target !== undefined) targets.set(i, targets.get(target) ?? target);
    }
    byName.set(nameIds[i] as number, i);
  });
  return targets;
}
