/**
 * A build's cache outside the store, as buildx names it: `--cache-from` and `--cache-to` with
 * `type=registry,ref=REF` (a plain `REF` too), `type=local,src|dest=DIR`, `type=inline`. kiln's cache is
 * inline: every image a build makes carries the keys of its steps in its config (see INLINE_CACHE), so a
 * cache is a set of images. `mode=min` exports the result alone; `mode=max` every stage's image too, so
 * the steps of builder stages are found again. In a registry the set is an OCI index under the ref's tag,
 * marked as kiln's cache; in a directory, an OCI layout whose entries carry the tag as their ref name.
 * Imported images are read (their configs) at the build's start; an image's layers come into the store
 * only when one of its steps stands in for a step of the build.
 */
import { KilnError } from '../errors.js';
import type { Image } from '../image/image.js';
import type { Digest } from '../oci/digest.js';
import { checkIndexLimits } from '../oci/limits.js';
import { MediaType, isIndexType } from '../oci/mediatypes.js';
import { hostPlatform } from '../oci/platform.js';
import type { Index } from '../oci/types.js';
import { parseJson, validateIndex } from '../oci/validate.js';
import { type Reference, familiarString, parseReference } from '../reference/reference.js';
import type { BuildEvent, CacheImage } from '../builder/solver.js';
import { addToOciLayout } from '../transport/archive-writer.js';
import { DirectoryTree } from '../transport/filetree.js';
import { readOciLayout } from '../transport/oci-layout.js';
import type { Lease } from '../transport/store.js';
import { type BuildRegistry, ownStep, registryAccess } from './build-progress.js';
import type { Engine } from './engine.js';
import { limited } from './limited.js';

/** The annotation that marks an index in a registry as a kiln build cache (its images are all to be read). */
export const CACHE_INDEX = 'dev.kiln.build-cache';

export type CacheMode = 'min' | 'max';

/** One `--cache-from`/`--cache-to` value, parsed. */
export type CacheSpec =
  | { readonly type: 'registry'; readonly ref: string; readonly mode: CacheMode; readonly ignoreError: boolean }
  | { readonly type: 'local'; readonly dir: string; readonly tag: string; readonly mode: CacheMode; readonly ignoreError: boolean }
  | { readonly type: 'inline' }
  /** A bare reference given to --cache-from: an image of the store, else of its registry. */
  | { readonly type: 'image'; readonly ref: string };

/** Attributes BuildKit's exporters take that change nothing in kiln's cache (it keeps the layers as they are). */
const IGNORED = new Set(['compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'image-manifest']);

/** Parses a `--cache-from`/`--cache-to` value the way buildx does (comma-separated `key=value`, or a bare reference). */
export function parseCacheSpec(flag: '--cache-from' | '--cache-to', value: string): CacheSpec {
  if (!value.includes('=')) {
    if (value.trim() === '') throw new KilnError('INVALID_ARGUMENT', `${flag}: empty value; give a reference or type=registry|local|inline,…`);
    return flag === '--cache-from' ? { type: 'image', ref: value } : { type: 'registry', ref: value, mode: 'min', ignoreError: false };
  }
  const attrs = new Map<string, string>();
  for (const field of value.split(',')) {
    const at = field.indexOf('=');
    if (at <= 0) throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: ${JSON.stringify(field)} is not key=value`);
    attrs.set(field.slice(0, at).trim().toLowerCase(), field.slice(at + 1).trim());
  }
  const type = attrs.get('type') ?? 'registry';
  const mode = attrs.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: mode must be min or max, not ${JSON.stringify(mode)}`);
  const ignoreError = attrs.get('ignore-error') ?? 'false';
  if (ignoreError !== 'true' && ignoreError !== 'false') throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: ignore-error must be true or false`);
  const known = new Set(['type', 'mode', 'ignore-error', ...IGNORED, ...(type === 'registry' ? ['ref'] : type === 'local' ? [flag === '--cache-from' ? 'src' : 'dest', 'tag'] : [])]);
  const unknown = [...attrs.keys()].find((key) => !known.has(key));
  if (unknown !== undefined) throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: type=${type} takes no ${unknown}`);
  const required = (key: string): string => {
    const found = attrs.get(key);
    if (!found) throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: type=${type} needs ${key}=…`);
    return found;
  };
  switch (type) {
    case 'registry': {
      const ref = required('ref');
      if (parseReference(ref).digest !== undefined && flag === '--cache-to') throw new KilnError('INVALID_ARGUMENT', `${flag} ${value}: a cache is exported under a tag, not a digest`);
      return { type, ref, mode, ignoreError: ignoreError === 'true' };
    }
    case 'local':
      return { type, dir: required(flag === '--cache-from' ? 'src' : 'dest'), tag: attrs.get('tag') || 'latest', mode, ignoreError: ignoreError === 'true' };
    case 'inline':
      return { type };
    default:
      throw new KilnError('UNSUPPORTED', `${flag} ${value}: kiln keeps a build cache in a registry (type=registry) or a directory (type=local), not type=${type}; its images carry their cache inline too`);
  }
}

/** An image offered as a cache, brought into the store (held by the build's lease) the first time a step takes it. */
function cacheImage(engine: Engine, lease: Lease, image: Image, what: string): CacheImage {
  let stored: Promise<Digest> | undefined;
  return {
    config: image.config,
    stored: () => (stored ??= engine.store.writeImage(lease, { image, names: [] }, what, '', true).then((written) => written.id)),
  };
}

async function registryClient(ref: Reference, registry: BuildRegistry | undefined) {
  const { clientFor } = await import('./registry.js');
  return clientFor(ref.domain, registryAccess(registry, ref.domain));
}

/** The images of a cache in a registry: those of a kiln cache index, or the one image the reference names. */
async function registryCache(engine: Engine, lease: Lease, name: string, registry: BuildRegistry | undefined): Promise<CacheImage[]> {
  const { readRegistryImage } = await import('../transport/registry.js');
  const ref = parseReference(name);
  const client = await registryClient(ref, registry);
  const what = familiarString(ref);
  const top = await client.manifest(ref.path, ref.digest ?? ref.tag ?? 'latest');
  const wanted = { wanted: hostPlatform(), asked: false };
  const json = parseJson(top.bytes, `manifest of ${what}`);
  if (isIndexType(top.mediaType) && typeof json === 'object' && json !== null && 'annotations' in json) {
    const index = validateIndex(json, `index of ${what}`);
    checkIndexLimits(index, what);
    if (index.annotations?.[CACHE_INDEX] !== undefined) {
      return limited(4, index.manifests.map((entry) => async () => cacheImage(engine, lease, (await readRegistryImage(client, { domain: ref.domain, path: ref.path, digest: entry.digest }, wanted)).image, `cache ${what}`)));
    }
  }
  return [cacheImage(engine, lease, (await readRegistryImage(client, ref, wanted)).image, `cache ${what}`)];
}

/**
 * The images of every `--cache-from`, in order. A cache that cannot be read is a warning, as with
 * BuildKit: the build goes on without it. Each source is a step of the build's progress.
 */
export async function importCaches(engine: Engine, lease: Lease, specs: readonly CacheSpec[], options: CacheProgress): Promise<CacheImage[]> {
  const images: CacheImage[] = [];
  for (const spec of specs) {
    if (spec.type === 'inline') continue;
    if (spec.type === 'image') {
      const stored = engine.holdImageIfPresent(lease, spec.ref);
      if (stored) {
        images.push({ config: engine.store.configOf(stored.id), stored: () => Promise.resolve(stored.id) });
        continue;
      }
    }
    const source = spec.type === 'local' ? `${spec.dir} (${spec.tag})` : spec.ref;
    await ownStep(options.events, options.nextStep(), `importing cache manifest from ${source}`, async () => {
      try {
        if (spec.type === 'local') {
          const tree = await DirectoryTree.open(spec.dir);
          for (const { image } of await readOciLayout(tree, hostPlatform(), spec.tag)) images.push(cacheImage(engine, lease, image, `cache ${spec.dir}`));
        } else images.push(...(await registryCache(engine, lease, spec.ref, options.registry)));
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        options.warnings.push(`--cache-from: ${err.message}; not used`);
      }
    });
  }
  return images;
}

/** What a cache's import or export needs of the build: its registries, the number of its next step, its events and its warnings. */
export interface CacheProgress {
  readonly registry?: BuildRegistry;
  readonly nextStep: () => number;
  readonly events: (event: BuildEvent) => void;
  readonly warnings: string[];
}

/** What a build leaves to export: its result, and the last image of every stage it ran (for mode=max). */
export interface BuiltImages {
  readonly result: Digest;
  readonly stages: readonly Digest[];
}

/** Writes the build's cache to every `--cache-to`; a failure fails the build, as BuildKit's does, unless `ignore-error=true` makes it a warning. */
export async function exportCaches(engine: Engine, lease: Lease, specs: readonly CacheSpec[], built: BuiltImages, options: CacheProgress): Promise<void> {
  for (const spec of specs) {
    if (spec.type === 'inline' || spec.type === 'image') continue;
    const ids = spec.mode === 'max' ? [...new Set([...built.stages, built.result])] : [built.result];
    const images = await Promise.all(ids.map(async (id) => engine.store.image(engine.holdImage(lease, id))));
    const exporting = spec.type === 'local'
      ? ownStep(options.events, options.nextStep(), `exporting cache to client directory ${spec.dir}`, () => addToOciLayout(spec.dir, images, spec.tag))
      : ownStep(options.events, options.nextStep(), `exporting cache to registry ${spec.ref}`, () => pushCache(engine, lease, spec.ref, images, options.registry));
    await exporting.catch((err: unknown) => {
      if (!spec.ignoreError || !(err instanceof KilnError)) throw err;
      options.warnings.push(`--cache-to ${spec.type === 'local' ? spec.dir : spec.ref}: ${err.message}; the cache was not exported`);
    });
  }
}

/** Pushes the images of a cache to a registry by digest, then the index that lists them under the reference's tag. */
async function pushCache(engine: Engine, lease: Lease, name: string, images: readonly Image[], registry: BuildRegistry | undefined): Promise<void> {
    const { pushStoredImage } = await import('./registry.js');
    const parsed = parseReference(name);
    const ref: Reference = { domain: parsed.domain, path: parsed.path, tag: parsed.tag ?? 'latest' };
    const client = await registryClient(ref, registry);
    const pushOptions = { events: () => undefined, ...registryAccess(registry, ref.domain) };
    const manifests = [];
    for (const image of images) manifests.push(await pushStoredImage(engine, lease, client, ref, image, undefined, pushOptions));
    const index: Index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: manifests.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
      annotations: { [CACHE_INDEX]: 'v1' },
    };
    await client.putManifest(ref.path, ref.tag as string, { bytes: Buffer.from(JSON.stringify(index)), mediaType: MediaType.ociIndex });
}
