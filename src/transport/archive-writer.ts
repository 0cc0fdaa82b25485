import { createWriteStream } from 'node:fs';
import { access, mkdir, readFile, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KilnError, isErrno } from '../errors.js';
import type { Image } from '../image/image.js';
import { type Digest, digestHex } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, Index } from '../oci/types.js';
import { writeTar } from '../layer/tar/writer.js';
import { familiarString, parseReference } from '../reference/reference.js';
import { parseJson, validateIndex } from '../oci/validate.js';
import { randomHex } from '../random.js';
import { REF_NAME, blobPath } from './oci-layout.js';

/** A file of an archive being written; blob bodies stream from their source when the sink reaches them. */
export interface ArchiveFile {
  readonly path: string;
  readonly size: number;
  readonly body: Buffer | (() => Promise<AsyncIterable<Uint8Array>>);
}

/** An image to save and the names (normalized references) to save it under. */
export interface SaveItem {
  readonly image: Image;
  readonly names: readonly string[];
}

export type ArchiveFormat = 'docker' | 'oci';

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/**
 * The files of an image archive. `docker` is what Docker ≥ 25 writes — an OCI layout (`oci-layout`,
 * `index.json`, `blobs/sha256/…`) plus Docker's `manifest.json` and `repositories` — which `docker load`
 * (≥ 20.10) and OCI tools both read. `oci` is the OCI layout alone. Each blob appears once however many
 * images share it.
 */
export function* archiveFiles(items: readonly SaveItem[], format: ArchiveFormat): Generator<ArchiveFile> {
  const written = new Set<Digest>();
  const blob = function* (digest: Digest, size: number, body: ArchiveFile['body']): Generator<ArchiveFile> {
    if (written.has(digest)) return;
    written.add(digest);
    yield { path: blobPath(digest), size, body };
  };
  const indexEntries: Descriptor[] = [];
  const dockerManifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, names } of items) {
    const manifest = image.manifest;
    if (!manifest) throw new KilnError('INTERNAL', `image ${image.id} has no manifest to save`);
    for (const layer of image.layers) {
      if (!layer.digest || layer.size === undefined) throw new KilnError('INTERNAL', `layer ${layer.diffId} of ${image.id} has no blob to save`);
      yield* blob(layer.digest, layer.size, () => layer.open());
    }
    yield* blob(image.id, image.rawConfig.length, image.rawConfig);
    yield* blob(manifest.digest, manifest.bytes.length, manifest.bytes);
    const descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
    const tags = names.filter((n) => !n.includes('@'));
    if (tags.length === 0) indexEntries.push(descriptor);
    for (const name of tags) {
      const tag = name.slice(name.lastIndexOf(':') + 1);
      indexEntries.push({ ...descriptor, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag } });
      const familiar = familiarString(parseReference(name));
      const repo = familiar.slice(0, familiar.length - tag.length - 1);
      const top = image.layers.at(-1)?.digest;
      if (top) repositories[repo] = { ...repositories[repo], [tag]: digestHex(top) };
    }
    if (format === 'docker') {
      dockerManifest.push({
        Config: blobPath(image.id),
        RepoTags: tags.length ? tags.map((n) => familiarString(parseReference(n))) : null,
        Layers: image.layers.map((l) => blobPath(l.digest as Digest)),
      });
    }
  }
  const index: Index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: indexEntries };
  const files: [string, Buffer][] = [
    ['index.json', json(index)],
    ['oci-layout', json({ imageLayoutVersion: '1.0.0' })],
  ];
  if (format === 'docker') {
    files.push(['manifest.json', json(dockerManifest)]);
    if (Object.keys(repositories).length > 0) files.push(['repositories', json(repositories)]);
  }
  for (const [path, body] of files) yield { path, size: body.length, body };
}

/**
 * A tar stream of archive files, deterministic: fixed mtime, root ownership, the `blobs/` directories
 * first. The same images always give the same bytes.
 */
export async function* tarArchive(files: Iterable<ArchiveFile> | AsyncIterable<ArchiveFile>): AsyncGenerator<Buffer> {
  const header = (path: string, type: 'file' | 'directory', size: number) => ({ path, type, size, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0 });
  async function* entries() {
    yield { header: header('blobs/', 'directory', 0) };
    yield { header: header('blobs/sha256/', 'directory', 0) };
    for await (const file of files) {
      yield { header: header(file.path, 'file', file.size), body: Buffer.isBuffer(file.body) ? file.body : await file.body() };
    }
  }
  yield* writeTar(entries());
}

/**
 * Writes archive files as a new directory (an OCI layout), via a temporary sibling renamed into place.
 * An existing non-empty directory is never overwritten.
 */
export async function writeArchiveDirectory(files: Iterable<ArchiveFile> | AsyncIterable<ArchiveFile>, target: string): Promise<void> {
  const existing = await readdir(target).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return [];
    throw new KilnError('INVALID_ARGUMENT', `cannot write the layout to ${target}: ${(err as Error).message}`);
  });
  if (existing.length > 0) throw new KilnError('INVALID_ARGUMENT', `${target} exists and is not empty; name a new directory for the OCI layout`);
  const temp = `${target}.kiln-tmp-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  try {
    for await (const file of files) {
      const path = join(temp, file.path);
      await mkdir(dirname(path), { recursive: true });
      if (Buffer.isBuffer(file.body)) await writeFile(path, file.body);
      else await pipeline(await file.body(), createWriteStream(path));
    }
    await rmdir(target).catch(() => undefined);
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/** Writes `body` to `path` through a temporary sibling renamed over it: a reader sees the old file or the whole new one. */
async function replaceFile(path: string, body: ArchiveFile['body']): Promise<void> {
  const temp = `${path}.kiln-tmp-${process.pid}-${randomHex(4)}`;
  try {
    if (Buffer.isBuffer(body)) await writeFile(temp, body);
    else await pipeline(await body(), createWriteStream(temp));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Adds images to an OCI layout directory (made when missing), all under one ref name (as BuildKit's local
 * cache does with its tag): blobs the layout lacks are written, each renamed into place whole, then
 * index.json is replaced in one rename, its entries of other ref names kept. A reader never sees an index
 * naming a blob that is not there.
 */
export async function addToOciLayout(target: string, images: readonly Image[], refName: string): Promise<void> {
  await mkdir(join(target, 'blobs', 'sha256'), { recursive: true });
  for (const file of archiveFiles(images.map((image) => ({ image, names: [] })), 'oci')) {
    if (!file.path.startsWith('blobs/')) continue;
    const path = join(target, file.path);
    if (!(await access(path).then(() => true, () => false))) await replaceFile(path, file.body);
  }
  const indexPath = join(target, 'index.json');
  const existing = await readFile(indexPath).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  });
  const kept = existing ? validateIndex(parseJson(existing, `${indexPath}`), indexPath).manifests.filter((d) => d.annotations?.[REF_NAME] !== refName) : [];
  const added = images.map((image): Descriptor => {
    const manifest = image.manifest as NonNullable<Image['manifest']>;
    return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length, annotations: { [REF_NAME]: refName } };
  });
  const index: Index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...kept, ...added] };
  await replaceFile(join(target, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
  await replaceFile(indexPath, json(index));
}
