/**
 * The engine's side of unpacking (snapshot/unpack.ts): which storage driver, and which image's layers.
 * Apart from `docker run` (run.ts), whose container code a build or a pull need not load.
 */
import { KilnError } from '../errors.js';
import { type Driver, type Snapshotter, detectDriver, snapshotterOf } from '../snapshot/snapshotter.js';
import { unpackLayers } from '../snapshot/unpack.js';
import type { Engine } from './engine.js';

/**
 * The snapshotter for a store: the driver asked for, or overlay where the kernel allows it here, else vfs
 * (and the user is told).
 */
export async function openSnapshotter(engine: Engine, notice: (message: string) => void, wanted?: Driver): Promise<Snapshotter> {
  const possible = await detectDriver(engine.store.root);
  if (wanted === 'overlay' && possible !== 'overlay') throw new KilnError('UNSUPPORTED', 'the overlay storage driver cannot be used here (overlayfs does not mount; kiln needs root for it): use --storage-driver vfs');
  const driver = wanted ?? possible;
  if (!wanted && driver === 'vfs') notice('kiln: overlayfs cannot be mounted here (not root, or no kernel support); using the vfs storage driver (full copies)');
  return snapshotterOf(engine.store, driver);
}

/**
 * Unpacks an image into committed layer snapshots, one per chain ID, reusing those already there (two
 * images with the same base layers share them). Returns the key of the top layer's snapshot.
 */
export async function unpackImage(engine: Engine, snapshots: Snapshotter, nameOrId: string, what = nameOrId): Promise<string | undefined> {
  const image = await engine.store.image(engine.image(nameOrId));
  return unpackLayers(snapshots, image.layers, what);
}
