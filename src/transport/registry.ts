/**
 * An image in a registry as an {@link Image}: the manifest (the platform's, from an index), the config,
 * and layers opened lazily as resumable blob downloads. A pull stores what it reads here; an analysis
 * reads the layers without storing them. As a sink, the image's config and manifest go up once its
 * layer blobs are there (a push uploads those itself: it compresses and reports progress as it goes).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError, isKilnError } from '../errors.js';
import type { Image, Layer } from '../image/image.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { checkImageManifest, checkIndexLimits } from '../oci/limits.js';
import { MediaType, isIndexType } from '../oci/mediatypes.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import { type Platform, formatPlatform, platformMatches } from '../oci/platform.js';
import { parseJson, validateImageConfig, validateIndex, validateManifest } from '../oci/validate.js';
import { type Reference, familiarString } from '../reference/reference.js';
import type { FetchedManifest, RegistryClient } from '../registry/client.js';

/** Attempts at one blob download: Docker's (a first one and 5 retries). */
const DOWNLOAD_ATTEMPTS = 6;

/**
 * A blob download (at most its `size` bytes: the client refuses more) that, when its body breaks off,
 * stalls or ends short, goes on from where it stopped with HTTP Range, up to DOWNLOAD_ATTEMPTS in all;
 * then it fails with the last fault and how far it got. A request that fails outright (refused, redirected
 * in a loop, an error status) is not retried here: the client retried what can be.
 */
export async function* resumableBlob(client: RegistryClient, repository: string, { digest, size }: { digest: Digest; size: number }, progress: (received: number) => void): AsyncGenerator<Uint8Array> {
  let received = 0;
  for (let attempt = 1; ; attempt++) {
    const body = await client.blob(repository, digest, size, received);
    let fault: KilnError;
    try {
      for await (const chunk of body) {
        received += chunk.length;
        progress(received);
        yield chunk;
      }
      if (received >= size) return;
      fault = new KilnError('NETWORK', `${client.blobSubject(repository, digest)}: the registry ended its answer early`);
    } catch (err) {
      if (!isKilnError(err, 'NETWORK')) throw err;
      fault = err;
    }
    if (attempt === DOWNLOAD_ATTEMPTS) throw new KilnError('NETWORK', `${fault.message} (${received} of ${size} bytes received; gave up after ${attempt} attempts)`, { cause: fault });
    await delay(250 * attempt);
  }
}

/** A config, read whole (checkImageManifest bounded its size) and verified against its digest. */
async function readConfig(client: RegistryClient, repository: string, descriptor: Descriptor, what: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of resumableBlob(client, repository, descriptor, () => undefined)) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const actual = sha256(bytes);
  if (actual !== descriptor.digest) throw new KilnError('DIGEST_MISMATCH', `${what}: the registry served a config that does not match ${descriptor.digest} (it hashes to ${actual})`);
  return bytes;
}

export interface RegistryImage {
  /** The image; its layers download when opened. */
  readonly image: Image;
  /** What the reference names: the image's manifest, or the index it was chosen from. */
  readonly top: FetchedManifest;
  readonly manifest: Manifest;
}

/**
 * Reads an image from a registry: the manifest the reference names (from an index, the one for
 * `platform.wanted`), checked against kiln's limits, and its config, verified. When `platform.asked`, an
 * image for another platform is refused too.
 */
export async function readRegistryImage(client: RegistryClient, ref: Reference, platform: { readonly wanted: Platform; readonly asked: boolean }): Promise<RegistryImage> {
  const repository = ref.path;
  const what = familiarString(ref);
  const top = await client.manifest(repository, ref.digest ?? ref.tag ?? 'latest');
  let chosen = top;
  const topJson = parseJson(top.bytes, `manifest of ${what}`);
  if (isIndexType(top.mediaType) || (typeof topJson === 'object' && topJson !== null && 'manifests' in topJson)) {
    const index = validateIndex(topJson, `index of ${what}`);
    checkIndexLimits(index, what);
    const entry = index.manifests.find((m) => m.platform !== undefined && platformMatches(m.platform, platform.wanted));
    if (!entry) {
      const offered = index.manifests.flatMap((m) => (m.platform ? [formatPlatform(m.platform)] : [])).join(', ');
      throw new KilnError('NOT_FOUND', `no matching manifest for ${formatPlatform(platform.wanted)} in the manifest list entries of ${what} (it has ${offered || 'none'})`);
    }
    chosen = await client.manifest(repository, entry.digest);
  }
  const manifest: Manifest = validateManifest(parseJson(chosen.bytes, `manifest of ${what}`), `manifest of ${what}`);
  checkImageManifest(manifest, what);
  const rawConfig = await readConfig(client, repository, manifest.config, what);
  const config = validateImageConfig(parseJson(rawConfig, `config of ${what}`), `config of ${what}`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) throw new KilnError('INVALID_INPUT', `${what}: the manifest has ${manifest.layers.length} layers but the config ${config.rootfs.diff_ids.length}`);
  if (platform.asked && !platformMatches(config, platform.wanted)) throw new KilnError('NOT_FOUND', `${what} is for ${formatPlatform(config)}, not ${formatPlatform(platform.wanted)}`);
  const layers = manifest.layers.map(
    (descriptor, index): Layer => ({
      mediaType: descriptor.mediaType,
      digest: descriptor.digest,
      size: descriptor.size,
      diffId: config.rootfs.diff_ids[index] as Digest,
      open: () => Promise.resolve(resumableBlob(client, repository, descriptor, () => undefined)),
    }),
  );
  const image: Image = { id: manifest.config.digest, rawConfig, config, layers, manifest: { bytes: chosen.bytes, digest: chosen.digest, mediaType: chosen.mediaType || manifest.mediaType || MediaType.ociManifest } };
  return { image, top, manifest };
}

/**
 * Writes an image whose layer blobs the registry has (as `layers` describe them) under `tag` (or by its
 * digest alone, without one): the config blob (mounted from `configFrom` when that repository has it),
 * then the manifest — the image's own when it names exactly these blobs, so its digest survives; else a
 * new one, Docker's schema 2 for `docker` (gzip layers), OCI's otherwise. Returns the manifest's digest,
 * size and media type.
 */
export async function writeRegistryImage(client: RegistryClient, repository: string, tag: string | undefined, image: Image, layers: readonly Descriptor[], options: { readonly docker: boolean; readonly configFrom?: string }): Promise<{ digest: Digest; size: number; mediaType: string }> {
  const { rawConfig } = image;
  await client.pushBlob(repository, { digest: image.id, size: rawConfig.length, read: (start, end) => Promise.resolve(rawConfig.subarray(start, end)) }, options.configFrom);
  const original = image.manifest;
  let manifest: { bytes: Buffer; mediaType: string };
  if (original && layers.every((l, i) => l.digest === image.layers[i]?.digest)) manifest = { bytes: original.bytes, mediaType: original.mediaType };
  else {
    const { docker } = options;
    const body: Manifest = {
      schemaVersion: 2,
      mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
      config: { mediaType: docker ? MediaType.dockerConfig : MediaType.ociConfig, digest: image.id, size: rawConfig.length },
      layers,
    };
    manifest = { bytes: Buffer.from(JSON.stringify(body, null, 3)), mediaType: body.mediaType ?? MediaType.ociManifest };
  }
  const digest = await client.putManifest(repository, tag ?? sha256(manifest.bytes), manifest);
  return { digest, size: manifest.bytes.length, mediaType: manifest.mediaType };
}
