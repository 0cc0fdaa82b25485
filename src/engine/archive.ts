import { type Stats, closeSync, createWriteStream, openSync, readSync, statSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { scratchName } from '../content/store.js';
import { KilnError, storeWriteError } from '../errors.js';
import type { NamedImage } from '../image/image.js';
import { autoDecompress } from '../layer/compression.js';
import { type Reference, familiarString, parseReference, repositoryName } from '../reference/reference.js';
import { recordImageEvent } from './events.js';
import { type ArchiveFile, type ArchiveFormat, type SaveItem, archiveFiles, tarArchive, writeArchiveDirectory } from '../transport/archive-writer.js';
import { readImageArchive } from '../transport/docker-archive.js';
import { DirectoryTree } from '../transport/filetree.js';
import type { LocalStore } from '../transport/store.js';
import { TarTree } from '../transport/tar-tree.js';
import type { Engine } from './engine.js';
import type { LoadEvent } from './types.js';

/** Where `load` reads from: a file or directory path, or a stream (stdin, an API request body). */
export type LoadSource = { readonly path: string } | { readonly stream: AsyncIterable<Uint8Array>; readonly description: string };

/**
 * Gives a random-access view of an archive. A plain tar file is read in place; a stream or a compressed
 * file is first decompressed into the store's tmp/ (removed by the returned cleanup).
 */
export async function openArchive(store: LocalStore, source: LoadSource): Promise<{ tree: DirectoryTree | TarTree; cleanup: () => Promise<void> }> {
  const nothing = () => Promise.resolve();
  let input: AsyncIterable<Uint8Array>;
  let description: string;
  if ('path' in source) {
    // A look at the file in this thread (a few system calls: through the pool, each took a round trip).
    let st: Stats;
    try {
      st = statSync(source.path);
    } catch {
      throw new KilnError('NOT_FOUND', `open ${source.path}: no such file or directory`);
    }
    if (st.isDirectory()) return { tree: await DirectoryTree.open(source.path), cleanup: nothing };
    const head = Buffer.alloc(4);
    const fd = openSync(source.path, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    const compressed = (head[0] === 0x1f && head[1] === 0x8b) || head.readUInt32LE(0) === 0xfd2fb528;
    if (!compressed) return { tree: await TarTree.open(source.path, `archive ${source.path}`), cleanup: nothing };
    input = (await open(source.path, 'r')).createReadStream();
    description = `archive ${source.path}`;
  } else {
    input = source.stream;
    description = source.description;
  }
  await mkdir(store.content.tmpDir, { recursive: true });
  const spool = join(store.content.tmpDir, `${scratchName('load')}.tar`);
  const cleanup = () => rm(spool, { force: true });
  try {
    const { stream } = await autoDecompress(input);
    await pipeline(stream, createWriteStream(spool));
    return { tree: await TarTree.open(spool, description), cleanup };
  } catch (err) {
    await cleanup();
    throw storeWriteError(err, store.root, spool);
  }
}

/** `docker load`: stores every image of an archive or layout and points its names at it. */
export async function loadImages(engine: Engine, source: LoadSource, emit: (event: LoadEvent) => void): Promise<void> {
  const { store } = engine;
  const { tree, cleanup } = await openArchive(store, source);
  try {
    const images: readonly NamedImage[] = await readImageArchive(tree);
    await store.withLease(async (lease) => {
      for (const named of images) {
        const { id, replaced } = await store.writeImage(lease, named, tree.description);
        recordImageEvent(engine, 'load', id);
        for (const [name, previousId] of replaced) emit({ kind: 'renamed', name, previousId });
        if (named.names.length === 0) emit({ kind: 'loaded-id', id });
        for (const name of named.names) emit({ kind: 'loaded', name });
      }
    });
  } finally {
    await cleanup();
  }
}

/** A load event as `docker load` prints it (the CLI a line, the API a jsonmessage's `stream`). */
export function loadMessage(event: LoadEvent): string {
  switch (event.kind) {
    case 'loaded':
      return `Loaded image: ${familiarString(parseReference(event.name))}`;
    case 'loaded-id':
      return `Loaded image ID: ${event.id}`;
    case 'renamed':
      return `The image ${familiarString(parseReference(event.name))} already exists, renaming the old one with ID ${event.previousId} to empty string`;
  }
}

/** `docker save` as one tar stream: `write` gets it once the images are found and held (see saveImages). */
export function saveImagesAsTar<T>(engine: Engine, names: readonly string[], format: ArchiveFormat, write: (tar: AsyncIterable<Buffer>) => Promise<T>): Promise<T> {
  return saveImages(engine, names, format, (files) => write(tarArchive(files)));
}

/** `docker save` into a directory (an OCI layout). */
export function saveImagesToDirectory(engine: Engine, names: readonly string[], format: ArchiveFormat, directory: string): Promise<void> {
  return saveImages(engine, names, format, (files) => writeArchiveDirectory(files, directory));
}

/**
 * `docker save`: `write` gets the files of an archive of the images named — a tag saves that tag, an ID
 * saves the image without names, and a bare repository name saves every tag of that repository. The
 * images are held (see Lease) until `write` is done: a prune meanwhile cannot take their blobs.
 */
export async function saveImages<T>(engine: Engine, names: readonly string[], format: ArchiveFormat, write: (files: Iterable<ArchiveFile>) => Promise<T>): Promise<T> {
  if (names.length === 0) throw new KilnError('INVALID_ARGUMENT', 'save needs at least one image name or ID');
  return engine.store.withLease(async (lease) => {
    const byId = new Map<string, { names: string[] }>();
    const add = (id: string, name?: string): void => {
      const entry = byId.get(id) ?? { names: [] };
      if (name && !entry.names.includes(name)) entry.names.push(name);
      byId.set(id, entry);
    };
    for (const name of names) {
      let ref: Reference | undefined;
      try {
        ref = parseReference(name);
      } catch {
        ref = undefined;
      }
      const repoTags = ref && !ref.tag && !ref.digest ? engine.store.db.names().filter((n) => n.kind === 'tag' && repositoryName(parseReference(n.name)) === repositoryName(ref)) : [];
      if (repoTags.length > 0) {
        for (const n of repoTags) add(n.imageId, n.name);
        continue;
      }
      const { row, byName } = engine.resolve(name);
      add(row.id, byName && !byName.includes('@') ? byName : undefined);
    }
    const items: SaveItem[] = [];
    for (const [id, { names: itemNames }] of byId) {
      const row = engine.store.db.image(id);
      if (!row || !engine.store.holdImage(lease, row.id)) throw new KilnError('NOT_FOUND', `No such image: ${itemNames[0] ?? id}`);
      items.push({ image: await engine.store.image(row), names: itemNames });
    }
    const written = await write(archiveFiles(items, format));
    for (const item of items) recordImageEvent(engine, 'save', item.image.id);
    return written;
  });
}
