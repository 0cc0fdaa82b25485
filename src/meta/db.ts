import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { KilnError, isKilnError, storeWriteError } from '../errors.js';
import type { Digest } from '../oci/digest.js';

/**
 * Schema migrations, applied in order inside one transaction each; `PRAGMA user_version` records how many
 * have run. Never edit a released migration: add a new one.
 */
const MIGRATIONS: readonly string[] = [
  `
  -- An image is identified by its config digest (Docker's image ID). manifest_digest is the manifest kiln
  -- keeps for it (the original bytes when the image came with one), which save and push use.
  CREATE TABLE images (
    id               TEXT PRIMARY KEY,
    manifest_digest  TEXT NOT NULL,
    manifest_type    TEXT NOT NULL,
    created          TEXT NOT NULL,   -- the config's created time (RFC 3339), '' when absent
    size             INTEGER NOT NULL, -- sum of the layers' sizes, as Docker reports Size
    parent           TEXT NOT NULL DEFAULT '',
    labels           TEXT NOT NULL DEFAULT '{}', -- JSON object, copied from the config for filters
    added_at         INTEGER NOT NULL, -- ms since the epoch, when this store first had it
    last_tag_time    INTEGER           -- ms since the epoch (inspect's Metadata.LastTagTime)
  );
  -- The layers of an image in order (bottom first), by diffID.
  CREATE TABLE image_layers (
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    diff_id   TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
  );
  CREATE INDEX image_layers_diff ON image_layers(diff_id);
  -- Every blob an image needs (config, manifest, layer blobs): the GC's edges from images to blobs.
  CREATE TABLE image_blobs (
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest    TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
  );
  CREATE INDEX image_blobs_digest ON image_blobs(digest);
  -- A layer blob as stored (compressed or not) and the diffID and uncompressed size of its content.
  CREATE TABLE layer_blobs (
    digest      TEXT PRIMARY KEY,
    diff_id     TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    diff_size   INTEGER NOT NULL  -- the layer's size as Docker reports it (content bytes, see scanLayer)
  );
  CREATE INDEX layer_blobs_diff ON layer_blobs(diff_id);
  -- Names: a normalized reference (docker.io/library/busybox:latest or ...@sha256:...) to an image.
  CREATE TABLE names (
    name      TEXT PRIMARY KEY,
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
    added_at  INTEGER NOT NULL
  );
  CREATE INDEX names_image ON names(image_id);
  -- A lease protects blobs that an operation has committed but not yet tied to an image, so a GC in
  -- another process does not sweep them. A lease whose process is gone has expired.
  CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
  );
  CREATE TABLE lease_blobs (
    lease_id  TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    digest    TEXT NOT NULL,
    PRIMARY KEY (lease_id, digest)
  );
  `,
  `
  -- Snapshots (src/snapshot): a directory tree per key. Committed ones are named by what they hold
  -- (layer chain IDs), active ones by their user (a container). dir is the short on-disk id.
  CREATE TABLE snapshots (
    key         TEXT PRIMARY KEY,
    dir         INTEGER NOT NULL UNIQUE,
    parent      TEXT REFERENCES snapshots(key),
    kind        TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    driver      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  );
  CREATE INDEX snapshots_parent ON snapshots(parent);
  `,
  `
  -- Containers: a writable snapshot (key container:<id>) on an image, and what ran in it.
  CREATE TABLE containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    image_name  TEXT NOT NULL,
    command     TEXT NOT NULL,  -- JSON array: the process's args
    driver      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    exit_code   INTEGER
  );
  CREATE INDEX containers_image ON containers(image_id);
  `,
  `
  -- The kiln process supervising a detached container (run -d) while it runs.
  ALTER TABLE containers ADD COLUMN pid INTEGER;
  `,
  `
  -- When a container was last started (start, restart), if not when it was created.
  ALTER TABLE containers ADD COLUMN started_at INTEGER;
  `,
  `
  -- The build cache: a build step's cache key → the image its step produced (an intermediate image,
  -- as Docker's classic builder keeps them). Removing the image forgets the record.
  CREATE TABLE build_cache (
    key         TEXT PRIMARY KEY,
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
  );
  CREATE INDEX build_cache_image ON build_cache(image_id);
  -- Content digests of build-context files, trusted while the file's stat is unchanged.
  CREATE TABLE file_digests (
    path      TEXT PRIMARY KEY,
    stat      TEXT NOT NULL,  -- dev:ino:size:mtime_ns:ctime_ns
    digest    TEXT NOT NULL
  );
  `,
  `
  -- Where a blob is known to be in a registry (pulled from, pushed to), for cross-repository mounts.
  CREATE TABLE blob_sources (
    digest      TEXT NOT NULL,
    registry    TEXT NOT NULL,
    repository  TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository)
  );
  `,
  `
  -- Snapshot directory numbers are never reused: a removed snapshot's directory may still be being
  -- deleted when the next snapshot is made.
  CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
  );
  INSERT INTO counters (name, value) SELECT 'snapshot_dir', COALESCE(MAX(dir), 0) FROM snapshots;
  `,
  `
  -- What a running operation holds besides blobs: the images it reads or makes (prune and rmi leave
  -- them, as they leave a container's image) and the layer snapshots it unpacks or commits before an
  -- image names them (the GC leaves them). Both go with the lease.
  CREATE TABLE lease_images (
    lease_id  TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    image_id  TEXT NOT NULL,
    PRIMARY KEY (lease_id, image_id)
  );
  CREATE INDEX lease_images_image ON lease_images(image_id);
  CREATE TABLE lease_snapshots (
    lease_id  TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    PRIMARY KEY (lease_id, key)
  );
  `,
  `
  -- What kiln knows of an image it built, for kiln analyze: the Dockerfile, the base image the target
  -- stage starts from and how many layers it has, the number of stages; and for each history entry the
  -- Dockerfile line of the instruction that made it.
  CREATE TABLE build_records (
    image_id     TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    dockerfile   TEXT NOT NULL,
    base_id      TEXT NOT NULL DEFAULT '',  -- '' for a build from scratch
    base_layers  INTEGER NOT NULL,
    stages       INTEGER NOT NULL
  );
  CREATE TABLE build_lines (
    image_id     TEXT NOT NULL REFERENCES build_records(image_id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,  -- the history entry's index in the image's config
    line         INTEGER NOT NULL,
    end_line     INTEGER NOT NULL,
    instruction  TEXT NOT NULL,     -- as written, continuations joined
    PRIMARY KEY (image_id, position)
  );
  `,
  `
  -- A container is recorded when it is created (docker create), before it first runs: what it was
  -- created with (the engine's ContainerSettings as JSON: the image's and the request's config, mounts,
  -- networks, labels), whether its processes are frozen (pause), and why its last start failed.
  ALTER TABLE containers ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
  ALTER TABLE containers ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE containers ADD COLUMN error TEXT NOT NULL DEFAULT '';
  `,
  `
  -- Volumes (docker volume): a directory under volumes/<name>/_data. A container's settings name the
  -- volumes it mounts; those keep them from rm and prune. An anonymous one (the image's VOLUME) goes
  -- with its container's rm -v or --rm.
  CREATE TABLE volumes (
    name        TEXT PRIMARY KEY,
    driver      TEXT NOT NULL,
    labels      TEXT,            -- JSON object, NULL when the request gave none (Docker's null)
    options     TEXT,            -- JSON object of driver options, NULL when none
    anonymous   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
  );
  `,
  `
  -- Events (docker events), from every kiln process that changes the store: the last thousand or so are
  -- kept for events --since; a follower polls for rows after the last it saw.
  CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano   TEXT NOT NULL,    -- nanoseconds since the epoch, in decimal (more than a double holds)
    type        TEXT NOT NULL,    -- container, image, volume, network
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,    -- the ID (or name) of what it happened to
    attributes  TEXT NOT NULL     -- JSON object
  );
  `,
  `
  -- 1 for an image a build step made that no build has given as its result (a stage's last step, a step
  -- inside a stage): BuildKit makes no image of those, so \`images\` lists them only with -a. A build
  -- giving the image as its result, or a tag, makes it 0.
  ALTER TABLE images ADD COLUMN intermediate INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- Networks (docker network) kiln makes: a bridge on the host and a subnet, run through the CNI
  -- plugins; \`bridge\` (Docker's default) is recorded when first used. host and none are not recorded.
  CREATE TABLE networks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    driver      TEXT NOT NULL,
    subnet      TEXT NOT NULL,      -- IPv4 CIDR
    gateway     TEXT NOT NULL,
    bridge      TEXT NOT NULL,      -- the host interface
    internal    INTEGER NOT NULL,
    labels      TEXT NOT NULL,      -- JSON object
    options     TEXT NOT NULL,      -- JSON object
    created_at  INTEGER NOT NULL
  );
  -- A running container's place on a network: recorded after CNI ADD, deleted after CNI DEL. What ADD
  -- was given and answered is kept, so that DEL undoes exactly that (also after a kill -9 of the kiln
  -- that ran it, and after the network changed).
  CREATE TABLE endpoints (
    container_id TEXT NOT NULL,
    network_id   TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    address      TEXT NOT NULL,     -- CIDR
    gateway      TEXT NOT NULL,
    mac          TEXT NOT NULL,
    aliases      TEXT NOT NULL,     -- JSON array
    ports        TEXT NOT NULL,     -- JSON array of CNI port mappings published through it
    config       TEXT NOT NULL,     -- the CNI network configuration list ADD ran
    result       TEXT NOT NULL,     -- ADD's result
    PRIMARY KEY (container_id, network_id)
  );
  `,
  `
  -- Who works on a temporary snapshot, as data (its key need not be read): owner_pid, the kiln process
  -- that made it, and purpose, what for: 'extract' (a layer being unpacked), 'build' (a build step's
  -- writable snapshot), 'view' (a read-only view a build step reads a tree through). Both are NULL for
  -- the snapshots no process owns (layers, which images and leases hold; containers'); committing a
  -- temporary snapshot clears them. Rows recorded before carried both in their key, taken from it here.
  ALTER TABLE snapshots ADD COLUMN owner_pid INTEGER;
  ALTER TABLE snapshots ADD COLUMN purpose TEXT CHECK (purpose IN ('extract', 'build', 'view'));
  UPDATE snapshots SET purpose = 'extract', owner_pid = CAST(substr(key, 9) AS INTEGER) WHERE key GLOB 'extract-[0-9]*-*';
  UPDATE snapshots SET purpose = 'build', owner_pid = CAST(substr(key, 7) AS INTEGER) WHERE key GLOB 'build-[0-9]*-*';
  UPDATE snapshots SET purpose = 'view', owner_pid = CAST(substr(key, 6) AS INTEGER) WHERE key GLOB 'view-[0-9]*-*';
  `,
];

export interface ContainerRow {
  readonly id: string;
  readonly name: string;
  readonly imageId: Digest;
  readonly imageName: string;
  readonly command: readonly string[];
  readonly driver: string;
  readonly createdAt: number;
  /** When `start` last ran it again; null: it has run once, from its creation. */
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly exitCode: number | null;
  readonly pid: number | null;
  /** The engine's settings as JSON (`{}` for a container recorded before kiln kept them). */
  readonly settings: string;
  readonly paused: boolean;
  /** Why its last start failed, '' when it did not. */
  readonly error: string;
}

export interface VolumeRow {
  readonly name: string;
  readonly driver: string;
  readonly labels: Readonly<Record<string, string>> | null;
  readonly options: Readonly<Record<string, string>> | null;
  readonly anonymous: boolean;
  readonly createdAt: number;
}

export interface NetworkRow {
  readonly id: string;
  readonly name: string;
  readonly driver: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly bridge: string;
  readonly internal: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly options: Readonly<Record<string, string>>;
  readonly createdAt: number;
}

export interface EndpointRow {
  readonly containerId: string;
  readonly networkId: string;
  readonly ifname: string;
  readonly address: string;
  readonly gateway: string;
  readonly mac: string;
  readonly aliases: readonly string[];
  /** JSON, as kiln's runtime/cni reads and writes them. */
  readonly ports: string;
  readonly config: string;
  readonly result: string;
}

export interface EventRow {
  readonly seq: number;
  readonly timeNano: bigint;
  readonly type: string;
  readonly action: string;
  readonly actor: string;
  readonly attributes: Readonly<Record<string, string>>;
}

/** What a temporary snapshot is for (see the migration that records it). */
export type SnapshotPurpose = 'extract' | 'build' | 'view';

/** The process that works on a temporary snapshot until it commits or removes it. */
export interface SnapshotOwner {
  readonly pid: number;
  readonly purpose: SnapshotPurpose;
}

export interface SnapshotRow {
  readonly key: string;
  readonly dir: number;
  readonly parent: string | null;
  readonly kind: 'active' | 'view' | 'committed';
  readonly driver: string;
  readonly createdAt: number;
  /** Null for a snapshot no process owns: a layer's (images and leases hold it), a container's. */
  readonly owner: SnapshotOwner | null;
}

const SNAPSHOT_COLUMNS = 'key, dir, parent, kind, driver, created_at AS createdAt, owner_pid AS ownerPid, purpose';

type RawSnapshotRow = Omit<SnapshotRow, 'owner'> & { readonly ownerPid: number | null; readonly purpose: SnapshotPurpose | null };

function snapshotRow({ ownerPid, purpose, ...row }: RawSnapshotRow): SnapshotRow {
  return { ...row, owner: ownerPid !== null && purpose !== null ? { pid: ownerPid, purpose } : null };
}

export interface ImageRow {
  readonly id: Digest;
  readonly manifestDigest: Digest;
  readonly manifestType: string;
  readonly created: string;
  readonly size: number;
  readonly parent: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly addedAt: number;
  readonly lastTagTime: number | null;
  /** Made by a build step and not a build's result or tagged: hidden from `images` without -a. */
  readonly intermediate: boolean;
}

export interface NameRow {
  readonly name: string;
  readonly imageId: Digest;
  readonly kind: 'tag' | 'digest';
  readonly addedAt: number;
}

export interface LayerBlobRow {
  readonly digest: Digest;
  readonly diffId: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly diffSize: number;
}

/** What kiln records of an image it built (see build_records). */
export interface BuildRecord {
  readonly imageId: Digest;
  readonly dockerfile: string;
  /** The external image the target stage starts from; '' for scratch. */
  readonly baseId: string;
  readonly baseLayers: number;
  readonly stages: number;
  /** Dockerfile lines by history entry index. */
  readonly lines: readonly { readonly position: number; readonly line: number; readonly endLine: number; readonly instruction: string }[];
}

/** What a new image record holds; the layers are diffIDs bottom first. */
export interface NewImage {
  readonly id: Digest;
  readonly manifestDigest: Digest;
  readonly manifestType: string;
  readonly created: string;
  readonly size: number;
  readonly parent?: string;
  /** A build step's image (see ImageRow.intermediate). */
  readonly intermediate?: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly diffIds: readonly Digest[];
  readonly blobs: readonly Digest[];
}

interface RawImage {
  id: string;
  manifest_digest: string;
  manifest_type: string;
  created: string;
  size: number;
  parent: string;
  labels: string;
  added_at: number;
  last_tag_time: number | null;
  intermediate: number;
}

/**
 * An image record as read. `labels` is parsed when first read (listing images reads no label unless a
 * filter names one), through an own, enumerable getter as an object literal's would be; but one function
 * for every record, where a literal's getter is a new function for each object, which gave each record a
 * hidden class of its own (a kB each, most of the garbage of `kiln images` on a large store).
 */
class StoredImage implements ImageRow {
  declare readonly id: Digest;
  declare readonly manifestDigest: Digest;
  declare readonly manifestType: string;
  declare readonly created: string;
  declare readonly size: number;
  declare readonly parent: string;
  declare readonly labels: Readonly<Record<string, string>>;
  declare readonly addedAt: number;
  declare readonly lastTagTime: number | null;
  declare readonly intermediate: boolean;
  #labelsJson: string;
  #labels: Record<string, string> | undefined;

  static readonly #LABELS: PropertyDescriptor = {
    get(this: StoredImage) {
      return (this.#labels ??= JSON.parse(this.#labelsJson) as Record<string, string>);
    },
    enumerable: true,
    configurable: true,
  };

  constructor(raw: RawImage) {
    this.#labelsJson = raw.labels;
    // In the order a literal would have them (json shows them so).
    this.id = raw.id as Digest;
    this.manifestDigest = raw.manifest_digest as Digest;
    this.manifestType = raw.manifest_type;
    this.created = raw.created;
    this.size = raw.size;
    this.parent = raw.parent;
    Object.defineProperty(this, 'labels', StoredImage.#LABELS);
    this.addedAt = raw.added_at;
    this.lastTagTime = raw.last_tag_time;
    this.intermediate = raw.intermediate === 1;
  }
}

function toImageRow(raw: RawImage): ImageRow {
  return new StoredImage(raw);
}

let sqlite: { readonly open: typeof Database; readonly addon: string | undefined } | undefined;

/** The start of a file_digests path that keeps a COPY's checksum rather than a file's digest (see fileDigests). */
const SOURCES_ROW = 'sources:';

/**
 * A better-sqlite3 connection, for kiln's database and the ones it reads (rpm's, the vulnerability data).
 * The addon is named where npm builds it, which spares the search of the `bindings` package (some ms on
 * every command that opens a store); the package's code is then the one imported here, which the bundle
 * (dist/kiln.cjs) carries, compiled with the CLI. With any other layout the package as installed opens it
 * (its search needs the package's own files).
 */
export function openSqlite(path: string, options: Database.Options = {}): Database.Database {
  if (!sqlite) {
    // First where a checkout keeps it, beside dist/ (the one Node's search from here finds first), which
    // spares that search (a third of opening the store); else where the search finds the package.
    const beside = fileURLToPath(new URL('../../../node_modules/better-sqlite3/build/Release/better_sqlite3.node', import.meta.url));
    const require = createRequire(import.meta.url);
    const addon = existsSync(beside) ? beside : join(dirname(require.resolve('better-sqlite3')), '..', 'build', 'Release', 'better_sqlite3.node');
    sqlite = existsSync(addon) ? { open: Database, addon } : { open: require('better-sqlite3') as typeof Database, addon: undefined };
  }
  return new sqlite.open(path, sqlite.addon === undefined ? options : { ...options, nativeBinding: sqlite.addon });
}

/**
 * The metadata database (`kiln.db`, SQLite in WAL mode). Many kiln processes may open one store at once:
 * SQLite serializes writers, and every multi-row change runs in one transaction.
 */
export class MetaDb {
  private readonly db: Database.Database;
  /** Each statement compiled once per connection: compiling one costs more than running most. */
  private readonly statements = new Map<string, Database.Statement>();
  /**
   * Runs the function it is given in an immediate transaction (see transaction): one for every call, as
   * making one (better-sqlite3's `transaction`) costs more than a small transaction takes.
   */
  private readonly immediately: (fn: () => unknown) => unknown;

  constructor(path: string) {
    try {
      const connection = openSqlite(path, { timeout: LOCK_POLL_MS });
      this.db = translatingErrors(connection, (run) => waitingForTheLock(run, connection, path));
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('synchronous = NORMAL');
    } catch (err) {
      if (isKilnError(err)) throw err;
      throw new KilnError('CORRUPT', `cannot open the metadata database ${path}: ${(err as Error).message}`, { cause: err });
    }
    const inTransaction = this.db.transaction((fn: () => unknown) => fn());
    this.immediately = (fn) => inTransaction.immediate(fn);
    this.migrate();
  }

  /** The connection's statement for `sql`; `pluck` returns a row's first column, `raw` its columns as an array. */
  private statement(sql: string, mode?: 'pluck' | 'raw'): Database.Statement {
    const key = mode === undefined ? sql : `${mode} ${sql}`;
    let statement = this.statements.get(key);
    if (!statement) {
      statement = this.db.prepare(sql);
      if (mode === 'pluck') statement = statement.pluck();
      else if (mode === 'raw') statement = statement.raw();
      this.statements.set(key, statement);
    }
    return statement;
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in one immediate transaction (writers queue instead of failing on upgrade). */
  transaction<T>(fn: () => T): T {
    return this.immediately(fn) as T;
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > MIGRATIONS.length) {
      throw new KilnError('UNSUPPORTED', `the store's database has schema version ${current}, newer than this kiln knows (${MIGRATIONS.length}); upgrade kiln`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.transaction(() => {
        // Another process may have migrated while this one waited for the lock.
        if (this.schemaVersion > version) return;
        this.db.exec(MIGRATIONS[version] ?? '');
        this.db.pragma(`user_version = ${version + 1}`);
      });
    }
  }

  // ---- images ----

  image(id: string): ImageRow | undefined {
    const raw = this.statement('SELECT * FROM images WHERE id = ?').get(id) as RawImage | undefined;
    return raw && toImageRow(raw);
  }

  /** Image IDs starting with `prefix` (a short ID typed by a person), at most `limit`. */
  imagesByIdPrefix(prefix: string, limit = 2): Digest[] {
    return (this.statement('SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT ?', 'pluck').all(prefix, `${prefix}\uffff`, limit) as string[]) as Digest[];
  }

  images(): ImageRow[] {
    return (this.statement('SELECT * FROM images ORDER BY created DESC, id').all() as RawImage[]).map(toImageRow);
  }

  /** Adds an image (or refreshes nothing when it exists: an ID names one config, so the record is the same). */
  putImage(image: NewImage, now = Date.now()): boolean {
    const inserted = this.statement('INSERT OR IGNORE INTO images (id, manifest_digest, manifest_type, created, size, parent, labels, added_at, intermediate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(image.id, image.manifestDigest, image.manifestType, image.created, image.size, image.parent ?? '', JSON.stringify(image.labels), now, image.intermediate ? 1 : 0);
    if (inserted.changes === 0) {
      // The same config with another manifest (e.g. other compression) still needs that manifest's blobs kept.
      this.addImageBlobs(image.id, image.blobs);
      return false;
    }
    const layer = this.statement('INSERT INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)');
    image.diffIds.forEach((diffId, position) => layer.run(image.id, position, diffId));
    this.addImageBlobs(image.id, image.blobs);
    return true;
  }

  private addImageBlobs(imageId: Digest, blobs: readonly Digest[]): void {
    const stmt = this.statement('INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)');
    for (const digest of blobs) stmt.run(imageId, digest);
  }

  deleteImage(id: Digest): void {
    this.statement('DELETE FROM images WHERE id = ?').run(id);
  }

  imageDiffIds(id: Digest): Digest[] {
    return this.statement('SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position', 'pluck').all(id) as Digest[];
  }

  /** The images whose layers are exactly these (bottom first). */
  imagesWithLayers(diffIds: readonly Digest[]): Digest[] {
    const top = diffIds.at(-1);
    if (top === undefined) return [];
    const candidates = this.statement('SELECT image_id FROM image_layers WHERE diff_id = ? AND position = ?', 'pluck').all(top, diffIds.length - 1) as Digest[];
    return candidates.filter((id) => {
      const ids = this.imageDiffIds(id);
      return ids.length === diffIds.length && ids.every((d, i) => d === diffIds[i]);
    });
  }

  imageBlobs(id: Digest): Digest[] {
    return this.statement('SELECT digest FROM image_blobs WHERE image_id = ? ORDER BY digest', 'pluck').all(id) as Digest[];
  }

  /** Images whose parent is `id` (children keep a parent from being deleted, as in Docker). */
  childImages(id: Digest): Digest[] {
    return this.statement('SELECT id FROM images WHERE parent = ?', 'pluck').all(id) as Digest[];
  }

  /** An image a build gave as its result, or a person named: no longer a build's intermediate image. */
  markResult(id: Digest): void {
    this.statement('UPDATE images SET intermediate = 0 WHERE id = ?').run(id);
  }

  setLastTagTime(id: Digest, when: number): void {
    this.statement('UPDATE images SET last_tag_time = ?, intermediate = 0 WHERE id = ?').run(when, id);
  }

  // ---- names ----

  name(name: string): NameRow | undefined {
    const raw = this.statement('SELECT name, image_id AS imageId, kind, added_at AS addedAt FROM names WHERE name = ?').get(name) as NameRow | undefined;
    return raw;
  }

  names(): NameRow[] {
    return this.statement('SELECT name, image_id AS imageId, kind, added_at AS addedAt FROM names ORDER BY name').all() as NameRow[];
  }

  /** Every image's names, in namesOf's order: one query where a listing would make one per image. */
  namesByImage(): Map<Digest, NameRow[]> {
    const byImage = new Map<Digest, NameRow[]>();
    for (const row of this.statement('SELECT name, image_id AS imageId, kind, added_at AS addedAt FROM names ORDER BY added_at, name').all() as NameRow[]) {
      const names = byImage.get(row.imageId);
      if (names) names.push(row);
      else byImage.set(row.imageId, [row]);
    }
    return byImage;
  }

  namesOf(imageId: Digest): NameRow[] {
    return this.statement('SELECT name, image_id AS imageId, kind, added_at AS addedAt FROM names WHERE image_id = ? ORDER BY added_at, name').all(imageId) as NameRow[];
  }

  /** Points a name at an image (in one transaction with its tag time); returns the image the name pointed at before, if another. */
  setName(name: string, imageId: Digest, kind: 'tag' | 'digest', now = Date.now()): Digest | undefined {
    return this.transaction(() => {
      const before = this.name(name);
      if (before?.imageId === imageId) return undefined;
      this.statement('INSERT INTO names (name, image_id, kind, added_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, kind = excluded.kind, added_at = excluded.added_at').run(name, imageId, kind, now);
      if (kind === 'tag') this.setLastTagTime(imageId, now);
      return before?.imageId;
    });
  }

  deleteName(name: string): boolean {
    return this.statement('DELETE FROM names WHERE name = ?').run(name).changes > 0;
  }

  // ---- layers ----

  putLayerBlob(row: LayerBlobRow): void {
    this.statement('INSERT OR IGNORE INTO layer_blobs (digest, diff_id, media_type, size, diff_size) VALUES (?, ?, ?, ?, ?)').run(row.digest, row.diffId, row.mediaType, row.size, row.diffSize);
  }

  layerBlob(digest: Digest): LayerBlobRow | undefined {
    return this.statement('SELECT digest, diff_id AS diffId, media_type AS mediaType, size, diff_size AS diffSize FROM layer_blobs WHERE digest = ?').get(digest) as LayerBlobRow | undefined;
  }

  /** The stored blobs that hold a diffID's content, uncompressed ones first. */
  layerBlobsOf(diffId: Digest): LayerBlobRow[] {
    return this.statement("SELECT digest, diff_id AS diffId, media_type AS mediaType, size, diff_size AS diffSize FROM layer_blobs WHERE diff_id = ? ORDER BY digest = diff_id DESC, digest").all(diffId) as LayerBlobRow[];
  }

  layerBlobs(): LayerBlobRow[] {
    return this.statement('SELECT digest, diff_id AS diffId, media_type AS mediaType, size, diff_size AS diffSize FROM layer_blobs').all() as LayerBlobRow[];
  }

  deleteLayerBlob(digest: Digest): void {
    this.statement('DELETE FROM layer_blobs WHERE digest = ?').run(digest);
  }

  /** How many images use each diffID (for `system df` shared sizes). */
  layerUseCounts(): Map<Digest, number> {
    const rows = this.statement('SELECT diff_id AS diffId, COUNT(DISTINCT image_id) AS n FROM image_layers GROUP BY diff_id').all() as { diffId: Digest; n: number }[];
    return new Map(rows.map((r) => [r.diffId, r.n]));
  }

  // ---- leases ----

  createLease(id: string, pid = process.pid, now = Date.now()): void {
    this.statement('INSERT INTO leases (id, pid, created_at) VALUES (?, ?, ?)').run(id, pid, now);
  }

  addLeaseBlob(leaseId: string, digest: Digest): void {
    this.statement('INSERT OR IGNORE INTO lease_blobs (lease_id, digest) VALUES (?, ?)').run(leaseId, digest);
  }

  leaseBlobs(leaseId: string): Digest[] {
    return this.statement('SELECT digest FROM lease_blobs WHERE lease_id = ?', 'pluck').all(leaseId) as Digest[];
  }

  deleteLease(id: string): void {
    this.statement('DELETE FROM leases WHERE id = ?').run(id);
  }

  leases(): { id: string; pid: number; createdAt: number }[] {
    return this.statement('SELECT id, pid, created_at AS createdAt FROM leases').all() as { id: string; pid: number; createdAt: number }[];
  }

  addLeaseImage(leaseId: string, imageId: Digest): void {
    this.statement('INSERT OR IGNORE INTO lease_images (lease_id, image_id) VALUES (?, ?)').run(leaseId, imageId);
  }

  addLeaseSnapshot(leaseId: string, key: string): void {
    this.statement('INSERT OR IGNORE INTO lease_snapshots (lease_id, key) VALUES (?, ?)').run(leaseId, key);
  }

  /** The images the given leases hold, with the pid of a holder of each. */
  leasedImages(leaseIds: readonly string[]): Map<Digest, number> {
    const held = new Map<Digest, number>();
    const stmt = this.statement('SELECT image_id AS imageId, pid FROM lease_images JOIN leases ON leases.id = lease_id WHERE lease_id = ?');
    for (const id of leaseIds) for (const row of stmt.all(id) as { imageId: Digest; pid: number }[]) held.set(row.imageId, row.pid);
    return held;
  }

  /** The snapshot keys the given leases hold. */
  leasedSnapshots(leaseIds: readonly string[]): Set<string> {
    const stmt = this.statement('SELECT key FROM lease_snapshots WHERE lease_id = ?', 'pluck');
    return new Set(leaseIds.flatMap((id) => stmt.all(id) as string[]));
  }

  // ---- snapshots ----

  snapshot(key: string): SnapshotRow | undefined {
    const row = this.statement(`SELECT ${SNAPSHOT_COLUMNS} FROM snapshots WHERE key = ?`).get(key) as RawSnapshotRow | undefined;
    return row && snapshotRow(row);
  }

  snapshots(): SnapshotRow[] {
    return (this.statement(`SELECT ${SNAPSHOT_COLUMNS} FROM snapshots ORDER BY dir`).all() as RawSnapshotRow[]).map(snapshotRow);
  }

  /** Records a new snapshot (`owner`: a temporary one and who works on it) and returns its short directory id. */
  addSnapshot(key: string, parent: string | undefined, kind: SnapshotRow['kind'], driver: string, owner?: SnapshotOwner, now = Date.now()): number {
    // A fresh number (never one a removed snapshot had), taken and used in one transaction.
    return this.transaction(() => {
      const dir = this.statement("UPDATE counters SET value = value + 1 WHERE name = 'snapshot_dir' RETURNING value", 'pluck').get() as number;
      this.statement('INSERT INTO snapshots (key, dir, parent, kind, driver, created_at, owner_pid, purpose) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(key, dir, parent ?? null, kind, driver, now, owner?.pid ?? null, owner?.purpose ?? null);
      return dir;
    });
  }

  /**
   * Commits an active snapshot under its new key; `parent`, when given, becomes its parent too. Committed,
   * it is no process's any more: images and leases hold it.
   */
  renameSnapshot(from: string, to: string, parent?: string): void {
    this.statement("UPDATE snapshots SET key = ?, kind = 'committed', parent = coalesce(?, parent), owner_pid = NULL, purpose = NULL WHERE key = ?").run(to, parent ?? null, from);
  }

  deleteSnapshot(key: string): void {
    this.statement('DELETE FROM snapshots WHERE key = ?').run(key);
  }

  snapshotChildren(key: string): string[] {
    return this.statement('SELECT key FROM snapshots WHERE parent = ?', 'pluck').all(key) as string[];
  }

  // ---- containers ----

  setContainerPid(id: string, pid: number | null): void {
    this.statement('UPDATE containers SET pid = ? WHERE id = ?').run(pid, id);
  }

  renameContainer(id: string, name: string): void {
    this.statement('UPDATE containers SET name = ? WHERE id = ?').run(name, id);
  }

  /** A container runs (again): no exit yet, started now, by `pid` (its starter, then its supervisor). */
  restartContainer(id: string, pid: number, when = Date.now()): void {
    this.statement("UPDATE containers SET exit_code = NULL, finished_at = NULL, started_at = ?, pid = ?, paused = 0, error = '' WHERE id = ?").run(when, pid, id);
  }

  /** A start that failed before the process ran: the container is as it was, with the error said. */
  failContainerStart(before: ContainerRow, error: string): void {
    this.statement('UPDATE containers SET exit_code = ?, finished_at = ?, started_at = ?, pid = NULL, paused = 0, error = ? WHERE id = ?').run(before.exitCode, before.finishedAt, before.startedAt, error, before.id);
  }

  addContainer(row: Pick<ContainerRow, 'id' | 'name' | 'imageId' | 'imageName' | 'command' | 'driver' | 'createdAt' | 'settings'>): void {
    this.statement('INSERT INTO containers (id, name, image_id, image_name, command, driver, created_at, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(row.id, row.name, row.imageId, row.imageName, JSON.stringify(row.command), row.driver, row.createdAt, row.settings);
  }

  setContainerSettings(id: string, settings: string): void {
    this.statement('UPDATE containers SET settings = ? WHERE id = ?').run(settings, id);
  }

  setContainerPaused(id: string, paused: boolean): void {
    this.statement('UPDATE containers SET paused = ? WHERE id = ?').run(paused ? 1 : 0, id);
  }

  /** The container's process has exited (`error`: why it could not run at all). */
  finishContainer(id: string, exitCode: number, when = Date.now(), error = ''): void {
    this.statement('UPDATE containers SET exit_code = ?, finished_at = ?, paused = 0, error = ? WHERE id = ?').run(exitCode, when, error, id);
  }

  containers(): ContainerRow[] {
    return this.containerRows('ORDER BY created_at DESC');
  }

  container(id: string): ContainerRow | undefined {
    return this.containerRows('WHERE id = ?', id)[0];
  }

  private containerRows(where: string, ...args: unknown[]): ContainerRow[] {
    const rows = this.statement(`SELECT id, name, image_id AS imageId, image_name AS imageName, command, driver, created_at AS createdAt, started_at AS startedAt, finished_at AS finishedAt, exit_code AS exitCode, pid, settings, paused, error FROM containers ${where}`).all(...args) as (Omit<ContainerRow, 'command' | 'paused'> & { command: string; paused: number })[];
    return rows.map((r) => ({ ...r, command: JSON.parse(r.command) as string[], paused: r.paused !== 0 }));
  }

  deleteContainer(id: string): void {
    this.statement('DELETE FROM containers WHERE id = ?').run(id);
  }

  // ---- volumes ----

  /** Records a volume unless one of that name is recorded; true when this one was added. */
  addVolume(row: VolumeRow): boolean {
    const labels = row.labels === null ? null : JSON.stringify(row.labels);
    const options = row.options === null ? null : JSON.stringify(row.options);
    return this.statement('INSERT OR IGNORE INTO volumes (name, driver, labels, options, anonymous, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(row.name, row.driver, labels, options, row.anonymous ? 1 : 0, row.createdAt).changes > 0;
  }

  volume(name: string): VolumeRow | undefined {
    return this.volumeRows('WHERE name = ?', name)[0];
  }

  volumes(): VolumeRow[] {
    return this.volumeRows('ORDER BY name');
  }

  private volumeRows(where: string, ...args: unknown[]): VolumeRow[] {
    const rows = this.statement(`SELECT name, driver, labels, options, anonymous, created_at AS createdAt FROM volumes ${where}`).all(...args) as { name: string; driver: string; labels: string | null; options: string | null; anonymous: number; createdAt: number }[];
    const parse = (text: string | null): Record<string, string> | null => (text === null ? null : (JSON.parse(text) as Record<string, string>));
    return rows.map((r) => ({ ...r, labels: parse(r.labels), options: parse(r.options), anonymous: r.anonymous !== 0 }));
  }

  deleteVolume(name: string): void {
    this.statement('DELETE FROM volumes WHERE name = ?').run(name);
  }

  // ---- networks ----

  /** Records a network; false when one of that name is recorded. */
  addNetwork(row: NetworkRow): boolean {
    return this.statement('INSERT OR IGNORE INTO networks (id, name, driver, subnet, gateway, bridge, internal, labels, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(row.id, row.name, row.driver, row.subnet, row.gateway, row.bridge, row.internal ? 1 : 0, JSON.stringify(row.labels), JSON.stringify(row.options), row.createdAt).changes > 0;
  }

  networks(): NetworkRow[] {
    const rows = this.statement('SELECT id, name, driver, subnet, gateway, bridge, internal, labels, options, created_at AS createdAt FROM networks ORDER BY name').all() as (Omit<NetworkRow, 'internal' | 'labels' | 'options'> & { internal: number; labels: string; options: string })[];
    return rows.map((r) => ({ ...r, internal: r.internal !== 0, labels: JSON.parse(r.labels) as Record<string, string>, options: JSON.parse(r.options) as Record<string, string> }));
  }

  deleteNetwork(id: string): void {
    this.statement('DELETE FROM networks WHERE id = ?').run(id);
  }

  addEndpoint(row: EndpointRow): void {
    this.statement('INSERT OR REPLACE INTO endpoints (container_id, network_id, ifname, address, gateway, mac, aliases, ports, config, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(row.containerId, row.networkId, row.ifname, row.address, row.gateway, row.mac, JSON.stringify(row.aliases), row.ports, row.config, row.result);
  }

  /** Every endpoint, in the order they were made. */
  endpoints(): EndpointRow[] {
    const rows = this.statement('SELECT container_id AS containerId, network_id AS networkId, ifname, address, gateway, mac, aliases, ports, config, result FROM endpoints ORDER BY rowid').all() as (Omit<EndpointRow, 'aliases'> & { aliases: string })[];
    return rows.map((r) => ({ ...r, aliases: JSON.parse(r.aliases) as string[] }));
  }

  deleteEndpoint(containerId: string, networkId: string): void {
    this.statement('DELETE FROM endpoints WHERE container_id = ? AND network_id = ?').run(containerId, networkId);
  }

  // ---- events ----

  /** Records an event; now and then, forgets all but the last `keep`. */
  addEvent(event: Omit<EventRow, 'seq'>, keep = 1000): void {
    const seq = Number(this.statement('INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?, ?, ?, ?, ?)').run(String(event.timeNano), event.type, event.action, event.actor, JSON.stringify(event.attributes)).lastInsertRowid);
    if (seq % 100 === 0) this.statement('DELETE FROM events WHERE seq <= ?').run(seq - keep);
  }

  /** The events after `seq`, oldest first. */
  eventsAfter(seq: number): EventRow[] {
    const rows = this.statement('SELECT seq, time_nano AS timeNano, type, action, actor, attributes FROM events WHERE seq > ? ORDER BY seq').all(seq) as { seq: number; timeNano: string; type: string; action: string; actor: string; attributes: string }[];
    return rows.map((r) => ({ ...r, timeNano: BigInt(r.timeNano), attributes: JSON.parse(r.attributes) as Record<string, string> }));
  }

  /** The last `action` event of `actor`, if the store still has it. */
  lastEvent(actor: string, action: string): EventRow | undefined {
    const row = this.statement('SELECT seq, time_nano AS timeNano, type, action, actor, attributes FROM events WHERE actor = ? AND action = ? ORDER BY seq DESC LIMIT 1').get(actor, action) as { seq: number; timeNano: string; type: string; action: string; actor: string; attributes: string } | undefined;
    return row && { ...row, timeNano: BigInt(row.timeNano), attributes: JSON.parse(row.attributes) as Record<string, string> };
  }

  /** The last event's number (0 when none): a follower from now reads after it. */
  lastEventSeq(): number {
    return (this.statement('SELECT COALESCE(MAX(seq), 0) FROM events', 'pluck').get() as number) ?? 0;
  }

  // ---- build cache ----

  cachedImage(key: string): Digest | undefined {
    return this.statement('SELECT image_id FROM build_cache WHERE key = ?', 'pluck').get(key) as Digest | undefined;
  }

  putCacheRecord(key: string, imageId: Digest, now = Date.now()): void {
    this.statement('INSERT OR REPLACE INTO build_cache (key, image_id, created_at) VALUES (?, ?, ?)').run(key, imageId, now);
  }

  /**
   * The stat cache of build-context files. `under` reads every remembered file below a directory in one
   * query (a range of the primary key); `put` records many in one transaction: a context of 20,000
   * files costs one statement each way, not one (and one commit) per file. `checksumOf` and
   * `putChecksum` keep a COPY's whole checksum with the digest of its sources' listing (so an unchanged
   * context of 20,000 files costs one row): in the same table, the listing's digest as the stat, under a
   * path that is not absolute (SOURCES_ROW first), which no `under` range reaches, nor an older kiln's.
   */
  fileDigests(): {
    under(dir: string): Map<string, { stat: string; digest: Digest }>;
    put(files: readonly { path: string; stat: string; digest: Digest }[]): void;
    checksumOf(sources: string): { listing: Digest; checksum: Digest } | undefined;
    putChecksum(sources: string, listing: Digest, checksum: Digest): void;
  } {
    return {
      checksumOf: (sources) => {
        const row = this.statement('SELECT stat, digest FROM file_digests WHERE path = ?', 'raw').get(`${SOURCES_ROW}${sources}`) as [Digest, Digest] | undefined;
        return row && { listing: row[0], checksum: row[1] };
      },
      putChecksum: (sources, listing, checksum) => {
        this.statement('INSERT OR REPLACE INTO file_digests (path, stat, digest) VALUES (?, ?, ?)').run(`${SOURCES_ROW}${sources}`, listing, checksum);
      },
      under: (dir) => {
        const prefix = dir.endsWith('/') ? dir : `${dir}/`;
        // Paths below `prefix` sort between it and the same string with its last '/' bumped to '0'.
        const rows = this.statement('SELECT path, stat, digest FROM file_digests WHERE path > ? AND path < ?', 'raw').all(prefix, `${prefix.slice(0, -1)}0`) as [string, string, Digest][];
        return new Map(rows.map(([path, stat, digest]) => [path, { stat, digest }]));
      },
      put: (files) => {
        if (files.length === 0) return;
        const put = this.statement('INSERT OR REPLACE INTO file_digests (path, stat, digest) VALUES (?, ?, ?)');
        this.transaction(() => {
          for (const f of files) put.run(f.path, f.stat, f.digest);
        });
      },
    };
  }

  // ---- what kiln built ----

  /** Records (or records again, after a rebuild that made the same image) where an image's history comes from. */
  putBuildRecord(record: BuildRecord): void {
    this.transaction(() => {
      this.statement('DELETE FROM build_records WHERE image_id = ?').run(record.imageId);
      this.statement('INSERT INTO build_records (image_id, dockerfile, base_id, base_layers, stages) VALUES (?, ?, ?, ?, ?)').run(record.imageId, record.dockerfile, record.baseId, record.baseLayers, record.stages);
      const line = this.statement('INSERT INTO build_lines (image_id, position, line, end_line, instruction) VALUES (?, ?, ?, ?, ?)');
      for (const l of record.lines) line.run(record.imageId, l.position, l.line, l.endLine, l.instruction);
    });
  }

  buildRecord(imageId: string): BuildRecord | undefined {
    const row = this.statement('SELECT image_id AS imageId, dockerfile, base_id AS baseId, base_layers AS baseLayers, stages FROM build_records WHERE image_id = ?').get(imageId) as Omit<BuildRecord, 'lines'> | undefined;
    if (!row) return undefined;
    const lines = this.statement('SELECT position, line, end_line AS endLine, instruction FROM build_lines WHERE image_id = ? ORDER BY position').all(imageId) as BuildRecord['lines'];
    return { ...row, lines };
  }

  // ---- registries ----

  addBlobSource(digest: Digest, registry: string, repository: string): void {
    this.statement('INSERT OR IGNORE INTO blob_sources (digest, registry, repository) VALUES (?, ?, ?)').run(digest, registry, repository);
  }

  /** Repositories of a registry known to hold a blob. */
  blobSources(digest: Digest, registry: string): string[] {
    return this.statement('SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? ORDER BY repository', 'pluck').all(digest, registry) as string[];
  }

  // ---- GC roots and integrity ----

  /** Every blob some image or live lease holds on to. */
  referencedBlobs(liveLeases: readonly string[]): Set<Digest> {
    const fromImages = this.statement('SELECT DISTINCT digest FROM image_blobs', 'pluck').all() as Digest[];
    const set = new Set<Digest>(fromImages);
    const lease = this.statement('SELECT digest FROM lease_blobs WHERE lease_id = ?', 'pluck');
    for (const id of liveLeases) for (const d of lease.all(id) as Digest[]) set.add(d);
    return set;
  }

  /** Rows that point at something missing: the database's own consistency, for `system check`. */
  danglingReferences(): string[] {
    const problems: string[] = [];
    for (const row of this.statement('SELECT name, image_id FROM names WHERE image_id NOT IN (SELECT id FROM images)').all() as { name: string; image_id: string }[]) {
      problems.push(`name ${row.name} points at missing image ${row.image_id}`);
    }
    for (const row of this.statement('SELECT image_id, diff_id FROM image_layers WHERE diff_id NOT IN (SELECT diff_id FROM layer_blobs)').all() as { image_id: string; diff_id: string }[]) {
      problems.push(`image ${row.image_id} has layer ${row.diff_id} with no stored blob record`);
    }
    const fk = this.db.pragma('foreign_key_check') as unknown[];
    if (fk.length > 0) problems.push(`${fk.length} foreign key violations`);
    const integrity = this.db.pragma('integrity_check', { simple: true }) as string;
    if (integrity !== 'ok') problems.push(`sqlite integrity check: ${integrity}`);
    return problems;
  }
}

/** How long SQLite itself waits for another process's write lock before kiln is told (and says so). */
const LOCK_POLL_MS = 2000;

/** How long kiln waits for the store's write lock in all: `$KILN_LOCK_TIMEOUT_SECONDS`, else 10 minutes. */
function lockPatienceMs(): number {
  const seconds = Number(process.env.KILN_LOCK_TIMEOUT_SECONDS ?? 600);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 600_000;
}

/**
 * Runs one call on the database (a statement, a transaction, a pragma) with kiln's policy for what SQLite
 * throws. Another kiln process holding the write lock (a long prune, a big load) is waited for: after a
 * couple of seconds kiln says so once on stderr, and gives up with BUSY only after the patience above.
 * A call that meets the lock inside a transaction is not retried (its transaction would be half done).
 * A full disk is NO_SPACE naming the store.
 */
function waitingForTheLock<R>(run: () => R, connection: Database.Database, path: string): R {
  const root = dirname(path);
  const started = Date.now();
  let told = false;
  for (;;) {
    try {
      return run();
    } catch (err) {
      if (!String((err as { code?: unknown } | null)?.code).startsWith('SQLITE_BUSY')) throw storeWriteError(err, root, path);
      const waited = Date.now() - started;
      if (connection.inTransaction || waited >= lockPatienceMs()) {
        throw new KilnError('BUSY', `the store at ${root} stayed locked by another kiln process for ${Math.round(waited / 1000)} s (a long prune, load or build?); try again when it has finished`, { cause: err });
      }
      if (!told) process.stderr.write(`kiln: another kiln process is writing to the store at ${root}; waiting for it\n`);
      told = true;
    }
  }
}

/**
 * The connection with every call through it (statements it prepares, transactions, pragmas) run by
 * `guard`: one place for every use of the database, so that SQLite's faults a person can act on (a full
 * disk, another process's lock) reach them as kiln's policy says, whichever statement met them.
 */
function translatingErrors<T extends object>(target: T, guard: (run: () => unknown) => unknown): T {
  const call = (run: () => unknown): unknown => {
    const result = guard(run);
    // Statements (prepare, pluck) and transaction functions carry on the guard; rows and values do not need it.
    const sqliteObject = typeof result === 'function' || (typeof result === 'object' && result !== null && 'run' in result);
    return sqliteObject ? translatingErrors(result as object, guard) : result;
  };
  // The proxy stands on a stand-in, as the proxied objects have read-only properties (a transaction's
  // `immediate`) that a proxy of them would have to return unchanged.
  const standIn = typeof target === 'function' ? () => undefined : {};
  return new Proxy(standIn, {
    get(_, property) {
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (...args: unknown[]) => call(() => Reflect.apply(value as (...a: unknown[]) => unknown, target, args)) : value;
    },
    apply(_, thisArg, args: unknown[]) {
      return call(() => Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args));
    },
  }) as T;
}
