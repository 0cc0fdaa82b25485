import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerGone } from '../content/owner.js';
import { type ContentStore, scratchOwner } from '../content/store.js';
import { chainIds } from '../image/image.js';
import type { MetaDb, SnapshotRow } from '../meta/db.js';
import { type Digest, isDigest } from '../oci/digest.js';

export interface GcResult {
  readonly deletedBlobs: readonly Digest[];
  readonly reclaimedBytes: number;
}

/** The leases whose process still runs (but `ignoring`). */
export function liveLeases(db: MetaDb, ignoring?: string): string[] {
  return db.leases().filter((lease) => lease.id !== ignoring && !ownerGone(lease.pid)).map((lease) => lease.id);
}

/**
 * How many records one write transaction of the GC changes at most: other kiln processes wait for the
 * database's write lock only that long, however much there is to collect.
 */
const BATCH = 500;

/**
 * Mark and sweep over blobs and layer snapshots. Roots are the images in the database (rmi and prune
 * decide which images go; the GC only frees what no image needs) and what the leases of running
 * operations hold. Leases, ingest files and scratch files of dead processes expire here.
 *
 * Blobs are judged and unlinked inside a write transaction, a batch at a time: a blob is published
 * inside the transaction that leases it (ContentWriter.publish), and one already present is leased
 * under the same lock (LocalStore.holdBlob), so a sweep never takes a blob that is being made safe.
 * Snapshot records are deleted first, in their own transactions, and their directories after each
 * commit: a `kill -9` in between leaves a directory without a record (a left-over the next GC removes),
 * never a record without its directory.
 */
export async function collectGarbage(content: ContentStore, db: MetaDb, ignoring?: string): Promise<GcResult> {
  db.transaction(() => {
    for (const lease of db.leases()) if (ownerGone(lease.pid)) db.deleteLease(lease.id);
  });
  const deleted: Digest[] = [];
  let reclaimed = 0;
  const blobNames = listDir(content.blobsDir).filter((name) => isDigest(`sha256:${name}`));
  for (let at = 0; at < blobNames.length; at += BATCH) {
    db.transaction(() => {
      const referenced = db.referencedBlobs(liveLeases(db, ignoring));
      for (const name of blobNames.slice(at, at + BATCH)) {
        const digest = `sha256:${name}` as Digest;
        if (referenced.has(digest)) continue;
        const path = join(content.blobsDir, name);
        const size = statSync(path, { throwIfNoEntry: false })?.size;
        if (size === undefined) continue; // another GC took it
        rmSync(path, { force: true });
        reclaimed += size;
        deleted.push(digest);
      }
    });
  }
  db.transaction(() => {
    const referenced = db.referencedBlobs(liveLeases(db, ignoring));
    for (const row of db.layerBlobs()) if (!referenced.has(row.digest)) db.deleteLayerBlob(row.digest);
  });
  await collectSnapshots(content.paths.snapshots, db, ignoring);
  // Half-written ingests and spooled archives of processes that are gone (a crash, a kill -9).
  for (const dir of [content.ingestDir, content.tmpDir]) {
    for (const name of listDir(dir)) {
      const owner = scratchOwner(name);
      if (owner !== undefined && ownerGone(owner)) await rm(join(dir, name), { force: true });
    }
  }
  return { deletedBlobs: deleted, reclaimedBytes: reclaimed };
}

/**
 * Layer snapshots that no image's layer chain and no lease needs, and unpacks a dead process left half
 * done: leaves first, a batch of records per transaction, each batch's directories removed once its
 * transaction has committed. Then directories that have no record (a kill -9 after a commit).
 */
async function collectSnapshots(root: string, db: MetaDb, ignoring?: string): Promise<void> {
  // Listed before the records are read: a snapshot's record is made before its directory, so a
  // directory listed here whose record is not there afterwards is a left-over.
  const dirs = listDir(root);
  for (;;) {
    const removed = db.transaction(() => {
      const live = liveLeases(db, ignoring);
      const needed = new Set([...db.images().flatMap((image) => chainIds(db.imageDiffIds(image.id))), ...db.leasedSnapshots(live)]);
      const rows = db.snapshots();
      const children = new Map<string, number>();
      for (const row of rows) if (row.parent) children.set(row.parent, (children.get(row.parent) ?? 0) + 1);
      const broken = brokenLayers(root, rows);
      const batch: SnapshotRow[] = [];
      for (const row of rows) {
        if (batch.length === BATCH) break;
        if ((children.get(row.key) ?? 0) === 0 && (broken.has(row.key) || unneeded(row, needed))) batch.push(row);
      }
      for (const row of batch) db.deleteSnapshot(row.key);
      return batch;
    });
    if (removed.length === 0) break;
    await Promise.all(removed.map((row) => rm(join(root, String(row.dir)), { recursive: true, force: true })));
  }
  const recorded = new Set(db.snapshots().map((row) => String(row.dir)));
  for (const dir of dirs) {
    if (/^\d+$/.test(dir) && !recorded.has(dir)) await rm(join(root, dir), { recursive: true, force: true });
  }
}

/**
 * Layer snapshots whose directory is gone (damage from outside kiln), or that stack on one: useless to
 * every image, so they go and the next unpack makes them again.
 */
function brokenLayers(root: string, rows: readonly SnapshotRow[]): Set<string> {
  const byKey = new Map(rows.map((row) => [row.key, row]));
  const verdicts = new Map<string, boolean>();
  const isBroken = (row: SnapshotRow): boolean => {
    let verdict = verdicts.get(row.key);
    if (verdict === undefined) {
      const parent = row.parent ? byKey.get(row.parent) : undefined;
      verdict = row.kind === 'committed' && (!existsSync(join(root, String(row.dir))) || (parent !== undefined && isBroken(parent)));
      verdicts.set(row.key, verdict);
    }
    return verdict;
  };
  return new Set(rows.filter((row) => LAYER_KEY.test(row.key) && isBroken(row)).map((row) => row.key));
}

const LAYER_KEY = /^(?:overlay|vfs):(sha256:[a-f0-9]{64})$/;

/** A committed layer snapshot no chain or lease needs, or an unpack whose process is gone. */
function unneeded(row: SnapshotRow, needed: ReadonlySet<string>): boolean {
  const layer = LAYER_KEY.exec(row.key)?.[1];
  if (layer !== undefined) return !needed.has(layer) && !needed.has(row.key);
  return row.owner?.purpose === 'extract' && ownerGone(row.owner.pid);
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
