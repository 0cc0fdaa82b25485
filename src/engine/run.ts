/**
 * `docker run`, and the engine's side of unpacking (snapshot/unpack.ts): which storage driver, and which
 * image's layers.
 */
import { KilnError } from '../errors.js';
import { type Driver, type Snapshotter, detectDriver, snapshotterOf } from '../snapshot/snapshotter.js';
import { unpackLayers } from '../snapshot/unpack.js';
import type { Engine } from './engine.js';
import { type ContainerRequest, type CreateOptions, createContainer } from './containers/create.js';
import { runContainerHere, startContainer } from './containers/start.js';

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

/**
 * `docker run`: a container created from the image as `create` makes it, then started: in the
 * foreground (its stdio passed through, its exit code returned; with `remove` it goes once it has
 * exited), or with `detach` under a kiln supervisor (run returns at once, exit code 0).
 */
export async function runContainer(engine: Engine, request: ContainerRequest, options: CreateOptions & { readonly detach: boolean; readonly interactive: boolean }): Promise<{ id: string; exitCode: number }> {
  const { id } = await createContainer(engine, request, options);
  if (options.detach) {
    await startContainer(engine, id);
    return { id, exitCode: 0 };
  }
  return { id, exitCode: await runContainerHere(engine, id, { interactive: options.interactive, notice: options.notice }) };
}
