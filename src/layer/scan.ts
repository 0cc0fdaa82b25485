import { KilnError } from '../errors.js';
import { type Digest, sha256Stream } from '../oci/digest.js';
import type { Compression } from '../oci/mediatypes.js';
import { autoDecompress } from './compression.js';
import { LayerEscapes } from './escapes.js';
import { diffBytes } from './tar/header.js';
import { readTar } from './tar/reader.js';

export interface ScannedLayer {
  /** sha256 of the uncompressed tar: the layer's diffID. */
  readonly diffId: Digest;
  /**
   * The layer's size as Docker reports it (its graph drivers' DiffSize): bytes of regular files plus the
   * length of symlink targets, each hardlinked file once; directories and tar headers count nothing.
   */
  readonly diffSize: number;
  readonly compression: Compression;
}

/**
 * An iterator over `source` whose `return()` does not close the source, so that bytes a consumer leaves
 * unread (a tar's zero padding after its end marker) can still be drained and hashed.
 */
function detachable<T>(source: AsyncIterator<T>): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => ({ next: () => source.next(), return: () => Promise.resolve({ done: true, value: undefined }) }) };
}

/**
 * A second reader of a layer's tar that walks every entry (unpacking it), refusing a malformed tar or an
 * entry that would escape the root as the scan's own walk would (see LayerEscapes), and counting the
 * layer's diffSize.
 * It owns the chunks it is given: the scan has hashed each one before and does not read it after.
 */
export type TarWalker = (tar: AsyncIterable<Uint8Array>) => Promise<{ readonly diffSize: number }>;

/**
 * Reads a layer blob once: passes every byte to `sink` (the content writer), and on the way decompresses
 * it, hashes the tar for the diffID, and walks its entries so that a truncated or malformed tar, or an
 * entry that would escape the root in any unpack (see LayerEscapes), is refused before anything is
 * published. `alsoTar`, when given, reads the same decompressed tar at the same time (a pull unpacking as
 * it downloads) and does that walk instead (applyLayer refuses what LayerEscapes does, and more): it
 * fails the scan if it fails, and its reading fails if the scan does. `sinkDigest`, when given, is the
 * digest of what the sink was given (the writer's): an uncompressed layer's diffID, so its bytes are not
 * hashed twice.
 */
export async function scanLayer(source: AsyncIterable<Uint8Array>, sink: (chunk: Uint8Array) => Promise<void>, what: string, alsoTar?: TarWalker, sinkDigest?: () => Digest): Promise<ScannedLayer> {
  // The raw bytes are read through a detachable iterator: when the layer turns out malformed, the rest of
  // the blob still reaches the sink, so the caller can tell bytes that are not what the digest names
  // (DIGEST_MISMATCH) from a well-identified blob that is not a valid layer.
  const raw = source[Symbol.asyncIterator]();
  async function* tapped(): AsyncGenerator<Uint8Array> {
    for await (const chunk of coalesced(detachable(raw))) {
      await sink(chunk);
      yield chunk;
    }
  }
  const { compression, stream } = await autoDecompress(tapped());
  const hash = compression === 'none' && sinkDigest ? undefined : sha256Stream();
  let diffSize = 0;
  const branch = alsoTar && new Branch();
  const branchDone = branch && alsoTar?.(branch).finally(() => branch.leave());
  branchDone?.catch((err: unknown) => branch?.fail(err));
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream) {
      hash?.update(chunk);
      await branch?.push(chunk); // from here on the branch's reader owns the chunk
      yield chunk;
    }
    branch?.end();
  }
  const iterator = hashed();
  const walk = async (): Promise<void> => {
    const escapes = new LayerEscapes(what);
    for await (const { header, body } of readTar(detachable(iterator))) {
      escapes.check(header);
      diffSize += diffBytes(header);
      for await (const _ of body) {
        // Bodies are hashed on the way through; their content is not needed here.
      }
    }
    while (!(await iterator.next()).done) {
      // Drain what follows the end-of-archive marker: it is part of the diffID.
    }
  };
  try {
    if (branchDone) {
      while (!(await iterator.next()).done) {
        // Hashed here; the other reader walks the entries.
      }
      diffSize = (await branchDone).diffSize;
    } else await walk();
  } catch (err) {
    branch?.fail(err);
    await branchDone?.catch(() => undefined);
    await iterator.return(undefined);
    for (let next = await raw.next().catch(() => ({ done: true as const, value: undefined })); !next.done; next = await raw.next()) await sink(next.value);
    if (err instanceof KilnError) throw new KilnError(err.code, err.message.startsWith(what) ? err.message : `${what}: ${err.message}`, { cause: err });
    throw err;
  }
  return { diffId: hash ? hash.digest() : (sinkDigest as () => Digest)(), diffSize, compression };
}

/** Chunks of at least this size reach the decompressor: each write to zlib is a trip to the thread pool,
 * and fewer, larger calls measure faster with ISA-L too. */
const SCAN_CHUNK = 1 << 20;

/** Joins small chunks (a network's, of 16 to 64 KiB) into ones of SCAN_CHUNK at least. */
async function* coalesced(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    if (size === 0 && chunk.length >= SCAN_CHUNK) {
      yield chunk;
      continue;
    }
    held.push(chunk);
    size += chunk.length;
    if (size >= SCAN_CHUNK) {
      yield Buffer.concat(held, size);
      held = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(held, size);
}

/**
 * The second reader of a scanned tar: chunks wait here for it, a few at most (the scan waits when it
 * lags). When it stops reading early (after the end-of-archive marker), later chunks are dropped; a
 * failure on either side ends both.
 */
class Branch implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private left = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private space: (() => void) | undefined;
  private static readonly AHEAD = 8;

  async push(chunk: Uint8Array): Promise<void> {
    this.check();
    if (this.left) return;
    this.queue.push(chunk);
    this.signal();
    while (this.queue.length >= Branch.AHEAD && !this.left && this.failure === undefined) await new Promise<void>((resolve) => (this.space = resolve));
    this.check();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.signal();
  }

  leave(): void {
    this.left = true;
    this.queue.length = 0;
    this.signal();
  }

  private signal(): void {
    this.wake?.();
    this.space?.();
    this.wake = this.space = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        this.check();
        const chunk = this.queue.shift();
        if (chunk) {
          this.space?.();
          this.space = undefined;
          yield chunk;
        } else if (this.ended) return;
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.leave();
    }
  }
}
