/**
 * The layers stacked as a runtime stacks them (the OCI layer rules: whiteouts and opaque directories hide
 * what is below, an entry replaces what was at its path, a non-directory replaces a whole tree), keeping
 * for every version of every path who wrote it and what became of it. This is what kiln's own figures
 * stand on: bytes that do not survive to the final tree are the ones a user could save.
 */
import { type TreeNode, lookupPath } from './tree.js';
import type { LayerEntry } from './walk.js';

/** One entry of one layer, as a version of its path. */
export interface Version {
  readonly layer: number;
  /** The entry's index in its layer's listing. */
  readonly index: number;
  readonly entry: LayerEntry;
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
  readonly dead: readonly DeadVersion[];
  readonly live: readonly LiveFile[];
  /** Each layer's content bytes as Docker counts them: files once per inode, symlink targets. */
  readonly layerBytes: readonly number[];
}

interface Node extends TreeNode<Node> {
  version: Version | undefined;
}

/** The bytes an entry holds as Docker counts a layer's size. */
function ownBytes(entry: LayerEntry): number {
  if (entry.kind === 'file') return entry.size;
  if (entry.kind === 'symlink') return Buffer.byteLength(entry.link ?? '');
  return 0;
}

/**
 * Hardlinks of a layer grouped with the file they name (within the layer, as tar writes them): for each
 * hardlink's index, the index of its file.
 */
function linkTargets(entries: readonly LayerEntry[]): Map<number, number> {
  const byName = new Map<string, number>();
  const targets = new Map<number, number>();
  entries.forEach((entry, index) => {
    if (entry.kind === 'hardlink') {
      const target = byName.get(entry.link ?? '');
      if (target !== undefined) targets.set(index, targets.get(target) ?? target);
    }
    byName.set(entry.name, index);
  });
  return targets;
}

/** Stacks the layers (bottom first) and follows every version to its end. */
export function stackLayers(layers: readonly (readonly LayerEntry[])[]): Overlay {
  const root: Node = { children: undefined, version: undefined };
  const endings = new Map<Version, Ending>();
  const versions: Version[] = [];

  /** Ends every version in a subtree (the node's own too, unless `below`). */
  const end = (node: Node, ending: Ending, below = false): void => {
    const stack: Node[] = below ? [...(node.children?.values() ?? [])] : [node];
    for (let next = stack.pop(); next; next = stack.pop()) {
      if (next.version) endings.set(next.version, ending);
      if (next.children) stack.push(...next.children.values());
    }
  };

  layers.forEach((entries, layer) => {
    // Whiteouts and opaque markers hide what the layers below have, never what their own layer adds.
    for (const entry of entries) {
      if (entry.kind === 'whiteout') {
        const found = lookupPath(root, entry.path);
        if (!found?.node) continue;
        end(found.node, { layer, how: 'deleted' });
        found.parent.children?.delete(found.name);
      } else if (entry.kind === 'opaque') {
        const node = entry.path === '' ? root : lookupPath(root, entry.path)?.node;
        if (!node) continue;
        end(node, { layer, how: 'deleted' }, true);
        node.children = undefined;
      }
    }
    entries.forEach((entry, index) => {
      if (entry.kind === 'whiteout' || entry.kind === 'opaque') return;
      const version: Version = { layer, index, entry };
      versions.push(version);
      let node = root;
      for (const name of entry.path.split('/')) {
        node.children ??= new Map();
        let child = node.children.get(name);
        if (!child) {
          child = { children: undefined, version: undefined };
          node.children.set(name, child);
        }
        node = child;
      }
      const old = node.version;
      const isDir = entry.kind === 'directory';
      if (old && !(isDir && old.entry.kind === 'directory')) endings.set(old, { layer, how: 'overwritten', by: version });
      if (!isDir && node.children) {
        end(node, { layer, how: 'overwritten', by: version }, true);
        node.children = undefined;
      }
      node.version = version;
    });
  });

  // A file's bytes are spent for nothing only when no hardlink to its inode survives; a surviving link
  // whose file is gone carries the bytes in the final tree.
  const byLayer: Version[][] = layers.map(() => []);
  for (const version of versions) (byLayer[version.layer] as Version[])[version.index] = version;
  const links = new Map<Version, Version[]>();
  const linked = new Set<Version>();
  layers.forEach((entries, layer) => {
    for (const [link, target] of linkTargets(entries)) {
      const file = byLayer[layer]?.[target];
      const member = byLayer[layer]?.[link];
      if (!file || !member) continue;
      links.set(file, [...(links.get(file) ?? []), member]);
      linked.add(member);
    }
  });
  const layerBytes = layers.map(() => 0);
  const dead: DeadVersion[] = [];
  const live: LiveFile[] = [];
  for (const file of versions) {
    if (file.entry.kind === 'directory' || linked.has(file)) continue;
    const bytes = ownBytes(file.entry);
    layerBytes[file.layer] = (layerBytes[file.layer] ?? 0) + bytes;
    const members = [file, ...(links.get(file) ?? [])];
    const carrier = members.find((m) => !endings.has(m)) ?? file;
    for (const member of members) {
      const ending = endings.get(member);
      const share = member === carrier ? bytes : 0;
      if (ending) dead.push({ version: member, ending, bytes: share });
      else live.push({ version: member, bytes: share });
    }
  }
  return { dead, live, layerBytes };
}
