/**
 * Pull, push, login, logout: Docker's policies over the registry client and the store. Progress goes out
 * as Docker's jsonmessage events (`status`, `id`, `progressDetail`), which the CLI draws and the Engine
 * API will stream as they are.
 */
import { open, readFile } from 'node:fs/promises';
import { KilnError } from '../errors.js';
import { type Image, type Layer, chainIds } from '../image/image.js';
import { compressStream } from '../layer/compression.js';
import { type Digest, shortId } from '../oci/digest.js';
import { MediaType, layerCompression } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { imagePlatform, parsePlatform, platformMatches } from '../oci/platform.js';
import { type Reference, familiarName, familiarString, parseReference, referenceString, repositoryName, withDefaultTag } from '../reference/reference.js';
import { recordImageEvent } from './events.js';
import { RegistryClient, type StreamingUpload } from '../registry/client.js';
import { type Credentials, credentialsFor, eraseCredentials, registryHost, storeCredentials } from '../registry/credentials.js';
import type { Lease } from '../transport/store.js';
import { readRegistryImage, resumableBlob, writeRegistryImage } from '../transport/registry.js';
import type { Engine } from './engine.js';
import { limited } from './limited.js';
import { type Filters, booleanFilter, checkFilterKeys } from './filters.js';
import { discardDetached, unpackLayers, unpackWhileReading } from '../snapshot/unpack.js';
import { openSnapshotter } from './snapshots.js';

/** One progress message, Docker's jsonmessage shape. */
export interface ProgressEvent {
  readonly status: string;
  readonly id?: string;
  readonly progressDetail?: { readonly current: number; readonly total?: number };
}

export interface RegistryOptions {
  /** `--insecure-registry` and the config's list: plain HTTP or unverified TLS allowed. */
  readonly insecureRegistries?: readonly string[];
  /** Credentials for this one operation (the Engine API's X-Registry-Auth), instead of config.json's. */
  readonly credentials?: Credentials;
  readonly events: (event: ProgressEvent) => void;
}


/**
 * The insecure registries Docker's own config names (`insecure-registries` in `/etc/docker/daemon.json`,
 * or the file `$KILN_DAEMON_CONFIG` names): hosts and IPv4 networks.
 */
async function configuredInsecureRegistries(): Promise<string[]> {
  const path = process.env.KILN_DAEMON_CONFIG ?? '/etc/docker/daemon.json';
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  try {
    const value = (JSON.parse(text) as { 'insecure-registries'?: unknown })['insecure-registries'];
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    throw new KilnError('INVALID_INPUT', `${path} is not valid JSON; fix it or point KILN_DAEMON_CONFIG elsewhere`);
  }
}

/** A client for a registry with the credentials config.json (or its helper) has for it. */
export async function clientFor(registry: string, options: { readonly insecureRegistries?: readonly string[]; readonly credentials?: Credentials }): Promise<RegistryClient> {
  const credentials = options.credentials ?? (await credentialsFor(registry));
  const insecureRegistries = [...(options.insecureRegistries ?? []), ...(await configuredInsecureRegistries())];
  return new RegistryClient(registry, { ...(credentials ? { credentials } : {}), insecureRegistries });
}

export interface PullOptions extends RegistryOptions {
  readonly platform?: string;
  readonly maxConcurrentDownloads?: number;
  /** Unpack the layers into snapshots as they arrive (default: as root, where kiln run and build need them). */
  readonly unpack?: boolean;
  /** The lease of the operation the pull is part of (a build's base), which then holds the image. */
  readonly lease?: Lease;
}

/**
 * `docker pull`: the manifest (the platform's, from an index), config and layers into the store, each
 * verified by the content store; blobs already here are not downloaded. Returns the image and the
 * digest the name resolved to.
 */
export async function pullImage(engine: Engine, name: string, options: PullOptions): Promise<{ id: Digest; digest: Digest; name: string; fresh: boolean }> {
  const ref = withDefaultTag(parseReference(name));
  const wanted = parsePlatform(options.platform);
  const client = await clientFor(ref.domain, options);
  const repository = ref.path;
  options.events({ status: `${ref.digest ?? ref.tag ?? 'latest'}: Pulling from ${ref.path}` });
  // Snapshots are opened while the manifest is fetched: a new store's first one tests an overlay mount.
  const opening = options.unpack ?? process.getuid?.() === 0 ? openSnapshotter(engine, (message) => options.events({ status: message })) : undefined;
  opening?.catch(() => undefined); // awaited below, once the image is known
  const { image: remote, top, manifest } = await readRegistryImage(client, ref, { wanted, asked: options.platform !== undefined });
  const what = familiarString(ref);
  const { config } = remote;
  const { store } = engine;
  const id = manifest.config.digest;
  const tagName = ref.digest ? undefined : referenceString(ref);
  const digestName = `${repositoryName(ref)}@${top.digest}`;
  // Docker's rule (distribution's pullTag): up to date when the name pulled already pointed at this image,
  // whatever else the store had; a name set or moved is a newer image, even when no layer came down.
  const upToDate = store.db.name(tagName ?? digestName)?.imageId === id;
  const underLease = (fn: (lease: Lease) => Promise<void>): Promise<void> => (options.lease ? fn(options.lease) : store.withLease(fn));
  await underLease(async (lease) => {
    const layers = manifest.layers.map((descriptor, index): Layer => store.storedLayer({ ...descriptor, diffId: config.rootfs.diff_ids[index] as Digest }));
    // A layer the store has is held at once, so that a prune meanwhile cannot take it.
    const present = layers.map((layer) => layer.digest !== undefined && store.db.layerBlob(layer.digest) !== undefined && store.holdBlob(lease, layer.digest));
    layers.forEach((layer, index) => {
      if (!present[index]) options.events({ status: 'Pulling fs layer', id: shortId(layer.digest ?? '') });
    });
    // Each layer is unpacked into a snapshot as soon as it and those below it are here (as root: the
    // snapshots are what kiln run and build use); downloads go on meanwhile.
    const arrived = layers.map(() => {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined);
      return { promise, resolve, reject };
    });
    const snapshots = await opening;
    // The layer snapshots are committed as they unpack, before the image that names them is written.
    if (snapshots) store.holdSnapshots(lease, chainIds(config.rootfs.diff_ids).map((chain) => snapshots.layerKey(chain)));
    const unpacking = snapshots
      ? unpackLayers(snapshots, layers, what, (i) => (arrived[i] as { promise: Promise<void> }).promise, (i, state) => {
          if (!present[i]) options.events({ status: state === 'extracting' ? 'Extracting' : 'Pull complete', id: shortId(layers[i]?.digest ?? '') });
        })
      : undefined;
    unpacking?.catch(() => undefined);
    try {
      await limited(options.maxConcurrentDownloads ?? 3, layers.map((layer, index) => async (): Promise<void> => {
        const short = shortId(layer.digest ?? '');
        if (present[index]) {
          options.events({ status: 'Already exists', id: short });
          arrived[index]?.resolve();
          return;
        }
        const size = layer.size ?? 0;
        const digest = layer.digest as Digest;
        const stream = resumableBlob(client, repository, { digest, size }, (received) => options.events({ status: 'Downloading', id: short, progressDetail: { current: received, total: size } }));
        // Unpacked from the same bytes as they arrive: every layer with overlay, with vfs the base layer or
        // one whose parent is unpacked already.
        const unpack = snapshots && unpackWhileReading(snapshots, layers, index, what);
        try {
          await store.ingestLayer(lease, stream, { mediaType: layer.mediaType, digest, size, diffId: layer.diffId }, `${what}: layer ${digest}`, unpack && ((tar) => unpack.read(tar)));
          await unpack?.settle(true);
        } catch (err) {
          await unpack?.settle(false);
          arrived[index]?.reject(err);
          throw err;
        }
        options.events({ status: 'Verifying Checksum', id: short });
        options.events({ status: 'Download complete', id: short });
        if (unpack) options.events({ status: 'Extracting', id: short }); // done as it downloaded
        if (!snapshots) options.events({ status: 'Pull complete', id: short });
        arrived[index]?.resolve();
      }));
      await unpacking;
    } catch (err) {
      for (const entry of arrived) entry.reject(err);
      await unpacking?.catch(() => undefined);
      throw err;
    } finally {
      if (snapshots) await discardDetached(snapshots, layers);
    }
    await store.writeImage(lease, { image: { ...remote, layers }, names: [...(tagName ? [tagName] : []), digestName] }, what);
  });
  for (const descriptor of [manifest.config, ...manifest.layers]) store.db.addBlobSource(descriptor.digest, ref.domain, repository);
  options.events({ status: `Digest: ${top.digest}` });
  options.events({ status: `Status: ${upToDate ? 'Image is up to date' : 'Downloaded newer image'} for ${familiarString(ref)}` });
  recordImageEvent(engine, 'pull', familiarString(ref), familiarName(ref));
  return { id, digest: top.digest, name: referenceString(ref), fresh: !upToDate };
}

export interface PushOptions extends RegistryOptions {
  readonly compression?: 'gzip' | 'zstd';
}

interface LayerBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

/** The blob to push for a layer when the store has it compressed: the layer's own, or a copy made for an earlier push. */
async function storedCompressed(engine: Engine, layer: Layer, compression: 'gzip' | 'zstd'): Promise<LayerBlob | undefined> {
  const { store } = engine;
  if (layerCompression(layer.mediaType) !== 'none' && layer.digest) return { digest: layer.digest, size: layer.size ?? (await store.content.info(layer.digest))?.size ?? 0, mediaType: layer.mediaType };
  const existing = store.db.layerBlobsOf(layer.diffId).find((row) => layerCompression(row.mediaType) === compression && store.content.hasSync(row.digest));
  return existing && { digest: existing.digest, size: existing.size, mediaType: compressedLayerType(compression) };
}

function compressedLayerType(compression: 'gzip' | 'zstd'): string {
  return compression === 'gzip' ? MediaType.dockerLayerGzip : MediaType.ociLayerZstd;
}

/**
 * Compresses a layer the store holds uncompressed into a copy the store keeps (a second push does not
 * compress again) while the same bytes stream to the registry, as Docker does: compression and upload
 * overlap. The digest is the store's, computed as the copy is written. When the streamed upload broke off
 * for good, `streamed` is false and the caller pushes the stored copy instead.
 */
async function compressWhilePushing(engine: Engine, lease: Lease, layer: Layer, compression: 'gzip' | 'zstd', upload: StreamingUpload): Promise<LayerBlob & { streamed: boolean }> {
  const diffSize = engine.store.db.layerBlobsOf(layer.diffId)[0]?.diffSize ?? 0;
  async function* alsoUploaded(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      await upload.write(chunk);
      yield chunk;
    }
  }
  const mediaType = compressedLayerType(compression);
  const row = await engine.store.putEncodedLayer(lease, alsoUploaded(compressStream(await layer.open(), compression)), () => ({ mediaType, diffId: layer.diffId, diffSize }));
  return { digest: row.digest, size: row.size, mediaType, streamed: await upload.finish(row.digest) };
}

/**
 * Pushes an image's layers to a repository, compressed (each layer the store holds uncompressed is
 * compressed once, into a copy the store keeps, while it streams), with Docker's progress; returns their
 * descriptors, for the manifest.
 */
export async function pushLayers(engine: Engine, lease: Lease, client: RegistryClient, ref: Reference, image: Image, options: PushOptions): Promise<Descriptor[]> {
  const { store } = engine;
  const repository = ref.path;
  return limited(3, image.layers.map((layer) => async (): Promise<Descriptor> => {
    const compression = options.compression ?? 'gzip';
    // Docker names a layer by its diffID in push progress: its compressed digest may not exist yet.
    const short = shortId(layer.diffId);
    options.events({ status: 'Preparing', id: short });
    const pushing = (total?: number) => (sent: number): void => options.events({ status: 'Pushing', id: short, progressDetail: { current: sent, ...(total ? { total } : {}) } });
    let blob = await storedCompressed(engine, layer, compression);
    let result: 'exists' | 'mounted' | 'pushed' | undefined;
    if (!blob) {
      const streamed = await compressWhilePushing(engine, lease, layer, compression, await client.streamBlob(repository, pushing()));
      blob = streamed;
      if (streamed.streamed) result = 'pushed';
    }
    const { digest, size } = blob;
    const path = store.content.blobPath(digest);
    const mountFrom = store.db.blobSources(digest, ref.domain).find((r) => r !== repository);
    result ??= await client.pushBlob(repository, { digest, size, read: (start, end) => readRange(path, start, end, digest) }, mountFrom, pushing(size));
    options.events({ status: result === 'exists' ? 'Layer already exists' : result === 'mounted' ? `Mounted from ${mountFrom ?? ''}` : 'Pushed', id: short });
    store.db.addBlobSource(blob.digest, ref.domain, repository);
    return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
  }));
}

/**
 * Pushes a stored image to a repository: its layers (see pushLayers), its config, then its manifest
 * under `tag`, or by its digest alone when no tag is given. Returns the manifest's digest and size.
 */
export async function pushStoredImage(engine: Engine, lease: Lease, client: RegistryClient, ref: Reference, image: Image, tag: string | undefined, options: PushOptions): Promise<{ digest: Digest; size: number; mediaType: string }> {
  const { store } = engine;
  const layers = await pushLayers(engine, lease, client, ref, image, options);
  const configSource = store.db.blobSources(image.id, ref.domain).find((r) => r !== ref.path);
  const pushed = await writeRegistryImage(client, ref.path, tag, image, layers, { docker: (options.compression ?? 'gzip') === 'gzip', ...(configSource !== undefined ? { configFrom: configSource } : {}) });
  store.db.addBlobSource(image.id, ref.domain, ref.path);
  return pushed;
}

/** `docker push`: every layer (compressed), the config, then the manifest under the tag. */
export async function pushImage(engine: Engine, name: string, options: PushOptions): Promise<{ digest: Digest; size: number; tag: string }[]> {
  const parsed = parseReference(name);
  const { store } = engine;
  const tags = parsed.tag !== undefined ? [parsed.tag] : ['latest'];
  const client = await clientFor(parsed.domain, options);
  options.events({ status: `The push refers to repository [${repositoryName(parsed)}]` });
  const results: { digest: Digest; size: number; tag: string }[] = [];
  for (const tag of tags) {
    const ref: Reference = { domain: parsed.domain, path: parsed.path, tag };
    const pushed = await store.withLease(async (lease) => {
      const image = await store.image(engine.holdImage(lease, referenceString(ref)));
      const { digest, size } = await pushStoredImage(engine, lease, client, ref, image, tag, options);
      store.db.setName(`${repositoryName(parsed)}@${digest}`, image.id, 'digest');
      return { digest, size };
    });
    options.events({ status: `${tag}: digest: ${pushed.digest} size: ${pushed.size}` });
    recordImageEvent(engine, 'push', familiarString(ref), familiarName(ref));
    results.push({ ...pushed, tag });
  }
  return results;
}

/** Checks credentials against a registry, named by a server address (see registryHost): the Engine API's `/auth`, which stores nothing. */
export async function checkCredentials(server: string, username: string, password: string, options: Omit<RegistryOptions, 'events'> = {}): Promise<void> {
  const registry = registryHost(server);
  const client = new RegistryClient(registry, { credentials: { username, password }, insecureRegistries: [...(options.insecureRegistries ?? []), ...(await configuredInsecureRegistries())] });
  const response = await client.send('GET', '/v2/', { scope: '', what: `logging in to ${registry}`, ok: [200] });
  await response.body.dump();
}

/** `docker login`: checks the credentials against the registry, then stores them. */
export async function login(server: string, username: string, password: string, options: Omit<RegistryOptions, 'events'> = {}): Promise<void> {
  await checkCredentials(server, username, password, options);
  await storeCredentials(registryHost(server), username, password);
}

/** `docker logout`: false when there was nothing to forget. */
export async function logout(server: string): Promise<boolean> {
  return eraseCredentials(registryHost(server));
}

export interface SearchResult {
  readonly name: string;
  readonly description: string;
  readonly star_count: number;
  readonly is_official: boolean;
  readonly is_automated: boolean;
}

/**
 * `docker search`: Docker Hub's search API where the registry offers it, else the registry's catalog
 * filtered by the term. `TERM` may name the registry (`localhost:5000/busy`); `registry` wins when given.
 */
export async function searchImages(term: string, options: { registry?: string; limit: number; insecureRegistries?: readonly string[]; filters?: Filters }): Promise<SearchResult[]> {
  if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > 100) throw new KilnError('INVALID_ARGUMENT', `limit ${options.limit} is outside the range of [1, 100]`);
  const filters = options.filters ?? new Map<string, string[]>();
  checkFilterKeys(filters, ['stars', 'is-official', 'is-automated']);
  const starsText = filters.get('stars')?.[0];
  if (starsText !== undefined && !/^\d+$/.test(starsText)) throw new KilnError('INVALID_ARGUMENT', `invalid filter 'stars=${starsText}'`);
  const stars = starsText !== undefined ? Number(starsText) : undefined;
  const official = booleanFilter(filters, 'is-official');
  const automated = booleanFilter(filters, 'is-automated');
  let registry = options.registry;
  let query = term;
  const slash = term.indexOf('/');
  if (registry === undefined && slash > 0 && /[.:]|^localhost$/.test(term.slice(0, slash))) {
    registry = term.slice(0, slash);
    query = term.slice(slash + 1);
  }
  const host = registry ?? 'docker.io';
  const client = await clientFor(host, options);
  const found =
    (await client.search(query, options.limit)) ??
    (await client.catalog(10_000)).filter((name) => name.includes(query.toLowerCase())).map((name) => ({ name: host === 'docker.io' ? name : `${host}/${name}`, description: '', star_count: 0, is_official: false, is_automated: false }));
  return found
    .filter((r) => (stars === undefined || r.star_count >= stars) && (official === undefined || r.is_official === official) && (automated === undefined || r.is_automated === automated))
    .slice(0, options.limit);
}

/** `docker pull -a` (and the API's pull with an empty tag): every tag the registry has for a repository. Returns the repository's name. */
export async function pullAllTags(engine: Engine, name: string, options: PullOptions): Promise<string> {
  const ref = parseReference(name);
  if (ref.tag !== undefined || ref.digest !== undefined) throw new KilnError('INVALID_ARGUMENT', `tag can't be used with --all-tags/-a: give the repository name only (${familiarString({ domain: ref.domain, path: ref.path })})`);
  for (const tag of await (await clientFor(ref.domain, options)).tags(ref.path)) await pullImage(engine, `${name}:${tag}`, options);
  return repositoryName(ref);
}

/** `docker run --pull`: when to pull the image before running it. */
export type PullPolicy = 'missing' | 'always' | 'never';

export function parsePullPolicy(text: string): PullPolicy {
  if (text === 'missing' || text === 'always' || text === 'never') return text;
  throw new KilnError('INVALID_ARGUMENT', `invalid pull option: ${JSON.stringify(text)}: must be one of "always", "missing" or "never"`);
}

/**
 * Makes sure an image is in the store before it is used, as `docker run` does: `missing` pulls a name
 * the store lacks, or has of another platform than `options.platform` (saying so first, as Docker does),
 * `always` pulls it in any case, `never` leaves it.
 */
export async function ensureImage(engine: Engine, name: string, policy: PullPolicy, options: PullOptions): Promise<void> {
  if (policy === 'never') return;
  if (policy === 'missing') {
    const present = engine.imageIfPresent(name);
    if (present && (options.platform === undefined || platformMatches(imagePlatform(engine.store.configOf(present.id)), parsePlatform(options.platform)))) return;
    options.events({ status: `Unable to find image '${familiarString(withDefaultTag(parseReference(name)))}' locally` });
  }
  await pullImage(engine, name, options);
}

/** The tags of a repository in the store (`push -a`). */
export function localTags(engine: Engine, name: string): string[] {
  const ref = parseReference(name);
  if (ref.tag !== undefined || ref.digest !== undefined) throw new KilnError('INVALID_ARGUMENT', `tag can't be used with --all-tags/-a: give the repository name only`);
  const prefix = `${repositoryName(ref)}:`;
  const tags = engine.store.db.names().filter((n) => n.kind === 'tag' && n.name.startsWith(prefix)).map((n) => n.name.slice(prefix.length));
  if (tags.length === 0) throw new KilnError('NOT_FOUND', `An image does not exist locally with the tag: ${familiarString(ref)}`);
  return tags.sort();
}

/** Bytes [start, end) of a stored blob. */
async function readRange(path: string, start: number, end: number, digest: Digest): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    let at = 0;
    while (at < buffer.length) {
      const { bytesRead } = await handle.read(buffer, at, buffer.length - at, start + at);
      if (bytesRead === 0) throw new KilnError('CORRUPT', `blob ${digest} is shorter than recorded`);
      at += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}
