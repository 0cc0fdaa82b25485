/**
 * Applies a layer on a worker thread, so that a pull's unpacking (tar parsing and many small synchronous
 * file calls) runs beside its download, decompression and hashing instead of on the same thread.
 * Lifecycle: started per layer by `applyLayerOffThread` with the root and options; `data` messages carry
 * the tar's bytes in order (each acknowledged once applyLayer has taken it), `end` closes the stream; the
 * worker answers `done` or `error` once, and the parent then terminates it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KilnError } from '../errors.js';
import { type ApplyOptions, applyLayer } from './apply.js';

type Request = { type: 'data'; buf: ArrayBuffer } | { type: 'end' };

const { root, options } = workerData as { root: string; options: ApplyOptions };
const queue: Uint8Array[] = [];
let ended = false;
let wake: (() => void) | undefined;

parentPort?.on('message', (message: Request) => {
  if (message.type === 'data') queue.push(new Uint8Array(message.buf));
  else ended = true;
  wake?.();
  wake = undefined;
});

async function* tar(): AsyncGenerator<Uint8Array> {
  for (;;) {
    const chunk = queue.shift();
    if (chunk) {
      parentPort?.postMessage({ type: 'ack' });
      yield chunk;
    } else if (ended) return;
    else await new Promise<void>((resolve) => (wake = resolve));
  }
}

applyLayer(root, tar(), options).then(
  (result) => parentPort?.postMessage({ type: 'done', result }),
  (err: unknown) =>
    parentPort?.postMessage({
      type: 'error',
      kiln: err instanceof KilnError ? err.code : undefined,
      code: (err as NodeJS.ErrnoException).code,
      message: err instanceof Error ? err.message : String(err),
    }),
);
