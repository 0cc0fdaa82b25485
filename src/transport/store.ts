import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomHex } from '../random.js';
import type { StorePaths } from '../content/paths.js';
import { type ContentWriter, ContentStore, type Expected, type VerifiedBlob } from '../content/store.js';
import { KilnError, isKilnError } from '../errors.js';
import { collectGarbage, type GcResult } from '../gc/gc.js';
import type { Image, Layer, NamedImage, RawManifest } from '../image/image.js';
import type { TarWalker } from '../layer/scan.js';
import { type ImageRow, type LayerBlobRow, MetaDb } from '../meta/db.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { MediaType, isManifestType, ociLayerType, layerCompression } from '../oci/mediatypes.js';
import type { Descriptor, ImageConfig, Manifest } from '../oci/types.js';
import { MAX_CONFIG_BYTES, MAX_LAYERS } from '../oci/limits.js';
import { parseJson, validateImageConfig, validateManifest } from '../oci/validate.js';

/** A source passed on as it is read, noting whether it came to its end or failed (with its own error). */
class WatchedSource implements AsyncIterable<Uint8Array> {
  ended = false;
  failure: { readonly error: unknown } | undefined;

  constructor(private readonly source: AsyncIterable<Uint8Array>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      yield* this.source;
    } catch (error) {
      this.failure = { error };
      throw error;
    }
    this.ended = true;
  }
}

/**
 * A lease keeps what a running operation uses safe from a concurrent GC, prune or rmi in any kiln process:
 * the blobs it has committed but not yet tied to an image, the images it reads or makes, and the layer
 * snapshots it unpacks before an image names them. Lifecycle: `LocalStore.withLease` creates it, things
 * are added as the operation takes them (atomically with checking that they are there), and it is
 * deleted when the operation ends; a lease of a killed process expires at the next GC.
 */
export interface Lease {
  readonly id: string;
}

/**
 * Makes a directory and its missing parents. Not mkdirSync's `recursive`, which loops for ever where a
 * parent exists but refuses a new entry with ENOENT (`--root /proc/x`): here the second refusal is final.
 */
function makeDirectories(path: string): void {
  try {
    mkdirSync(path);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw err;
  }
  makeDirectories(dirname(path));
  mkdirSync(path);
}

/** How many parsed configs and images a store keeps (see configOf and image), and at most how many bytes of JSON each kind was. */
const KEPT_CONFIGS = 64;
const KEPT_CONFIG_BYTES = 16 << 20;

/**
 * The values last read and parsed, by key, up to a number of them and of the bytes they were read from;
 * the oldest go first. For what is immutable once stored: a config is its ID's content, an image its
 * config's and its manifest's.
 */
class Kept<V> {
  private readonly values = new Map<string, { readonly value: V; readonly bytes: number }>();
  private bytes = 0;

  get(key: string): V | undefined {
    return this.values.get(key)?.value;
  }

  /** Keeps `value` (read from `bytes` bytes) and returns it. */
  keep(key: string, value: V, bytes: number): V {
    this.values.set(key, { value, bytes });
    this.bytes += bytes;
    for (const [oldest, kept] of this.values) {
      if (this.values.size <= KEPT_CONFIGS && this.bytes <= KEPT_CONFIG_BYTES) break;
      this.values.delete(oldest);
      this.bytes -= kept.bytes;
    }
    return value;
  }
}

/**
 * The local image store: blobs in a {@link ContentStore}, records in a {@link MetaDb}, under one root.
 * Images enter through {@link writeImage} and leave through {@link image}; nothing else writes blobs.
 */
export class LocalStore {
  /** See heldBy. */
  private readonly heldBlobs = new WeakMap<Lease, Set<Digest>>();
  /** See configOf: parsed configs by image ID. */
  private readonly configs = new Kept<ImageConfig>();
  /** See image: images by their config's and manifest's digests. */
  private readonly images = new Kept<Image>();

  private constructor(
    readonly root: string,
    readonly content: ContentStore,
    readonly db: MetaDb,
  ) {}

  /** Synchronous work (see ContentStore.init), a failure of which rejects. */
  static open(root: string): Promise<LocalStore> {
    return new Promise((resolve) => {
      const content = new ContentStore(root);
      try {
        makeDirectories(root);
        content.init();
      } catch (err) {
        throw new KilnError('INVALID_ARGUMENT', `cannot use ${root} as kiln's store: ${(err as Error).message} (choose another with --root or KILN_ROOT)`, { cause: err });
      }
      resolve(new LocalStore(root, content, new MetaDb(content.paths.db)));
    });
  }

  close(): void {
    this.db.close();
  }

  /** Every path under the store's root. */
  get paths(): StorePaths {
    return this.content.paths;
  }

  /**
   * Runs an operation under a lease. When it fails, the blobs it committed that nothing else holds are
   * swept, so a failed load or import leaves the store as it was.
   */
  async withLease<T>(fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = { id: `${process.pid}-${randomHex(8)}` }; // see random.ts: no node:crypto to load
    this.db.createLease(lease.id);
    let failed = false;
    try {
      return await fn(lease);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (!failed) this.forgetLease(lease);
      else if (this.forgetLease(lease)) await this.gc();
      else {
        // A full disk: forgetting the lease needs the space that sweeping what only it held frees.
        await this.gc(lease.id);
        this.forgetLease(lease);
      }
    }
  }

  /**
   * Deletes a lease whose operation is over; false when the disk is full (the lease then stays, and
   * expires with this process).
   */
  private forgetLease(lease: Lease): boolean {
    try {
      this.db.deleteLease(lease.id);
      return true;
    } catch (err) {
      if (!isKilnError(err, 'NO_SPACE')) throw err;
      return false;
    }
  }

  /** Sweeps what nothing holds; `ignoring` names a lease to count as gone already. */
  gc(ignoring?: string): Promise<GcResult> {
    return collectGarbage(this.content, this.db, ignoring);
  }

  /**
   * Holds an image for the lease's operation, if the store still has it: prune and rmi leave an image a
   * running operation reads or builds on, as they leave one a container uses. False when it is gone.
   */
  holdImage(lease: Lease, id: Digest): boolean {
    return this.db.transaction(() => {
      if (!this.db.image(id)) return false;
      this.db.addLeaseImage(lease.id, id);
      return true;
    });
  }

  /** Holds layer snapshots (by key) that an operation unpacks or commits before an image names them. */
  holdSnapshots(lease: Lease, keys: readonly string[]): void {
    this.db.transaction(() => {
      for (const key of keys) this.db.addLeaseSnapshot(lease.id, key);
    });
  }

  /** Publishes bytes held in memory (configs, manifests) under a lease. */
  async putBlob(lease: Lease, data: Buffer, expected?: Digest): Promise<Digest> {
    const digest = expected ?? sha256(data);
    const blob = await this.pendingBlob(lease, data, digest);
    if (!blob) return digest;
    try {
      this.db.transaction(() => blob.publish());
      this.heldBy(lease).add(digest);
      return digest;
    } catch (err) {
      await blob.abort();
      throw err;
    }
  }

  /**
   * A blob held in memory, written and verified but not yet visible (undefined when the store has it: the
   * lease then holds it). `publish`, in a transaction, makes it visible and leased (heldBy learns it once
   * that commits); `abort` removes it. An image's config and manifest are published in the transaction
   * that records the image: one transaction where there were three.
   */
  private async pendingBlob(lease: Lease, data: Buffer, digest: Digest): Promise<VerifiedBlob | undefined> {
    if (this.holdBlob(lease, digest)) return undefined;
    const blob = await this.content.written(data, { digest, size: data.length }, `blob-${digest}`);
    return {
      ...blob,
      publish: () => {
        this.db.addLeaseBlob(lease.id, digest);
        blob.publish();
      },
    };
  }

  /**
   * Adds a blob that is already present to a lease, atomically with the presence check (the GC unlinks
   * under the same lock). False when the store does not have it.
   */
  holdBlob(lease: Lease, digest: Digest): boolean {
    const held = this.heldBy(lease);
    if (held.has(digest)) return true;
    // An absent blob needs no transaction: nothing but a write (this lease's own, or another's of the
    // same bytes) makes it appear, and the GC only removes.
    if (!this.content.hasSync(digest)) return false;
    const present = this.db.transaction(() => {
      if (!this.content.hasSync(digest)) return false;
      this.db.addLeaseBlob(lease.id, digest);
      return true;
    });
    if (present) held.add(digest);
    return present;
  }

  /**
   * The blobs a lease is known to hold: held, a blob stays (the GC leaves it), so holding it again needs
   * no transaction (a build's every step image holds all its layers again).
   */
  private heldBy(lease: Lease): Set<Digest> {
    let held = this.heldBlobs.get(lease);
    if (!held) {
      held = new Set();
      this.heldBlobs.set(lease, held);
    }
    return held;
  }

  /** Stores a layer's blob (verifying its digest, diffID and tar structure) unless it is already here. */
  private async putLayer(lease: Lease, layer: Layer, what: string): Promise<LayerBlobRow> {
    if (layer.digest) {
      const known = this.db.layerBlob(layer.digest);
      if (known && this.holdBlob(lease, layer.digest)) {
        if (known.diffId !== layer.diffId) {
          throw new KilnError('DIGEST_MISMATCH', `${what}: blob ${layer.digest} holds layer ${known.diffId}, but the image config says ${layer.diffId}`);
        }
        return known;
      }
    }
    return this.ingestLayer(lease, await layer.open(), layer, what);
  }

  /**
   * Streams a layer blob into the store under a lease, checking as it goes that it is a well-formed tar
   * (after decompression) whose content hashes to `expected.diffId` when that is given. The media type
   * recorded is the declared one when the bytes agree with it, else the OCI type of what they really are.
   * `alsoTar` reads the decompressed tar at the same time (see scanLayer).
   */
  async ingestLayer(lease: Lease, source: AsyncIterable<Uint8Array>, expected: { mediaType: string; digest?: Digest; size?: number; diffId?: Digest }, what: string, alsoTar?: TarWalker): Promise<LayerBlobRow> {
    return this.storeLayerBlob(lease, `layer-${expected.diffId ?? expected.digest ?? 'new'}`, async (writer) => {
      const reading = new WatchedSource(source);
      let writeFailure: { error: unknown } | undefined;
      const write = (chunk: Uint8Array): Promise<void> =>
        writer.write(chunk).catch((error: unknown) => {
          writeFailure = { error };
          throw error;
        });
      // Loaded with the first layer: the decompressors' workers and zlib are no part of listing or inspecting.
      const { scanLayer } = await import('../layer/scan.js');
      const scanned = await scanLayer(reading, write, what, alsoTar, () => writer.peekDigest()).catch((err: unknown) => {
        // A failure of the disk (a write) or of the source (a network fault, a truncated file) is the error
        // as it is. Bytes that came whole but hash to something else are not the blob the digest names,
        // which says more than how they fail to be a layer.
        if (writeFailure) throw writeFailure.error;
        if (reading.failure) throw reading.failure.error;
        const actual = writer.peekDigest();
        if (reading.ended && expected.digest && actual !== expected.digest) {
          throw new KilnError('DIGEST_MISMATCH', `${what}: the blob's bytes do not match ${expected.digest} (they hash to ${actual})`, { cause: err });
        }
        throw err;
      });
      if (expected.diffId && scanned.diffId !== expected.diffId) {
        throw new KilnError('DIGEST_MISMATCH', `${what}: the layer's content hashes to ${scanned.diffId}, but the image config says ${expected.diffId}`);
      }
      const mediaType = layerCompression(expected.mediaType) === scanned.compression ? expected.mediaType : ociLayerType(scanned.compression);
      return { expected: { digest: expected.digest, size: expected.size }, layer: { diffId: scanned.diffId, mediaType, diffSize: scanned.diffSize } };
    });
  }

  /**
   * Stores a layer blob whose bytes kiln encoded itself, so they need no scan (ingestLayer's): a build
   * step's or a commit's changes, written as an uncompressed tar from a tree kiln read (`diffId` left
   * out: it is the blob's digest), or a compressed copy of a layer the store has, made for a push (its
   * diffID). The digest is computed as the bytes are written and checked against `expected`; `layer` is
   * asked for after the last byte (a diffSize counted as the tar was encoded: see encodeLayer).
   */
  putEncodedLayer(lease: Lease, source: AsyncIterable<Uint8Array>, layer: () => { mediaType: string; diffId?: Digest; diffSize: number }, expected: Expected = {}): Promise<LayerBlobRow> {
    return this.storeLayerBlob(lease, `layer-${expected.digest ?? 'new'}`, async (writer) => {
      for await (const chunk of source) await writer.write(chunk);
      const { mediaType, diffId, diffSize } = layer();
      return { expected, layer: { mediaType, diffId: diffId ?? writer.peekDigest(), diffSize } };
    });
  }

  /**
   * A layer blob's lifecycle: `fill` writes it (and says what it must hash to and what layer it is), the
   * writer verifies it, then it is published, leased and recorded in one transaction; on any failure the
   * ingest file goes and nothing is visible.
   */
  private async storeLayerBlob(lease: Lease, label: string, fill: (writer: ContentWriter) => Promise<{ expected: Expected; layer: Pick<LayerBlobRow, 'diffId' | 'mediaType' | 'diffSize'> }>): Promise<LayerBlobRow> {
    const writer = this.content.writer(label);
    try {
      const { expected, layer } = await fill(writer);
      const info = await writer.verify(expected);
      const row: LayerBlobRow = { digest: info.digest, size: info.size, ...layer };
      this.db.transaction(() => {
        this.db.addLeaseBlob(lease.id, info.digest);
        writer.publish();
        this.db.putLayerBlob(row);
      });
      this.heldBy(lease).add(info.digest);
      return row;
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /**
   * Writes an image: its layers' blobs, then its config and manifest blobs published with its record and
   * names in one transaction, which also holds the image for the lease's operation. Returns the image ID
   * and, per name, the image that name pointed at before (if another).
   */
  async writeImage(lease: Lease, named: NamedImage, what: string, parent = '', intermediate = false): Promise<{ id: Digest; replaced: Map<string, Digest> }> {
    const { image } = named;
    // Every way in (load, pull, import, build, commit) meets Docker's bound here, before any blob is written.
    if (image.layers.length > MAX_LAYERS) throw new KilnError('INVALID_INPUT', `${what}: the image has ${image.layers.length} layers, more than the ${MAX_LAYERS} an image can have (max depth exceeded)`);
    const rows: LayerBlobRow[] = [];
    for (const [index, layer] of image.layers.entries()) {
      rows.push(await this.putLayer(lease, layer, `${what}: layer ${index + 1} of ${image.layers.length}`));
    }
    const manifest = this.manifestFor(image, rows);
    const blobs = [image.id, manifest.digest, ...rows.map((r) => r.digest)];
    const config = image.config;
    const replaced = new Map<string, Digest>();
    const pending: VerifiedBlob[] = [];
    try {
      for (const [data, digest] of [[image.rawConfig, image.id], [manifest.bytes, manifest.digest]] as const) {
        const blob = await this.pendingBlob(lease, data, digest);
        if (blob) pending.push(blob);
      }
      this.db.transaction(() => {
        for (const blob of pending) blob.publish();
        this.db.putImage({
          id: image.id,
          manifestDigest: manifest.digest,
          manifestType: manifest.mediaType,
          created: config.created ?? '',
          size: rows.reduce((sum, r) => sum + r.diffSize, 0),
          parent,
          intermediate,
          labels: config.config?.Labels ?? {},
          diffIds: config.rootfs.diff_ids,
          blobs,
        });
        for (const name of named.names) {
          const before = this.db.setName(name, image.id, name.includes('@') ? 'digest' : 'tag');
          if (before) replaced.set(name, before);
        }
        this.db.addLeaseImage(lease.id, image.id);
      });
    } catch (err) {
      for (const blob of pending) await blob.abort();
      throw err;
    }
    for (const blob of pending) this.heldBy(lease).add(blob.info.digest);
    return { id: image.id, replaced };
  }

  /** The source's manifest when it describes exactly the stored blobs, else a new OCI manifest for them. */
  private manifestFor(image: Image, rows: readonly LayerBlobRow[]): RawManifest {
    const original = image.manifest;
    if (original && isManifestType(original.mediaType)) {
      const parsed = validateManifest(parseJson(original.bytes, 'manifest'), 'manifest');
      const same = parsed.config.digest === image.id && parsed.layers.length === rows.length && parsed.layers.every((l, i) => l.digest === rows[i]?.digest);
      if (same) return original;
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: image.id, size: image.rawConfig.length },
      layers: rows.map((r): Descriptor => ({ mediaType: r.mediaType, digest: r.digest, size: r.size })),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    return { bytes, digest: sha256(bytes), mediaType: MediaType.ociManifest };
  }

  /**
   * The parsed config of a stored image (small; read synchronously for queries). A config is its ID's
   * content, so the last few read are kept: a build asks for its base's several times (its checks, its
   * plan, each stage on it), and each read and check of it took a few hundred microseconds.
   */
  configOf(id: Digest): ImageConfig {
    return this.configs.get(id) ?? this.parsedConfig(id, this.readSync(id, id));
  }

  private parsedConfig(id: Digest, rawConfig: Buffer): ImageConfig {
    const what = `config of image ${id}`;
    return this.configs.keep(id, validateImageConfig(parseJson(rawConfig, what, MAX_CONFIG_BYTES), what), rawConfig.length);
  }

  /** A blob of image `imageId` (its config, its manifest), read synchronously (see removedMeanwhile). */
  private readSync(digest: Digest, imageId: Digest): Buffer {
    try {
      return this.content.readSync(digest);
    } catch (err) {
      throw this.removedMeanwhile(imageId) ?? err;
    }
  }

  /**
   * An image found a moment ago may have been removed since by another kiln process (rmi, prune), its
   * blobs with it: when a blob read fails, that is what the caller is told, not that the store is damaged.
   */
  private removedMeanwhile(id: Digest): KilnError | undefined {
    return this.db.image(id) ? undefined : new KilnError('NOT_FOUND', `No such image: ${id}`);
  }

  /** A layer whose blob the store holds, read from the content store when opened. */
  storedLayer(blob: { readonly mediaType: string; readonly digest: Digest; readonly size: number; readonly diffId: Digest }): Layer {
    const { mediaType, digest, size, diffId } = blob;
    return { mediaType, digest, size, diffId, open: () => this.content.open(digest), locate: () => Promise.resolve({ path: this.content.blobPath(digest), start: 0, size }) };
  }

  /**
   * Reads a stored image back as an {@link Image} whose layers stream from the content store. Its config
   * and manifest are small and read synchronously, and the last few images read are kept (see Kept): a
   * build reads its base's for each step on it, as several start at once.
   */
  image(row: ImageRow): Promise<Image> {
    return new Promise((resolve) => resolve(this.imageSync(row))); // what imageSync throws rejects it
  }

  private imageSync(row: ImageRow): Image {
    const key = `${row.id} ${row.manifestDigest}`;
    const kept = this.images.get(key);
    if (kept) return kept;
    const rawConfig = this.readSync(row.id, row.id);
    const config = this.configs.get(row.id) ?? this.parsedConfig(row.id, rawConfig);
    const manifestBytes = this.readSync(row.manifestDigest, row.id);
    const manifest = validateManifest(parseJson(manifestBytes, `manifest ${row.manifestDigest}`), `manifest ${row.manifestDigest}`);
    const layers = manifest.layers.map((descriptor, index): Layer => {
      const diffId = config.rootfs.diff_ids[index];
      if (!diffId) throw new KilnError('CORRUPT', `image ${row.id}: manifest has more layers than the config`);
      return this.storedLayer({ ...descriptor, diffId });
    });
    return this.images.keep(key, { id: row.id, rawConfig, config, layers, manifest: { bytes: manifestBytes, digest: row.manifestDigest, mediaType: row.manifestType } }, rawConfig.length + manifestBytes.length);
  }
}
