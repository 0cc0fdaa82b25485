/**
 * The unpack pipeline, shared by pull, build and run: an image's layers into a chain of committed
 * snapshots, one per chain ID. A layer is applied into a temporary snapshot (owned by this process until
 * it is committed under its chain ID, or removed), so a kill -9 mid-unpack leaves only a temporary one,
 * which `system check` reports and the GC reclaims once its owner is gone.
 */
import { existsSync } from 'node:fs';
import { KilnError, isKilnError } from '../errors.js';
import { type Layer, chainIds } from '../image/image.js';
import { applyLayer, applyLayerOffThread } from '../layer/apply.js';
import { decompressStream } from '../layer/compression.js';
import type { TarWalker } from '../layer/scan.js';
import { layerCompression } from '../oci/mediatypes.js';
import { type Snapshotter, temporaryKey } from './snapshotter.js';

/**
 * Unpacks layers (bottom first) into committed snapshots keyed by chain ID, skipping those already
 * there. `ready(i)` resolves when layer i's blob is in the store, so a pull can unpack each layer as soon
 * as it and those below it have arrived; `progress` is told when one starts and ends. Returns the top key.
 */
export async function unpackLayers(snapshots: Snapshotter, layers: readonly Layer[], what: string, ready?: (index: number) => Promise<void>, progress?: (index: number, state: 'extracting' | 'done') => void): Promise<string | undefined> {
  const chain = chainIds(layers.map((l) => l.diffId));
  let parent: string | undefined;
  for (const [i, layer] of layers.entries()) {
    const key = snapshots.layerKey(chain[i] as string);
    await ready?.(i);
    // One unpack per snapshot at a time in this process (parallel build stages share base layers; a
    // pull may be unpacking this layer as it downloads it).
    const lock = `${snapshots.root}\0${key}`;
    for (let running = unpacking.get(lock); running; running = unpacking.get(lock)) await running.catch(() => undefined);
    const early = detached.get(lock); // unpacked as it downloaded, before its parent was
    if (snapshots.has(key) && !existsSync(snapshots.dir(key))) {
      // The operation's failure sweeps it (and what stacks on it): see collectGarbage.
      throw new KilnError('CORRUPT', `layer ${i + 1} of ${what} was unpacked into ${snapshots.dir(key)}, which is gone (removed from outside kiln); kiln forgets that unpack now: try again, and the layer is unpacked anew`);
    }
    if (early !== undefined && !snapshots.has(key)) {
      detached.delete(lock);
      await commitUnpacked(snapshots, key, early, parent);
    } else if (!snapshots.has(key)) {
      const below = parent;
      const work = (async () => {
        progress?.(i, 'extracting');
        const temporary = temporaryKey('extract');
        await snapshots.prepare(temporary, below, 'extract');
        try {
          const stream = decompressStream(await layer.open(), layerCompression(layer.mediaType) ?? 'none');
          const dir = snapshots.dir(temporary);
          await snapshots.writing(dir, () => applyLayer(dir, stream, { whiteouts: snapshots.whiteouts, what: `layer ${i + 1} of ${what}` }));
          await commitUnpacked(snapshots, key, temporary);
        } catch (err) {
          await snapshots.remove(temporary);
          throw err;
        }
      })();
      unpacking.set(lock, work);
      try {
        await work;
      } finally {
        unpacking.delete(lock);
      }
    }
    progress?.(i, 'done');
    parent = key;
  }
  return parent;
}

/**
 * Unpacks layer `index` from its tar as a pull reads it (one pass over the bytes instead of two): `read`
 * applies the tar to a new snapshot, `settle` commits it once the blob has been verified and stored, or
 * drops it. With overlay, a layer whose parent is not unpacked yet is unpacked all the same, and waits
 * (in `detached`) for `unpackLayers` to commit it on its parent, or for `discardDetached`. Undefined when
 * the layer cannot be unpacked this way now (vfs without its parent, or it is, or is being, unpacked).
 */
export function unpackWhileReading(snapshots: Snapshotter, layers: readonly Layer[], index: number, what: string): { read: TarWalker; settle(verified: boolean): Promise<void> } | undefined {
  const chain = chainIds(layers.map((l) => l.diffId));
  const key = snapshots.layerKey(chain[index] as string);
  const parent = index > 0 ? snapshots.layerKey(chain[index - 1] as string) : undefined;
  const lock = `${snapshots.root}\0${key}`;
  const parentHere = parent === undefined || snapshots.has(parent);
  if (snapshots.has(key) || (!parentHere && snapshots.driver !== 'overlay') || unpacking.has(lock) || detached.has(lock)) return undefined;
  const temporary = temporaryKey('extract');
  let prepared = false;
  let applied = false;
  let settled!: () => void;
  unpacking.set(lock, new Promise<void>((resolve) => (settled = resolve)));
  return {
    async read(tar) {
      await snapshots.prepare(temporary, parentHere ? parent : undefined, 'extract');
      prepared = true;
      // A worker thread runs beside the download, decompression and hashing; starting one costs ~40 ms.
      const apply = (layers[index]?.size ?? 0) >= OFF_THREAD_LAYER ? applyLayerOffThread : applyLayer;
      const dir = snapshots.dir(temporary);
      const result = await snapshots.writing(dir, () => apply(dir, tar, { whiteouts: snapshots.whiteouts, what: `layer ${index + 1} of ${what}` }));
      applied = true;
      return result;
    },
    async settle(verified) {
      try {
        if (!verified || !applied || snapshots.has(key)) {
          if (prepared) await snapshots.remove(temporary);
        } else if (parentHere) await commitUnpacked(snapshots, key, temporary);
        else if (parent !== undefined && snapshots.has(parent)) await commitUnpacked(snapshots, key, temporary, parent);
        else detached.set(lock, temporary);
      } finally {
        unpacking.delete(lock);
        settled();
      }
    },
  };
}

/**
 * Commits an unpacked layer's snapshot under its key, unless another kiln process committed the same layer
 * meanwhile (two commands unpacking one image at once): its snapshot then serves, and this one goes.
 */
async function commitUnpacked(snapshots: Snapshotter, key: string, unpacked: string, parent?: string): Promise<void> {
  try {
    snapshots.commit(key, unpacked, parent);
  } catch (err) {
    if (!isKilnError(err, 'CONFLICT') || !snapshots.has(key)) throw err;
    await snapshots.remove(unpacked);
  }
}

/** Layers whose blob is at least this large are unpacked on a worker thread as they download. */
const OFF_THREAD_LAYER = 8 << 20;

/** Unpacks in progress in this process, by snapshotter root and key. */
const unpacking = new Map<string, Promise<void>>();

/** Layers unpacked (overlay) before their parent was: the temporary snapshot, by snapshotter root and key. */
const detached = new Map<string, string>();

/** Drops what `unpackWhileReading` unpacked of these layers that no parent took (a pull that failed). */
export async function discardDetached(snapshots: Snapshotter, layers: readonly Layer[]): Promise<void> {
  for (const id of chainIds(layers.map((l) => l.diffId))) {
    const lock = `${snapshots.root}\0${snapshots.layerKey(id)}`;
    const temporary = detached.get(lock);
    if (temporary === undefined) continue;
    detached.delete(lock);
    await snapshots.remove(temporary);
  }
}
