/**
 * Removing containers: one (`rm`, `--rm`), every stopped one (`container prune`), and what a killed kiln
 * left of a container it was making (a bundle that no record explains).
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerGone } from '../../content/owner.js';
import { type Snapshotter, snapshotterOf, unmountStale } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { leaveNetworks } from '../networks.js';
import { removeAnonymousVolumes } from '../volumes.js';
import { OWNER_FILE, containerBundle, containerKey, currentRow, isRunning, settingsOf, snapshotterFor } from './records.js';

/** Unmounts (if a crash left it mounted) and removes a container's bundle and writable snapshot. */
async function forget(engine: Engine, snapshots: Snapshotter, id: string): Promise<void> {
  const bundle = containerBundle(engine, id);
  await unmountStale(join(bundle, 'rootfs'));
  const key = containerKey(id);
  if (snapshots.list().some((s) => s.key === key)) await snapshots.remove(key);
  await rm(bundle, { recursive: true, force: true });
}

/**
 * Removes a container that does not run: its files, its record, and with `volumes` its anonymous
 * volumes that no other container uses (`rm -v`, `--rm`).
 */
export async function destroyContainer(engine: Engine, id: string, volumes: boolean): Promise<void> {
  const container = currentRow(engine, id);
  if (!container) return;
  const settings = settingsOf(container);
  await leaveNetworks(engine, id); // a killed kiln may have left its endpoints
  await forget(engine, snapshotterFor(engine, container), id);
  engine.store.db.deleteContainer(id);
  if (volumes) await removeAnonymousVolumes(engine, settings.mounts);
  recordEvent(engine, 'container', 'destroy', id, { image: settings.image, name: container.name, ...settings.labels });
}

/**
 * Bundles that no container record explains and whose owning kiln process is gone: what a kill -9 of a
 * create leaves (a bundle, a writable snapshot).
 */
export async function abandonedBundles(engine: Engine): Promise<string[]> {
  const known = new Set(engine.store.db.containers().map((c) => c.id));
  const abandoned: string[] = [];
  for (const id of await readdir(engine.store.paths.containers).catch(() => [] as string[])) {
    if (known.has(id)) continue;
    const owner = Number(await readFile(join(containerBundle(engine, id), OWNER_FILE), 'utf8').catch(() => '0'));
    if (ownerGone(owner)) abandoned.push(id);
  }
  return abandoned;
}

/** `docker container prune`: removes every container that does not run (their volumes stay, as Docker leaves them); returns their IDs. */
export async function pruneContainers(engine: Engine): Promise<string[]> {
  const stopped = engine.store.db.containers().filter((c) => !isRunning(c));
  for (const container of stopped) await destroyContainer(engine, container.id, false);
  const snapshots = snapshotterOf(engine.store, 'overlay');
  for (const id of await abandonedBundles(engine)) await forget(engine, snapshots, id);
  return stopped.map((c) => c.id);
}
