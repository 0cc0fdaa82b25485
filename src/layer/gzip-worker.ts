/**
 * Compresses blocks into gzip members off the main thread (see `parallelGzip` in compression.ts).
 * Lifecycle: started per stream; each `block` message is answered with its member under the same `seq`;
 * the parent terminates the worker at the stream's end.
 */
import { parentPort } from 'node:worker_threads';
import { gzipMember } from './gzip-member.js';

parentPort?.on('message', ({ seq, buf }: { seq: number; buf: ArrayBuffer }) => {
  try {
    const member = gzipMember(new Uint8Array(buf));
    parentPort?.postMessage({ seq, buf: member }, [member]);
  } catch (err) {
    parentPort?.postMessage({ seq, error: err instanceof Error ? err.message : String(err) });
  }
});
