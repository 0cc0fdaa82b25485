import type { Transform } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { ZlibOptions } from 'node:zlib';
import { KilnError } from '../errors.js';
import { postBytes } from './handover.js';
import { type IgzipAddon, igzip } from './igzip.js';
import type { Compression } from '../oci/mediatypes.js';

// Streams, zlib and worker threads load at the first (de)compression (process.getBuiltinModule), not with
// this module: a build that finds every step in its cache imports it, through the builder, and compresses nothing.

/** Sniffs a stream's first bytes: gzip (1f 8b), zstd (28 b5 2f fd), or neither. */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

interface WorkerReply {
  type: 'out' | 'error';
  bufs?: Uint8Array[];
  done?: boolean;
  message?: string;
}

/**
 * Streams bytes through zstd in a worker thread, one chunk in flight at a time, so a slow consumer
 * holds the producer back (no unbounded buffering) and the main thread never blocks on zstd.
 */
async function* zstdInWorker(source: AsyncIterable<Uint8Array>, mode: 'compress' | 'decompress'): AsyncGenerator<Buffer> {
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const worker = new Worker(new URL('./zstd-worker.js', import.meta.url), { workerData: { mode } });
  worker.unref();
  let failure: Error | undefined;
  let waiting: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void } | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    waiting?.reject(err);
    waiting = undefined;
  };
  worker.on('message', (reply: WorkerReply) => {
    if (reply.type === 'error') fail(new KilnError('INVALID_INPUT', `zstd data is corrupt: ${reply.message}`));
    else {
      waiting?.resolve(reply);
      waiting = undefined;
    }
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new KilnError('INTERNAL', `the zstd worker exited unexpectedly (code ${code})`)));
  const ask = (message: unknown, transfer: ArrayBuffer[] = []): Promise<WorkerReply> =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      waiting = { resolve, reject };
      worker.postMessage(message, transfer);
    });
  const out = (reply: WorkerReply): Buffer[] => (reply.bufs ?? []).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  try {
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      const copy = new Uint8Array(chunk).buffer; // the chunk may share a pooled buffer: send a copy, transferred
      yield* out(await ask({ type: 'data', buf: copy }, [copy]));
    }
    yield* out(await ask({ type: 'end' }));
  } finally {
    worker.removeAllListeners('exit');
    worker.on('error', () => undefined);
    await worker.terminate();
  }
}

/** Runs a zlib transform over a stream, mapping its errors to a KilnError about the data. */
async function* throughZlib(source: AsyncIterable<Uint8Array>, transform: Transform, what: string): AsyncGenerator<Buffer> {
  // Errors surface on the readable side below; the pipeline's own rejection only repeats them. The
  // source's own (a broken connection) are not about the data, and pass as they are.
  let sourceFailure: unknown;
  const tracked = (async function* () {
    try {
      yield* source;
    } catch (err) {
      sourceFailure = err;
      throw err;
    }
  })();
  const feeding = process.getBuiltinModule('node:stream/promises').pipeline(tracked, transform).catch(() => undefined);
  try {
    for await (const chunk of transform) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof KilnError || err === sourceFailure) throw err;
    throw new KilnError('INVALID_INPUT', `${what}: ${(err as Error).message}`, { cause: err });
  } finally {
    transform.destroy();
    await feeding;
  }
}

/**
 * gunzip through ISA-L on this thread, a chunk at a time as it comes (a 1 MiB chunk inflates in about
 * 1 ms): half the CPU time of zlib's, and no hops to the thread pool. Output comes in whole 1 MiB
 * buffers, which `postBytes` moves to a worker without a copy.
 */
export async function* igzipGunzip(source: AsyncIterable<Uint8Array>, addon: IgzipAddon): AsyncGenerator<Uint8Array> {
  const gunzip = new addon.Gunzip();
  // Only the addon's faults are about the data; the source's own (a broken connection) pass as they are.
  const inflate = <T>(step: () => T): T => {
    try {
      return step();
    } catch (err) {
      throw new KilnError('INVALID_INPUT', `gzip data is corrupt: ${(err as Error).message}`, { cause: err });
    }
  };
  for await (const chunk of source) for (const buffer of inflate(() => gunzip.write(chunk))) yield new Uint8Array(buffer);
  yield* inflate(() => gunzip.end());
}

/** gunzip through node:zlib, which inflates on the thread pool: what runs when native/ was not built. */
export function zlibGunzip(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  // A few MiB buffered on each side, so that reading (the network), inflating (the thread pool) and
  // what reads the output go on at once: with 16 KiB each waited for the others after every chunk.
  return throughZlib(source, process.getBuiltinModule('node:zlib').createGunzip({ chunkSize: 1 << 20, writableHighWaterMark: 4 << 20, readableHighWaterMark: 4 << 20 } as ZlibOptions), 'gzip data is corrupt');
}

export function decompressStream(source: AsyncIterable<Uint8Array>, compression: Compression): AsyncIterable<Uint8Array> {
  switch (compression) {
    case 'none':
      return source;
    case 'gzip': {
      const addon = igzip();
      return addon ? igzipGunzip(source, addon) : zlibGunzip(source);
    }
    case 'zstd':
      return zstdInWorker(source, 'decompress');
  }
}

export function compressStream(source: AsyncIterable<Uint8Array>, compression: 'gzip' | 'zstd'): AsyncIterable<Uint8Array> {
  return compression === 'gzip' ? parallelGzip(source) : zstdInWorker(source, 'compress');
}

const GZIP_BLOCK = 1 << 20;
/** Threads compressing one stream: one per core (more only take turns on the same cores). */
const GZIP_WORKERS = Math.max(1, Math.min(4, availableParallelism()));

type MemberReply = { seq: number; buf: ArrayBuffer } | { seq: number; error: string };

/**
 * gzip as independent members of 1 MiB each, compressed by worker threads, one per core (pgzip's way):
 * a multi-member stream is one valid gzip file to every reader, and compression uses every core while
 * this thread reads, hashes and uploads. Members come out in order; the output is the same for the same
 * input. The source's chunks are taken over (see `postBytes`).
 */
async function* parallelGzip(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const workers = Array.from({ length: GZIP_WORKERS }, () => new Worker(new URL('./gzip-worker.js', import.meta.url)));
  const done = new Map<number, Buffer>();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    wake?.();
    wake = undefined;
  };
  for (const worker of workers) {
    worker.on('message', (reply: MemberReply) => {
      if ('error' in reply) failure ??= new KilnError('INTERNAL', `gzip failed: ${reply.error}`);
      else done.set(reply.seq, Buffer.from(reply.buf));
      signal();
    });
    worker.on('error', (err) => {
      failure ??= err;
      signal();
    });
    worker.on('exit', (code) => {
      failure ??= new KilnError('INTERNAL', `a gzip worker exited unexpectedly (code ${code})`);
      signal();
    });
  }
  let sent = 0;
  let next = 0;
  /** The members done, in order, until at most `inFlight` blocks are still being compressed. */
  async function* collect(inFlight: number): AsyncGenerator<Buffer> {
    while (sent - next > inFlight) {
      if (failure) throw failure;
      const member = done.get(next);
      if (member === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      done.delete(next++);
      yield member;
    }
  }
  const send = (data: Uint8Array): void => postBytes(workers[sent % workers.length] as Worker, { seq: sent++ }, data);
  try {
    let block: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of source) {
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(GZIP_BLOCK - size, rest.length);
        block.push(take === rest.length ? rest : rest.subarray(0, take));
        size += take;
        rest = rest.subarray(take);
        if (size === GZIP_BLOCK) {
          send(block.length === 1 ? (block[0] as Uint8Array) : Buffer.concat(block, size));
          block = [];
          size = 0;
        }
      }
      // One block more than the workers waits its turn, so that none of them is ever idle.
      yield* collect(workers.length);
    }
    if (size > 0 || sent === 0) send(block.length === 1 ? (block[0] as Uint8Array) : Buffer.concat(block, size));
    yield* collect(0);
  } finally {
    for (const worker of workers) {
      worker.removeAllListeners('exit');
      worker.on('error', () => undefined);
    }
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/**
 * The first bytes of a stream (at least `count` unless it ends first), and the whole stream again: the
 * peeked bytes are replayed in front of the rest.
 */
export async function peek(source: AsyncIterable<Uint8Array>, count: number): Promise<{ head: Buffer; stream: AsyncIterable<Uint8Array> }> {
  const iterator = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let length = 0;
  let ended = false;
  while (length < count) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    length += next.value.length;
  }
  async function* replay(): AsyncGenerator<Uint8Array> {
    // A consumer that stops early (a tar reader at its end-of-archive blocks) closes the source here,
    // rather than leaving its file open until garbage collection.
    try {
      yield* head;
      if (ended) return;
      while (true) {
        const next = await iterator.next();
        if (next.done) {
          ended = true;
          return;
        }
        yield next.value;
      }
    } finally {
      if (!ended) await iterator.return?.();
    }
  }
  return { head: Buffer.concat(head), stream: replay() };
}

/** Sniffs the compression of a stream and returns it decompressed (see peek: no byte is lost). */
export async function autoDecompress(source: AsyncIterable<Uint8Array>): Promise<{ compression: Compression; stream: AsyncIterable<Uint8Array> }> {
  const { head, stream } = await peek(source, 4);
  const compression = detectCompression(head);
  return { compression, stream: decompressStream(stream, compression) };
}
