import { KilnError } from '../errors.js';
import type { Image, Layer, NamedImage } from '../image/image.js';
import { type Digest, digestHex, sha256 } from '../oci/digest.js';
import { isIndexType, isManifestType, layerCompression } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { type Platform, formatPlatform, hostPlatform, platformMatches } from '../oci/platform.js';
import { parseJson, validateImageConfig, validateIndex, validateLayout, validateManifest } from '../oci/validate.js';
import { parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import type { FileTree } from './filetree.js';

/** JSON documents in archives (manifests, configs, indexes) are small; a larger one is refused. */
export const MAX_JSON_BYTES = 8 << 20;

/** The annotation an OCI layout's index names its images by (a tag, or with skopeo a whole reference). */
export const REF_NAME = 'org.opencontainers.image.ref.name';

/** The path of a blob inside an OCI layout. */
export function blobPath(digest: Digest): string {
  return `blobs/${digest.slice(0, digest.indexOf(':'))}/${digestHex(digest)}`;
}

/** Reads a blob of a layout and proves it is what its descriptor says. */
export async function readVerifiedBlob(tree: FileTree, descriptor: Pick<Descriptor, 'digest' | 'size'>, what: string): Promise<Buffer> {
  const bytes = await tree.read(blobPath(descriptor.digest), MAX_JSON_BYTES);
  const actual = sha256(bytes);
  if (actual !== descriptor.digest || bytes.length !== descriptor.size) {
    throw new KilnError('DIGEST_MISMATCH', `${tree.description}: ${what} ${descriptor.digest} does not match its content (got ${actual}, ${bytes.length} bytes)`);
  }
  return bytes;
}

/**
 * Reads the image a manifest descriptor points at. Layers are lazy: their bytes are read (and verified by
 * the content store) only when a sink opens them.
 */
export async function readManifestImage(tree: FileTree, descriptor: Descriptor): Promise<Image> {
  const manifestBytes = await readVerifiedBlob(tree, descriptor, 'manifest');
  const manifest = validateManifest(parseJson(manifestBytes, `${tree.description}: manifest ${descriptor.digest}`), `${tree.description}: manifest ${descriptor.digest}`);
  const rawConfig = await readVerifiedBlob(tree, manifest.config, 'config');
  const what = `${tree.description}: config ${manifest.config.digest}`;
  const config = validateImageConfig(parseJson(rawConfig, what), what);
  const layerDescriptors = manifest.layers.filter((l) => layerCompression(l.mediaType) !== undefined);
  if (layerDescriptors.length !== manifest.layers.length) {
    const odd = manifest.layers.find((l) => layerCompression(l.mediaType) === undefined);
    throw new KilnError('UNSUPPORTED', `${tree.description}: manifest ${descriptor.digest} has a layer of media type ${odd?.mediaType}, which kiln cannot unpack`);
  }
  if (layerDescriptors.length !== config.rootfs.diff_ids.length) {
    throw new KilnError('INVALID_INPUT', `${tree.description}: manifest ${descriptor.digest} lists ${layerDescriptors.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const layers = layerDescriptors.map(
    (l, i): Layer => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      diffId: config.rootfs.diff_ids[i] as Digest,
      open: () => tree.open(blobPath(l.digest)),
      locate: () => tree.locate(blobPath(l.digest)),
    }),
  );
  return { id: manifest.config.digest, rawConfig, config, layers, manifest: { bytes: manifestBytes, digest: descriptor.digest, mediaType: manifest.mediaType ?? descriptor.mediaType } };
}

/**
 * The name an index entry gives its image: `io.containerd.image.name` (Docker ≥ 25, containerd) or an
 * `org.opencontainers.image.ref.name` that is a whole reference (skopeo writes `name:tag`). A bare tag
 * names nothing: the layout does not say which repository it belongs to.
 */
function nameOf(descriptor: Descriptor): string | undefined {
  const full = descriptor.annotations?.['io.containerd.image.name'];
  const refName = descriptor.annotations?.[REF_NAME];
  for (const candidate of [full, refName]) {
    if (!candidate || !/[:@/]/.test(candidate)) continue;
    try {
      return referenceString(withDefaultTag(parseReference(candidate)));
    } catch {
      // Not a reference (e.g. a bare tag with dots): the image stays unnamed.
    }
  }
  return undefined;
}

/** An entry of a layout's index that names no platform is an image to take (a layout's top-level entries seldom name one). */
function serves(candidate: Platform | undefined, wanted: Platform): boolean {
  return candidate === undefined || platformMatches(candidate, wanted);
}

/**
 * Every image of an OCI image layout (a directory or an `oci-archive` tar), for the host's platform; with
 * `refName`, only the index entries of that `org.opencontainers.image.ref.name` (skopeo's `oci:DIR:REF`).
 */
export async function readOciLayout(tree: FileTree, platform = hostPlatform(), refName?: string): Promise<NamedImage[]> {
  const layout = validateLayout(parseJson(await tree.read('oci-layout', MAX_JSON_BYTES), `${tree.description}: oci-layout`), `${tree.description}: oci-layout`);
  if (!layout.imageLayoutVersion.startsWith('1.')) {
    throw new KilnError('UNSUPPORTED', `${tree.description}: OCI layout version ${layout.imageLayoutVersion} is not supported (expected 1.x)`);
  }
  const index = validateIndex(parseJson(await tree.read('index.json', MAX_JSON_BYTES), `${tree.description}: index.json`), `${tree.description}: index.json`);
  const byId = new Map<Digest, { image: Image; names: string[] }>();
  const visit = async (descriptors: readonly Descriptor[], inheritedName: string | undefined, depth: number): Promise<void> => {
    if (depth > 4) throw new KilnError('INVALID_INPUT', `${tree.description}: indexes nest deeper than 4 levels`);
    for (const descriptor of descriptors) {
      const name = nameOf(descriptor) ?? inheritedName;
      if (isIndexType(descriptor.mediaType)) {
        const nested = validateIndex(parseJson(await readVerifiedBlob(tree, descriptor, 'index'), `${tree.description}: index ${descriptor.digest}`), `${tree.description}: index ${descriptor.digest}`);
        await visit(nested.manifests.filter((m) => serves(m.platform, platform)).slice(0, 1), name, depth + 1);
      } else if (isManifestType(descriptor.mediaType) && serves(descriptor.platform, platform)) {
        const image = await readManifestImage(tree, descriptor);
        const entry = byId.get(image.id) ?? { image, names: [] };
        if (name && !entry.names.includes(name)) entry.names.push(name);
        byId.set(image.id, entry);
      }
    }
  };
  const named = refName === undefined ? index.manifests : index.manifests.filter((d) => d.annotations?.[REF_NAME] === refName);
  if (named.length === 0) {
    const refs = index.manifests.flatMap((d) => d.annotations?.[REF_NAME] ?? []);
    throw new KilnError('NOT_FOUND', `${tree.description}: no image named ${JSON.stringify(refName)} in index.json (${refs.length > 0 ? `it has ${refs.map((r) => JSON.stringify(r)).join(', ')}` : 'its images have no ref names'})`);
  }
  await visit(named, undefined, 0);
  if (byId.size === 0) throw new KilnError('NOT_FOUND', `${tree.description}: no image for ${formatPlatform(platform)} in index.json`);
  return [...byId.values()];
}
