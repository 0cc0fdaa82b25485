import { KilnError } from '../errors.js';
import type { Image, Layer, NamedImage } from '../image/image.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { parseJson, validateImageConfig } from '../oci/validate.js';
import { parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import type { FileTree } from './filetree.js';
import { MAX_JSON_BYTES, readOciLayout } from './oci-layout.js';

/** One entry of a `docker save` manifest.json. */
interface ArchiveEntry {
  readonly Config: string;
  readonly RepoTags: readonly string[];
  readonly Layers: readonly string[];
}

function parseArchiveManifest(value: unknown, description: string): ArchiveEntry[] {
  const fail = (problem: string): never => {
    throw new KilnError('INVALID_INPUT', `${description}: manifest.json ${problem}`);
  };
  if (!Array.isArray(value)) return fail('is not a JSON array');
  return value.map((entry: unknown, i): ArchiveEntry => {
    if (typeof entry !== 'object' || entry === null) return fail(`[${i}] is not an object`);
    const { Config, RepoTags, Layers } = entry as Record<string, unknown>;
    if (typeof Config !== 'string') return fail(`[${i}].Config is not a string`);
    if (RepoTags !== undefined && RepoTags !== null && !(Array.isArray(RepoTags) && RepoTags.every((t) => typeof t === 'string'))) return fail(`[${i}].RepoTags is not a list of strings`);
    if (!Array.isArray(Layers) || !Layers.every((l) => typeof l === 'string')) return fail(`[${i}].Layers is not a list of strings`);
    return { Config, RepoTags: (RepoTags) ?? [], Layers: Layers };
  });
}

/**
 * Reads a `docker save` archive: the legacy layout (`<id>/layer.tar`, Docker ≤ 24) and the OCI-based one
 * (`blobs/sha256/…` plus `index.json`, Docker ≥ 25). When the archive also holds an OCI index, the image
 * keeps its original manifest, so its digest survives the round trip.
 */
export async function readDockerArchive(tree: FileTree): Promise<NamedImage[]> {
  const entries = parseArchiveManifest(parseJson(await tree.read('manifest.json', MAX_JSON_BYTES), `${tree.description}: manifest.json`), tree.description);
  // A load that loads nothing and says nothing would pass for one that worked.
  if (entries.length === 0) throw new KilnError('INVALID_INPUT', `${tree.description}: no images found in the archive (its manifest.json lists none)`);
  const withManifests = new Map<Digest, Image>();
  if ((await tree.size('index.json')) !== undefined && (await tree.size('oci-layout')) !== undefined) {
    for (const { image } of await readOciLayout(tree)) withManifests.set(image.id, image);
  }
  const images: NamedImage[] = [];
  for (const entry of entries) {
    const rawConfig = await tree.read(entry.Config, MAX_JSON_BYTES);
    const id = sha256(rawConfig);
    const what = `${tree.description}: ${entry.Config}`;
    const config = validateImageConfig(parseJson(rawConfig, what), what);
    if (entry.Layers.length !== config.rootfs.diff_ids.length) {
      throw new KilnError('INVALID_INPUT', `${tree.description}: image ${entry.Config} lists ${entry.Layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids`);
    }
    const names = entry.RepoTags.map((tag) => {
      try {
        return referenceString(withDefaultTag(parseReference(tag)));
      } catch (err) {
        throw new KilnError('INVALID_INPUT', `${tree.description}: manifest.json names the image ${JSON.stringify(tag)}: ${(err as Error).message}`);
      }
    });
    const image =
      withManifests.get(id) ??
      ({
        id,
        rawConfig,
        config,
        layers: entry.Layers.map(
          (path, i): Layer => ({
            // Docker writes layers uncompressed; the store sniffs the bytes and records what they really are.
            mediaType: MediaType.ociLayer,
            diffId: config.rootfs.diff_ids[i] as Digest,
            open: () => tree.open(path),
            locate: () => tree.locate(path),
          }),
        ),
      } satisfies Image);
    images.push({ image, names });
  }
  return images;
}

/** Reads any image archive or layout: `docker save` output (old or new) or an OCI layout. */
export async function readImageArchive(tree: FileTree): Promise<NamedImage[]> {
  if ((await tree.size('manifest.json')) !== undefined) return readDockerArchive(tree);
  if ((await tree.size('index.json')) !== undefined) return readOciLayout(tree);
  throw new KilnError('INVALID_INPUT', `${tree.description} is not an image archive: it has neither manifest.json nor index.json (a root filesystem tar is imported with 'kiln import')`);
}
