import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ContentStore, scratchOwner } from '../content/store.js';
import { chainIds } from '../image/image.js';
import type { MetaDb } from '../meta/db.js';
import { type Digest, isDigest } from '../oci/digest.js';

export interface GcResult {
  readonly deletedBlobs: readonly Digest[];
  readonly reclaimedBytes: number;
}

/** True while the process that took a lease runs. A pid that was reused keeps a lease alive a little longer; harmless. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Mark and sweep over blobs. Roots are the images in the database (rmi and prune decide which images go;
 * the GC only frees what no image needs) and the leases of running operations. Leases, ingest files
 * and scratch files of dead processes expire here.
 *
 * The whole sweep runs inside one database write transaction, and blobs are published inside the
 * transaction that leases them (see ContentWriter.publish), so a sweep never sees a blob that is visible
 * but not yet protected.
 */
export function collectGarbage(content: ContentStore, db: MetaDb): GcResult {
  return db.transaction(() => {
    const live: string[] = [];
    for (const lease of db.leases()) {
      if (lease.pid === process.pid || processAlive(lease.pid)) live.push(lease.id);
      else db.deleteLease(lease.id);
    }
    const referenced = db.referencedBlobs(live);
    const deleted: Digest[] = [];
    let reclaimed = 0;
    for (const name of listDir(content.blobsDir)) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest) || referenced.has(digest)) continue;
      const path = join(content.blobsDir, name);
      reclaimed += statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      rmSync(path, { force: true });
      deleted.push(digest);
    }
    for (const row of db.layerBlobs()) {
      if (!referenced.has(row.digest)) db.deleteLayerBlob(row.digest);
    }
    // Layer snapshots no image needs any more (and unpacks that a dead process left half done).
    const chains = new Set(db.images().flatMap((image) => chainIds(db.imageDiffIds(image.id))));
    let removed = true;
    while (removed) {
      removed = false;
      for (const snapshot of db.snapshots()) {
        const layer = /^(?:overlay|vfs):(sha256:[a-f0-9]{64})$/.exec(snapshot.key)?.[1];
        const owner = /^extract-(\d+)-/.exec(snapshot.key)?.[1];
        const unused = (layer !== undefined && !chains.has(layer as Digest)) || (owner !== undefined && Number(owner) !== process.pid && !processAlive(Number(owner)));
        if (!unused || db.snapshotChildren(snapshot.key).length > 0) continue;
        db.deleteSnapshot(snapshot.key);
        rmSync(join(content.root, 'snapshots', String(snapshot.dir)), { recursive: true, force: true });
        removed = true;
      }
    }
    // Half-written ingests and spooled archives of processes that are gone (a crash, a kill -9).
    for (const dir of [content.ingestDir, content.tmpDir]) {
      for (const name of listDir(dir)) {
        const owner = scratchOwner(name);
        if (owner !== undefined && owner !== process.pid && !processAlive(owner)) rmSync(join(dir, name), { force: true });
      }
    }
    return { deletedBlobs: deleted, reclaimedBytes: reclaimed };
  });
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
