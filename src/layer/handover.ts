import type { Worker } from 'node:worker_threads';

/**
 * Posts bytes to a worker as `message.buf`. A chunk that is the whole of its own ArrayBuffer (as zlib's
 * and file streams' output is) is moved, not copied, which leaves it empty here: the caller must not
 * read it again. Others (a slice of a larger buffer) are copied.
 */
export function postBytes(worker: Worker, message: Record<string, unknown>, chunk: Uint8Array): void {
  if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer) {
    try {
      worker.postMessage({ ...message, buf: chunk.buffer }, [chunk.buffer]);
      return;
    } catch {
      // An ArrayBuffer Node marks untransferable (its Buffer pool's): copied below.
    }
  }
  const copy = new Uint8Array(chunk).buffer;
  worker.postMessage({ ...message, buf: copy }, [copy]);
}
