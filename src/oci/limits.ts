import { KilnError } from '../errors.js';
import { MediaType, layerCompression } from './mediatypes.js';
import type { Index, Manifest } from './types.js';

/**
 * Bounds on image documents from outside, so that a hostile one is refused early, in bounded memory and
 * time, with a message that says the bound. A manifest's size is distribution's and containerd's (4 MiB);
 * a config's is what the store reads back (parseJson's 8 MiB); the layer count is Docker's (its layer
 * store's maxLayerDepth, "max depth exceeded": 127 layers some graph drivers can stack, less the two a
 * container adds); an index's entries are bounded generously (distribution and containerd set no number:
 * real indexes have a few dozen entries, a platform and an attestation each).
 */
export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_CONFIG_BYTES = 8 << 20;
export const MAX_LAYERS = 125;
export const MAX_INDEX_ENTRIES = 1000;

/** The config media types Docker pulls as images: its two, and the generic ones old registries served. */
const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set([MediaType.dockerConfig, MediaType.ociConfig, 'application/octet-stream', 'application/json', 'text/html']);

export function checkIndexLimits(index: Index, what: string): void {
  if (index.manifests.length > MAX_INDEX_ENTRIES) throw new KilnError('INVALID_INPUT', `${what}: the index has ${index.manifests.length} entries, more than the ${MAX_INDEX_ENTRIES} it may have`);
}

/** An image manifest kiln can take in: within the limits, a config of an image config type, and layers of layer types. */
export function checkImageManifest(manifest: Manifest, what: string): void {
  const { config, layers } = manifest;
  if (layers.length > MAX_LAYERS) throw new KilnError('INVALID_INPUT', `${what}: the manifest has ${layers.length} layers, more than the ${MAX_LAYERS} an image can have`);
  if (!IMAGE_CONFIG_TYPES.has(config.mediaType)) throw new KilnError('INVALID_INPUT', `${what}: the config has media type ${JSON.stringify(config.mediaType)}, which is not an image config`);
  if (config.size > MAX_CONFIG_BYTES) throw new KilnError('INVALID_INPUT', `${what}: the config is ${config.size} bytes, more than the ${MAX_CONFIG_BYTES} a config may have`);
  layers.forEach((layer, i) => {
    if (layerCompression(layer.mediaType) === undefined) throw new KilnError('INVALID_INPUT', `${what}: layer ${i + 1} has media type ${JSON.stringify(layer.mediaType)}, which is not a layer`);
  });
}
