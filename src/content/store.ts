import { closeSync, createReadStream, existsSync, fsync, mkdirSync, openSync, readFileSync, renameSync, rmSync, write, writeSync } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, isErrno, storeWriteError } from '../errors.js';
import { type Digest, type Sha256, digestHex, isDigest, sha256, sha256Stream } from '../oci/digest.js';
import { randomHex } from '../random.js';
import { type StorePaths, storePaths } from './paths.js';

/** What the store knows of a committed blob. */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** Expectations a caller has of bytes it ingests; both are verified at commit. */
export interface Expected {
  readonly digest?: Digest;
  readonly size?: number;
}

/**
 * The content-addressed blob store: `blobs/sha256/<hex>` under the root (OCI image-layout compatible).
 *
 * This is the one integrity boundary of kiln. Bytes enter only through a {@link ContentWriter}, which
 * writes to `ingest/`, verifies size and sha256 at commit, fsyncs, and renames atomically into place: a
 * blob is visible only once its digest is proven, and a `kill -9` leaves at worst a stale ingest file.
 * Concurrent ingests of the same digest are safe: each writes its own ingest file and the renames
 * replace identical content.
 */
export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  /** Scratch space on the store's filesystem (spooled archives); files are named by {@link scratchName}. */
  readonly tmpDir: string;

  /** Every path under the store root this blob store lives in. */
  readonly paths: StorePaths;

  constructor(readonly root: string) {
    this.paths = storePaths(root);
    this.blobsDir = this.paths.blobs;
    this.ingestDir = this.paths.ingest;
    this.tmpDir = this.paths.tmp;
  }

  /** Synchronous, as every command opens the store first: fs/promises would load some ten of Node's modules before it. */
  init(): void {
    mkdirSync(this.blobsDir, { recursive: true });
    mkdirSync(this.ingestDir, { recursive: true });
  }

  blobPath(digest: Digest): string {
    if (!digest.startsWith('sha256:')) throw new KilnError('UNSUPPORTED', `blob ${digest}: only sha256 digests are stored`);
    return join(this.blobsDir, digestHex(digest));
  }

  /** The blob's size, or undefined when it is not in the store. */
  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  /** Synchronous presence check, for use inside a database transaction. */
  hasSync(digest: Digest): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Streams a committed blob. */
  async open(digest: Digest): Promise<AsyncIterable<Buffer>> {
    const path = this.blobPath(digest);
    const handle = await open(path, 'r').catch((err: unknown) => {
      throw isErrno(err, 'ENOENT') ? new KilnError('NOT_FOUND', `blob ${digest} is not in the store`) : err;
    });
    return createReadStream('', { fd: handle, highWaterMark: 1 << 20 });
  }

  /**
   * Reads a small blob (a manifest or config) whole. Synchronously: a few kB take less than a thread-pool
   * round trip, and fs/promises' readFile loads more of Node on its first use (some ms of a build's start).
   */
  read(digest: Digest): Promise<Buffer> {
    try {
      return Promise.resolve(readFileSync(this.blobPath(digest)));
    } catch (err) {
      return Promise.reject(isErrno(err, 'ENOENT') ? new KilnError('NOT_FOUND', `blob ${digest} is not in the store`) : (err as Error));
    }
  }

  /** Reads a small blob whole, synchronously (for queries inside one database read). */
  readSync(digest: Digest): Buffer {
    try {
      return readFileSync(this.blobPath(digest));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new KilnError('CORRUPT', `blob ${digest} is missing from the store (run 'kiln system check')`);
      throw err;
    }
  }

  /** A new ingest file's path; `ref` names what is written there. */
  private ingestPath(ref: string): string {
    return join(this.ingestDir, scratchName(digestHex(sha256(ref)).slice(0, 16)));
  }

  /** Starts an ingest. `ref` names what is being written (its digest names the ingest file). */
  writer(ref: string): ContentWriter {
    const path = this.ingestPath(ref);
    try {
      mkdirSync(this.ingestDir, { recursive: true }); // there but after a prune: one cheap call (fs/promises' mkdir loads more of Node)
      return new ContentWriter(this, path, openSync(path, 'wx', 0o644));
    } catch (err) {
      throw storeWriteError(err, this.root, path);
    }
  }

  /** Ingests bytes held in memory. */
  async put(data: Uint8Array, expected: Expected = {}, ref = 'put'): Promise<BlobInfo> {
    const blob = await this.written(data, expected, ref);
    try {
      blob.publish();
    } catch (err) {
      await blob.abort();
      throw err;
    }
    return blob.info;
  }

  /**
   * Bytes held in memory (a config, a manifest), verified and written to an ingest file and fsynced, as a
   * writer's write and verify do, not yet visible: publish or abort the result. The calls are synchronous
   * but the fsync: a few kB take less than the thread-pool round trips of a writer's every step.
   */
  async written(data: Uint8Array, expected: Expected, ref: string): Promise<VerifiedBlob> {
    const digest = sha256(data);
    checkExpected(expected, digest, data.length);
    const path = this.ingestPath(ref);
    try {
      mkdirSync(this.ingestDir, { recursive: true });
      const fd = openSync(path, 'wx', 0o644);
      try {
        for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
        await fsynced(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      rmSync(path, { force: true });
      throw storeWriteError(err, this.root, path);
    }
    const info = { digest, size: data.length };
    return { info, publish: () => renameSync(path, this.blobPath(digest)), abort: () => rm(path, { force: true }) };
  }

  /** Ingests a stream; when `expected.digest` is already present the stream is still drained and verified. */
  async ingest(source: AsyncIterable<Uint8Array>, expected: Expected = {}, ref = 'ingest'): Promise<BlobInfo> {
    const writer = this.writer(ref);
    try {
      for await (const chunk of source) await writer.write(chunk);
      return await writer.commit(expected);
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /** Removes a blob; removing one that is absent is not an error (GC may race another GC). */
  async delete(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  /** Every committed blob, unordered. Files whose name is not a digest are reported by {@link strays}. */
  async *list(): AsyncGenerator<BlobInfo> {
    for (const name of await readdirOrEmpty(this.blobsDir)) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const info = await this.info(digest);
      if (info) yield info;
    }
  }

  /** Files in blobs/sha256 that are not named by a digest, and ingest files: left-overs of a crash. */
  async strays(): Promise<string[]> {
    const blobs = (await readdirOrEmpty(this.blobsDir)).filter((n) => !isDigest(`sha256:${n}`)).map((n) => join(this.blobsDir, n));
    const scratch = [this.ingestDir, this.tmpDir].map(async (dir) => (await readdirOrEmpty(dir)).map((n) => join(dir, n)));
    return [...blobs, ...(await Promise.all(scratch)).flat()];
  }

  /** Re-hashes a blob; false when its content no longer matches its name. */
  async verify(digest: Digest): Promise<boolean> {
    const hash = sha256Stream();
    for await (const chunk of await this.open(digest)) hash.update(chunk);
    return hash.digest() === digest;
  }
}

/** Throws DIGEST_MISMATCH unless the bytes written (`digest`, `size`) are what was expected. */
function checkExpected(expected: Expected, digest: Digest, size: number): void {
  if (expected.size !== undefined && expected.size !== size) throw new KilnError('DIGEST_MISMATCH', `blob ${expected.digest ?? digest}: expected ${expected.size} bytes, got ${size}`);
  if (expected.digest !== undefined && expected.digest !== digest) throw new KilnError('DIGEST_MISMATCH', `blob content does not match its digest: expected ${expected.digest}, got ${digest}`);
}

/** Flushes a file to its disk, on the thread pool. */
function fsynced(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** A blob written and verified, not yet visible: `publish` makes it so (an atomic rename), `abort` removes it. */
export interface VerifiedBlob {
  readonly info: BlobInfo;
  publish(): void;
  abort(): Promise<void>;
}

/**
 * One blob being written. Lifecycle: created by {@link ContentStore.writer} → `write`* → `commit` (verified,
 * visible) or `abort` (nothing left behind). After either, the writer is spent.
 */
/** Writes smaller than this are gathered into one. */
const WRITE_BATCH = 1 << 20;

export class ContentWriter {
  private readonly hash: Sha256 = sha256Stream();
  private written = 0;
  private done = false;
  private verified: BlobInfo | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** A write that failed leaves the file behind the hash: the writer is spent, and says so again. */
  private failure: { readonly error: unknown } | undefined;

  constructor(
    private readonly store: ContentStore,
    private readonly path: string,
    /** The ingest file's descriptor (not a FileHandle: the first one made loads more of Node, some ms of a build). */
    private readonly fd: number,
  ) {}

  get offset(): number {
    return this.written;
  }

  /** The digest of what was written so far (the writer goes on). */
  peekDigest(): Digest {
    return this.hash.peek();
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new KilnError('INTERNAL', 'write after commit or abort');
    if (this.failure) throw this.failure.error;
    this.hash.update(chunk);
    this.written += chunk.length;
    if (chunk.length >= WRITE_BATCH && this.pendingBytes === 0) return this.writeFully(chunk);
    // Small chunks (tar headers, small files) are gathered into one write: a system call each would
    // dominate a layer of many small files. They are copied, as the caller may reuse its buffer.
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const batch = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.writeFully(batch);
  }

  private async writeFully(data: Uint8Array): Promise<void> {
    try {
      for (let at = 0; at < data.length; ) at += await new Promise<number>((resolve, reject) => write(this.fd, data, at, data.length - at, null, (err, written) => (err ? reject(err) : resolve(written))));
    } catch (err) {
      this.failure = { error: storeWriteError(err, this.store.root, this.path) };
      throw this.failure.error;
    }
  }

  /** Verifies size and digest, fsyncs, and makes the blob visible. A mismatch removes the ingest file. */
  async commit(expected: Expected = {}): Promise<BlobInfo> {
    const info = await this.verify(expected);
    this.publish();
    return info;
  }

  /**
   * First half of a commit: checks size and digest and fsyncs. On a mismatch the ingest file is removed.
   * Callers that must record the blob atomically with its appearance (a GC lease) call {@link publish}
   * inside their own database transaction.
   */
  async verify(expected: Expected = {}): Promise<BlobInfo> {
    if (this.done) throw new KilnError('INTERNAL', 'commit after commit or abort');
    const digest = this.hash.digest();
    const size = this.written;
    try {
      if (this.failure) throw this.failure.error;
      await this.flush();
      checkExpected(expected, digest, size);
      await fsynced(this.fd);
      closeSync(this.fd);
      this.done = true;
      this.verified = { digest, size };
      return this.verified;
    } catch (err) {
      await this.abort();
      throw storeWriteError(err, this.store.root, this.path);
    }
  }

  /** Second half of a commit: the atomic rename that makes the verified blob visible. Synchronous on purpose. */
  publish(): void {
    if (!this.verified) throw new KilnError('INTERNAL', 'publish before verify');
    renameSync(this.path, this.store.blobPath(this.verified.digest));
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      try {
        closeSync(this.fd);
      } catch {
        // closed already, or never to be: the file goes anyway
      }
    }
    await rm(this.path, { force: true });
  }
}

/**
 * Names an ingest or scratch file `<label>-<pid>-<random>`, so that the GC can tell the files of a
 * process that died (kill -9) from those of one still writing.
 */
export function scratchName(label: string): string {
  return `${label}-${process.pid}-${randomHex(4)}`;
}

/** The pid in a {@link scratchName}, if the name is one. */
export function scratchOwner(name: string): number | undefined {
  const match = /-(\d+)-[0-9a-f]{8}(\.[a-z]+)?$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}
