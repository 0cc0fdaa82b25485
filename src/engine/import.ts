import { stat } from 'node:fs/promises';
import { KilnError } from '../errors.js';
import { applyChanges } from '../builder/changes.js';
import { autoDecompress } from '../layer/compression.js';
import { tarDirectory } from '../layer/directory.js';
import type { Digest } from '../oci/digest.js';
import { historyEntry, imageOf } from '../image/mutate.js';
import { MediaType } from '../oci/mediatypes.js';
import { EMPTY_CONTAINER_CONFIG } from '../oci/types.js';
import { familiarString, parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import { recordImageEvent } from './events.js';
import { parsePlatform } from '../oci/platform.js';
import type { Engine } from './engine.js';

export interface ImportOptions {
  /** A name for the image (REPOSITORY[:TAG]). */
  readonly reference?: string;
  /** Dockerfile instructions applied to the config (`-c`). */
  readonly changes?: readonly string[];
  /** The history comment (`-m`); Docker's default is "Imported from -". */
  readonly message?: string;
  /** `os/arch[/variant]`; the host's by default. */
  readonly platform?: string;
  /** The creation time; now by default. */
  readonly created?: Date;
}

/** Where `import` reads a root filesystem from: a tar (file or stream, maybe compressed) or a directory. */
export type ImportSource = { readonly path: string } | { readonly stream: AsyncIterable<Uint8Array> };

async function rootfsStream(source: ImportSource): Promise<AsyncIterable<Uint8Array>> {
  if ('stream' in source) return (await autoDecompress(source.stream)).stream;
  const st = await stat(source.path).catch(() => {
    throw new KilnError('NOT_FOUND', `open ${source.path}: no such file or directory`);
  });
  if (st.isDirectory()) return tarDirectory(source.path);
  const { createReadStream } = await import('node:fs');
  return (await autoDecompress(createReadStream(source.path, { highWaterMark: 1 << 20 }))).stream;
}

/**
 * `docker import`: one layer from a root filesystem, a config built from `changes`, and a history entry.
 * The layer is stored uncompressed, so its diffID is the sha256 of the tar as given (as Docker's is).
 */
export async function importImage(engine: Engine, source: ImportSource, options: ImportOptions = {}): Promise<Digest> {
  const name = options.reference ? referenceString(withDefaultTag(parseReference(options.reference))) : undefined;
  if (options.reference && parseReference(options.reference).digest) {
    throw new KilnError('INVALID_ARGUMENT', `import takes a REPOSITORY[:TAG], not a digest: ${options.reference}`);
  }
  const platform = parsePlatform(options.platform);
  const config = applyChanges(EMPTY_CONTAINER_CONFIG, options.changes ?? []);
  const created = (options.created ?? new Date()).toISOString();
  const comment = options.message || 'Imported from -';
  const { store } = engine;
  return store.withLease(async (lease) => {
    const layer = await store.ingestLayer(lease, await rootfsStream(source), { mediaType: MediaType.ociLayer }, 'imported root filesystem');
    // Docker makes an image of no bytes at all; an empty file is far more often a mistake (a failed download).
    if (layer.size === 0) throw new KilnError('INVALID_INPUT', 'import: the input is empty, not a tar archive (for an image with no files, import an empty tar: tar -cf empty.tar -T /dev/null)');
    const image = imageOf(
      {
        architecture: platform.architecture,
        ...(platform.variant ? { variant: platform.variant } : {}),
        comment,
        config,
        created,
        history: [historyEntry({ created, comment })],
        os: platform.os,
        rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      },
      [store.storedLayer(layer)],
    );
    const { id } = await store.writeImage(lease, { image, names: name ? [name] : [] }, 'import');
    // dockerd's order: the tag, then the import.
    if (name) recordImageEvent(engine, 'tag', id, familiarString(parseReference(name)));
    recordImageEvent(engine, 'import', id);
    return id;
  });
}
