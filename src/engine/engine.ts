import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, isErrno, isKilnError } from '../errors.js';
import type { ImageRow } from '../meta/db.js';
import { liveLeases } from '../gc/gc.js';
import { chainIds } from '../image/image.js';
import { type Digest, shortId } from '../oci/digest.js';
import { EMPTY_CONTAINER_CONFIG, type HistoryEntry } from '../oci/types.js';
import { type Reference, familiarName, familiarString, parseReference, referenceString, repositoryName, storedReference, withDefaultTag } from '../reference/reference.js';
import { type Lease, LocalStore } from '../transport/store.js';
import { recordEvent, recordImageEvent } from './events.js';
import { defaultRoot } from './root.js';
import { type Filters, booleanFilter, checkFilterKeys, matchLabels, parseTimestamp } from './filters.js';
import type { CheckReport, DeleteEvent, DiskUsage, HistoryItem, ImageInspect, ImageSummary, PruneReport } from './types.js';

/** How a person named an image: by one of its names, or by (a prefix of) its ID. */
interface Resolved {
  readonly row: ImageRow;
  readonly byName?: string;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Seconds since the epoch of an RFC 3339 time, 0 when absent or unparsable (Docker shows that as N/A). */
function unixSeconds(created: string): number {
  const ms = Date.parse(created);
  return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
}

/**
 * An RFC 3339 time in nanoseconds since the epoch, its fraction to the nanosecond (Date keeps
 * milliseconds): `images -f before=/since=` compare creation times whole, as Docker's time.Time does, so
 * an image made in the same second as another is still before or after it. 0 when it is no time.
 */
function unixNanos(created: string): bigint {
  const ms = Date.parse(created);
  if (Number.isNaN(ms)) return 0n;
  const fraction = /^[^.]*T[^.]*\.(\d+)/.exec(created)?.[1] ?? '';
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt(fraction.slice(0, 9).padEnd(9, '0'));
}

/**
 * `docker images`' record of an image. Its labels are read when first asked for (a listing parses none
 * unless a filter or the API needs them), through an own, enumerable getter as an object literal's would
 * be; but one function for every summary, where a literal's getter is a new function for each object,
 * which gave each summary a hidden class of its own (a kB each on a listing of hundreds).
 */
class Summary implements ImageSummary {
  declare readonly Id: string;
  declare readonly ParentId: string;
  declare readonly RepoTags: readonly string[];
  declare readonly RepoDigests: readonly string[];
  declare readonly Created: number;
  declare readonly Size: number;
  declare readonly VirtualSize: number;
  declare readonly SharedSize: number;
  declare readonly Labels: Readonly<Record<string, string>>;
  declare readonly Containers: number;
  readonly #row: ImageRow;

  static readonly #LABELS: PropertyDescriptor = {
    get(this: Summary) {
      return this.#row.labels;
    },
    enumerable: true,
    configurable: true,
  };

  constructor(row: ImageRow, tags: readonly string[], digests: readonly string[]) {
    this.#row = row;
    // In the Engine API's order (the JSON of /images/json).
    this.Id = row.id;
    this.ParentId = row.parent;
    this.RepoTags = tags;
    this.RepoDigests = digests;
    this.Created = unixSeconds(row.created);
    this.Size = row.size;
    this.VirtualSize = row.size;
    this.SharedSize = -1;
    Object.defineProperty(this, 'Labels', Summary.#LABELS);
    this.Containers = -1;
  }
}

/**
 * The one service that the CLI and the Engine API both call. It holds policy (Docker's rules for naming,
 * deleting and pruning images) and owns no format: formats live in `transport`, records in `meta`.
 */
export class Engine {
  constructor(readonly store: LocalStore) {}

  static async open(root = defaultRoot()): Promise<Engine> {
    return new Engine(await LocalStore.open(root));
  }

  close(): void {
    this.store.close();
  }

  private get db() {
    return this.store.db;
  }

  // ---- resolving what a person typed ----

  /** Finds an image by name, full ID, or unique ID prefix, with Docker's precedence and messages. */
  resolve(nameOrId: string): Resolved {
    const full = /^(?:sha256:)?([a-f0-9]{64})$/.exec(nameOrId);
    if (full) {
      const row = this.db.image(`sha256:${full[1]}`);
      if (row) return { row };
      throw new KilnError('NOT_FOUND', `No such image: ${nameOrId}`);
    }
    let ref: Reference | undefined;
    let refError: KilnError | undefined;
    try {
      ref = parseReference(nameOrId);
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      refError = err;
    }
    if (ref) {
      const name = referenceString(withDefaultTag(ref));
      const named = this.db.name(name);
      const row = named && this.db.image(named.imageId);
      if (row) return { row, byName: name };
      if (ref.digest && !ref.tag) {
        // name@digest may also name the image by its config digest, as Docker accepts.
        const byId = this.db.image(ref.digest);
        if (byId && this.db.namesOf(byId.id).some((n) => repositoryName(parseReference(n.name)) === repositoryName(ref))) return { row: byId };
      }
    }
    const prefix = /^(?:sha256:)?([a-f0-9]{1,63})$/.exec(nameOrId);
    if (prefix) {
      const matches = this.db.imagesByIdPrefix(`sha256:${prefix[1]}`);
      const [first] = matches;
      if (matches.length > 1) throw new KilnError('CONFLICT', `multiple IDs found with provided prefix: ${nameOrId}`);
      const row = first && this.db.image(first);
      if (row) return { row };
    }
    if (refError) throw refError;
    throw new KilnError('NOT_FOUND', `No such image: ${nameOrId}`);
  }

  image(nameOrId: string): ImageRow {
    return this.resolve(nameOrId).row;
  }

  /** The image, or undefined when the store has none by that name or ID (a bad name still throws). */
  imageIfPresent(nameOrId: string): ImageRow | undefined {
    try {
      return this.image(nameOrId);
    } catch (err) {
      if (err instanceof KilnError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /**
   * The image (by name or ID), held for the lease's operation (see Lease) in the same transaction that
   * finds it: a prune or rmi in another process cannot take it from under the operation.
   */
  holdImage(lease: Lease, nameOrId: string): ImageRow {
    return this.db.transaction(() => {
      const row = this.image(nameOrId);
      this.store.holdImage(lease, row.id);
      return row;
    });
  }

  /** {@link holdImage}, or undefined when the store has no image by that name or ID. */
  holdImageIfPresent(lease: Lease, nameOrId: string): ImageRow | undefined {
    return this.db.transaction(() => {
      const row = this.imageIfPresent(nameOrId);
      if (row) this.store.holdImage(lease, row.id);
      return row;
    });
  }

  // ---- queries ----

  private repoTags(id: Digest): string[] {
    return this.db.namesOf(id).filter((n) => n.kind === 'tag').map((n) => familiarString(storedReference(n.name)));
  }

  private repoDigests(id: Digest): string[] {
    return this.db.namesOf(id).filter((n) => n.kind === 'digest').map((n) => familiarString(storedReference(n.name)));
  }

  private summary(row: ImageRow, tags = this.repoTags(row.id), digests = this.repoDigests(row.id)): ImageSummary {
    return new Summary(row, tags, digests);
  }

  /**
   * `docker images`: tagged images and top-level dangling ones that are not a build's intermediate
   * images (all with `all`), newest first. A
   * `reference` filter keeps only the names that match it, as Docker does.
   */
  listImages(options: { all?: boolean; filters?: Filters } = {}): ImageSummary[] {
    const filters = options.filters ?? new Map<string, string[]>();
    checkFilterKeys(filters, ['dangling', 'label', 'before', 'since', 'reference']);
    const dangling = booleanFilter(filters, 'dangling');
    const createdOf = (key: string): bigint | undefined => {
      const values = filters.get(key);
      if (!values?.length) return undefined;
      const times = values.map((v) => unixNanos(this.image(v).created));
      return times.reduce((least, time) => (time < least ? time : least));
    };
    const before = createdOf('before');
    const since = createdOf('since');
    const patterns = filters.get('reference') ?? [];
    const labelFilters = filters.get('label') ?? [];
    const result: ImageSummary[] = [];
    const namesByImage = this.db.namesByImage();
    for (const row of this.db.images()) {
      if (before !== undefined || since !== undefined) {
        const created = unixNanos(row.created);
        if (before !== undefined && created >= before) continue;
        if (since !== undefined && created <= since) continue;
      }
      if (labelFilters.length > 0 && !matchLabels(row.labels, labelFilters)) continue;
      const names = namesByImage.get(row.id) ?? [];
      const isDangling = names.length === 0;
      if (dangling === true && !isDangling) continue;
      if (dangling === false && isDangling) continue;
      // The names a reference filter keeps, in one pass (a listing goes through every name of every image).
      const tags: string[] = [];
      const digests: string[] = [];
      for (const { kind, name } of names) {
        const ref = storedReference(name);
        if (patterns.length && !patterns.some((p) => referenceMatches(p, ref))) continue;
        (kind === 'tag' ? tags : digests).push(familiarString(ref));
      }
      if (patterns.length && tags.length === 0 && digests.length === 0) continue;
      if (isDangling && !options.all && (row.intermediate || this.db.childImages(row.id).length > 0)) continue;
      result.push(this.summary(row, tags, digests));
    }
    return result.sort((a, b) => b.Created - a.Created);
  }

  inspect(nameOrId: string): ImageInspect {
    const row = this.image(nameOrId);
    const config = this.store.configOf(row.id);
    return {
      Id: row.id,
      RepoTags: this.repoTags(row.id),
      RepoDigests: this.repoDigests(row.id),
      Parent: row.parent,
      Comment: config.comment ?? '',
      Created: config.created ?? ZERO_TIME,
      Container: config.container ?? '',
      ContainerConfig: config.container_config ?? EMPTY_CONTAINER_CONFIG,
      DockerVersion: config.docker_version ?? '',
      Author: config.author ?? '',
      Config: config.config ?? {},
      Architecture: config.architecture,
      ...(config.variant ? { Variant: config.variant } : {}),
      Os: config.os,
      ...(config['os.version'] ? { OsVersion: config['os.version'] } : {}),
      Size: row.size,
      VirtualSize: row.size,
      // As /info names the driver. Where the layers are is the store's business (snapshots made on use).
      GraphDriver: { Name: 'overlay2', Data: {} },
      RootFS: { Type: config.rootfs.type, Layers: [...config.rootfs.diff_ids] },
      Metadata: { LastTagTime: row.lastTagTime ? new Date(row.lastTagTime).toISOString() : ZERO_TIME },
    };
  }

  /** `docker history`: one entry per history record, newest first; sizes from the layers they made. */
  history(nameOrId: string): HistoryItem[] {
    const row = this.image(nameOrId);
    const config = this.store.configOf(row.id);
    const diffSizes = this.db.imageDiffIds(row.id).map((d) => this.db.layerBlobsOf(d)[0]?.diffSize ?? 0);
    const records: readonly HistoryEntry[] = config.history?.length ? config.history : diffSizes.map(() => ({ created: config.created }));
    let layer = 0;
    const items = records.map((h): HistoryItem => {
      const size = h.empty_layer ? 0 : (diffSizes[layer++] ?? 0);
      return { Id: '<missing>', Created: unixSeconds(h.created ?? ''), CreatedBy: h.created_by ?? '', Tags: null, Size: size, Comment: h.comment ?? '' };
    });
    // As Docker's classic builder shows it: each image of the parent chain still in the store (a build's
    // steps, the base image) names the row of its own last history entry; the rest are <missing>.
    const seen = new Set<string>();
    for (let image: typeof row | undefined = row; image && !seen.has(image.id); image = image.parent === '' ? undefined : this.db.image(image.parent)) {
      seen.add(image.id);
      const at = (image === row ? items.length : (this.store.configOf(image.id).history?.length ?? 0)) - 1;
      const item = items[at];
      if (item && item.Id === '<missing>') items[at] = { ...item, Id: image.id, Tags: this.repoTags(image.id) };
    }
    items.reverse();
    return items;
  }

  // ---- names ----

  /** `docker tag SOURCE TARGET`. */
  tag(source: string, target: string): void {
    const ref = parseReference(target);
    if (ref.digest) throw new KilnError('INVALID_ARGUMENT', `refusing to create a tag with a digest reference: ${target}`);
    // Found and named in one transaction: an rmi in another process cannot come in between.
    const id = this.db.transaction(() => {
      const found = this.image(source).id;
      this.db.setName(referenceString(withDefaultTag(ref)), found, 'tag');
      return found;
    });
    recordImageEvent(this, 'tag', id, familiarString(withDefaultTag(ref)));
  }

  // ---- deleting ----

  /**
   * `docker rmi`: by name it untags, and deletes the image when that was its last name; by ID it
   * untags everything (refusing, unless forced, when several repositories share it) and deletes.
   */
  removeImage(nameOrId: string, options: { force?: boolean; noPrune?: boolean } = {}): DeleteEvent[] {
    return this.db.transaction(() => {
      const { row, byName } = this.resolve(nameOrId);
      const events: DeleteEvent[] = [];
      const untag = (name: string): void => {
        this.db.deleteName(name);
        events.push({ Untagged: familiarString(parseReference(name)) });
        recordImageEvent(this, 'untag', row.id);
      };
      const user = this.db.containers().find((c) => c.imageId === row.id);
      const holder = this.heldImages().get(row.id);
      if (holder !== undefined && !byName) {
        throw new KilnError('CONFLICT', `conflict: unable to delete ${shortId(row.id)} (cannot be forced) - image is being used by a running kiln operation (pid ${holder}); try again when it has finished`);
      }
      const lastName = this.db.namesOf(row.id).length <= 1;
      if (user && !options.force && (!byName || lastName)) {
        throw new KilnError('CONFLICT', byName ? `conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${shortId(user.id)} is using its referenced image ${shortId(row.id)}` : `conflict: unable to delete ${shortId(row.id)} (must be forced) - image is being used by stopped container ${shortId(user.id)}`);
      }
      if (byName) {
        untag(byName);
        const repo = repositoryName(parseReference(byName));
        const sameRepo = this.db.namesOf(row.id).filter((n) => repositoryName(parseReference(n.name)) === repo);
        // When no tag of the removed tag's repository is left, its repo digests go too, as in Docker.
        if (!byName.includes('@') && sameRepo.every((n) => n.kind === 'digest')) sameRepo.forEach((n) => untag(n.name));
        if (this.db.namesOf(row.id).length > 0) return events;
      } else {
        const names = this.db.namesOf(row.id);
        const repos = new Set(names.map((n) => repositoryName(parseReference(n.name))));
        if (repos.size > 1 && !options.force) {
          throw new KilnError('CONFLICT', `conflict: unable to delete ${shortId(row.id)} (must be forced) - image is referenced in multiple repositories`);
        }
        names.forEach((n) => untag(n.name));
      }
      events.push(...this.deleteUnnamed(row, options.noPrune ?? false));
      return events;
    });
  }

  /** The images running operations hold (see Lease), each with the pid of a holder. */
  private heldImages(): Map<Digest, number> {
    return this.db.leasedImages(liveLeases(this.db));
  }

  /**
   * Deletes an image that has no names left, then (unless noPrune) its parents that are left dangling.
   * One that a container uses or a running operation holds stays, dangling (rmi -f, or rmi of its last
   * name during a build on it, got here); a later prune takes it once it is free.
   */
  private deleteUnnamed(row: ImageRow, noPrune: boolean): DeleteEvent[] {
    const user = this.db.containers().find((c) => c.imageId === row.id);
    if (user || this.heldImages().has(row.id)) return [];
    if (this.db.childImages(row.id).length > 0) {
      throw new KilnError('CONFLICT', `conflict: unable to delete ${shortId(row.id)} (cannot be forced) - image has dependent child images`);
    }
    const chain = chainIds(this.db.imageDiffIds(row.id));
    recordImageEvent(this, 'delete', row.id);
    this.db.deleteImage(row.id);
    const stillUsed = new Set(this.db.images().flatMap((other) => chainIds(this.db.imageDiffIds(other.id))));
    const events: DeleteEvent[] = [{ Deleted: row.id }, ...chain.reverse().filter((c) => !stillUsed.has(c)).map((c) => ({ Deleted: c }))];
    const parent = row.parent ? this.db.image(row.parent) : undefined;
    if (!noPrune && parent && this.db.namesOf(parent.id).length === 0 && this.db.childImages(parent.id).length === 0) {
      events.push(...this.deleteUnnamed(parent, noPrune));
    }
    return events;
  }

  /** Removes several images as `docker rmi A B C` does: each independently, errors collected. */
  async removeImages(names: readonly string[], options: { force?: boolean; noPrune?: boolean } = {}): Promise<{ events: DeleteEvent[]; errors: KilnError[] }> {
    const events: DeleteEvent[] = [];
    const errors: KilnError[] = [];
    for (const name of names) {
      try {
        events.push(...this.removeImage(name, options));
      } catch (err) {
        if (!isKilnError(err)) throw err;
        errors.push(err);
      }
    }
    if (events.length > 0) await this.store.gc();
    return { events, errors };
  }

  /**
   * `docker image prune`: dangling images, or with `all` every image that no container uses and no
   * running operation (a build on it, a save, a pull writing it) holds.
   */
  async pruneImages(options: { all?: boolean; filters?: Filters } = {}): Promise<PruneReport> {
    const filters = options.filters ?? new Map<string, string[]>();
    checkFilterKeys(filters, ['dangling', 'until', 'label', 'label!']);
    const all = options.all || booleanFilter(filters, 'dangling') === false;
    const until = filters.get('until')?.map((v) => parseTimestamp(v));
    const events = this.db.transaction(() => {
      const deleted: DeleteEvent[] = [];
      const held = this.heldImages();
      const used = new Set(this.db.containers().map((c) => c.imageId));
      for (const row of this.db.images()) {
        if (!this.db.image(row.id)) continue; // removed above as someone's dangling parent
        const names = this.db.namesOf(row.id);
        if (!all && names.length > 0) continue;
        if (this.db.childImages(row.id).length > 0) continue;
        if (used.has(row.id) || held.has(row.id)) continue;
        if (until && !until.every((t) => Date.parse(row.created) < t)) continue;
        if (!matchLabels(row.labels, filters.get('label') ?? [])) continue;
        if (!matchLabels(row.labels, filters.get('label!') ?? [], true)) continue;
        for (const n of names) {
          this.db.deleteName(n.name);
          deleted.push({ Untagged: familiarString(parseReference(n.name)) });
          recordImageEvent(this, 'untag', row.id);
        }
        deleted.push(...this.deleteUnnamed(row, false));
      }
      return deleted;
    });
    const { reclaimedBytes } = await this.store.gc();
    recordEvent(this, 'image', 'prune', '', { reclaimed: String(reclaimedBytes) });
    return { ImagesDeleted: events, SpaceReclaimed: reclaimedBytes };
  }

  // ---- space and integrity ----

  diskUsage(): DiskUsage {
    const uses = this.db.layerUseCounts();
    const sizeOf = (diffId: Digest): number => this.db.layerBlobsOf(diffId)[0]?.diffSize ?? 0;
    let layersSize = 0;
    for (const diffId of uses.keys()) layersSize += sizeOf(diffId);
    // Like `docker images` without -a: a build's intermediate images are not counted.
    const users = new Map<string, number>();
    for (const container of this.db.containers()) users.set(container.imageId, (users.get(container.imageId) ?? 0) + 1);
    const images = this.db.images().filter((row) => this.db.namesOf(row.id).length > 0 || (!row.intermediate && this.db.childImages(row.id).length === 0)).map((row) => {
      const shared = this.db.imageDiffIds(row.id).reduce((sum, d) => sum + ((uses.get(d) ?? 0) > 1 ? sizeOf(d) : 0), 0);
      return { summary: { ...this.summary(row), SharedSize: shared, Containers: users.get(row.id) ?? 0 }, sharedSize: shared, uniqueSize: row.size - shared };
    });
    const activeSize = images.filter((i) => users.has(i.summary.Id)).reduce((sum, i) => sum + i.summary.Size, 0);
    return { LayersSize: layersSize, Images: images, ReclaimableImagesSize: Math.max(0, layersSize - activeSize), ActiveImages: users.size };
  }

  /** `system check`: re-hashes every blob and checks every record; never changes anything. */
  async check(): Promise<CheckReport> {
    const problems: string[] = [...this.db.danglingReferences()];
    const orphans: string[] = [];
    let blobs = 0;
    const present = new Set<Digest>();
    for await (const blob of this.store.content.list()) {
      blobs++;
      present.add(blob.digest);
      if (!(await this.store.content.verify(blob.digest))) problems.push(`blob ${blob.digest} does not match its digest`);
    }
    const images = this.db.images();
    for (const row of images) {
      for (const digest of this.db.imageBlobs(row.id)) {
        if (!present.has(digest)) problems.push(`image ${row.id} needs blob ${digest}, which is missing`);
      }
      // A config kiln cannot read (too big, not an image config) breaks every command that names the image;
      // one gone since the listing was removed meanwhile (an rmi or prune of another kiln), which is no damage.
      try {
        if (present.has(row.id)) this.store.configOf(row.id);
      } catch (err) {
        if (isErrno(err, 'ENOENT') || isKilnError(err, 'NOT_FOUND')) continue;
        if (!isKilnError(err)) throw err;
        problems.push(`image ${row.id} cannot be read: ${err.message}`);
      }
    }
    const referenced = this.db.referencedBlobs(this.db.leases().map((l) => l.id));
    for (const digest of present) if (!referenced.has(digest)) orphans.push(`unreferenced blob ${digest}`);
    for (const path of await this.store.content.strays()) orphans.push(`left-over file ${path}`);
    const snapshotsDir = this.store.paths.snapshots;
    const dirs = new Set(await readdir(snapshotsDir).catch(() => [] as string[]));
    for (const snapshot of this.db.snapshots()) {
      const present = dirs.delete(String(snapshot.dir));
      // A snapshot is recorded before its directory is made: a kill in between leaves the record alone,
      // which prune removes like the rest of what the dead kiln left (an unpack, a build step, a container).
      // Only a committed snapshot without its directory is damage.
      if (snapshot.owner?.purpose === 'extract') orphans.push(`unfinished layer unpack ${snapshot.key}`);
      else if (snapshot.owner !== null) orphans.push(`build step snapshot ${snapshot.key}`);
      else if (!present && snapshot.kind !== 'committed') orphans.push(`unfinished snapshot ${snapshot.key} (its directory was never made)`);
      else if (!present) problems.push(`snapshot ${snapshot.key} has no directory ${join(snapshotsDir, String(snapshot.dir))} (system prune removes it; its layer is unpacked again when needed)`);
    }
    for (const dir of dirs) orphans.push(`left-over snapshot directory ${join(snapshotsDir, dir)}`);
    // The container verbs and the builder are loaded only here: every command opens an engine, few check the store.
    const [{ abandonedBundles }, { abandonedBuilds }] = await Promise.all([import('./containers.js'), import('./build.js')]);
    for (const id of await abandonedBundles(this)) orphans.push(`container ${shortId(id)} left by a kiln that died (system prune removes it)`);
    for (const name of await abandonedBuilds(this)) orphans.push(`build work ${name} left by a kiln that died (system prune removes it)`);
    return { blobs, images: images.length, names: this.db.names().length, problems, orphans };
  }
}

/** Docker's `reference=` filter: a glob over the familiar name, with or without the tag. */
function referenceMatches(pattern: string, ref: Reference): boolean {
  const glob = new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  const full = familiarString(ref);
  const name = familiarName(ref);
  return glob.test(full) || glob.test(name);
}
