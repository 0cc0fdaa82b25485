/**
 * Runs zstd compression or decompression off the main thread. Lifecycle: started per stream by
 * compression.ts with `workerData.mode`; each `data` message is answered with the output it produced,
 * `end` flushes and answers with the rest; the parent terminates the worker afterwards.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Transform } from 'node:stream';
import { CompressStream, DecompressStream } from 'zstd-napi';

type Request = { type: 'data'; buf: ArrayBuffer } | { type: 'end' };

const { mode } = workerData as { mode: 'compress' | 'decompress' };
const stream: Transform = mode === 'compress' ? new CompressStream({ compressionLevel: 3 }) : new DecompressStream();
let produced: Buffer[] = [];
stream.on('data', (chunk: Buffer) => produced.push(chunk));

function reply(done: boolean): void {
  const out = produced;
  produced = [];
  parentPort?.postMessage({ type: 'out', bufs: out, done });
}

stream.on('error', (err: Error) => parentPort?.postMessage({ type: 'error', message: err.message }));

parentPort?.on('message', (message: Request) => {
  if (message.type === 'data') {
    stream.write(Buffer.from(message.buf), (err) => {
      if (!err) reply(false);
    });
  } else {
    stream.end(() => reply(true));
  }
});
