/**
 * A build worker of the build fuzz: a process that opens a store once and builds, in-process through the
 * engine as `kiln build` does, each Dockerfile it is sent, answering how the build ended. It saves the
 * fuzz a process start per mutant; the fuzz kills it when a build outlives its bound (a hang) and
 * starts another. Run as `node build-worker.js STORE`, with an IPC channel.
 */
import { buildImage } from '../../src/engine/build.js';
import { Engine } from '../../src/engine/engine.js';
import { KilnError } from '../../src/errors.js';

export interface BuildRequest {
  readonly dockerfile: string;
  readonly context: string;
  readonly buildArgs: readonly (readonly [string, string])[];
  readonly labels: Readonly<Record<string, string>>;
}

/** How a build ended: built, a KilnError (the CLI's `Error:` line, its code), or anything else (an internal error). */
export type BuildReply = { readonly built: true } | { readonly built: false; readonly error: string; readonly code?: string };

const root = process.argv[2];
if (root === undefined || process.send === undefined) throw new Error('usage: node build-worker.js STORE (with an IPC channel)');
const send = process.send.bind(process);
const engine = await Engine.open(root);

async function build(request: BuildRequest): Promise<BuildReply> {
  try {
    await buildImage(engine, {
      contextDir: request.context,
      dockerfile: { path: request.dockerfile },
      tags: [],
      buildArgs: new Map(request.buildArgs),
      labels: request.labels,
      noCache: false,
      noCacheFilter: [],
      cacheFrom: [],
      secrets: new Map(),
      runtime: 'runc',
      notice: () => undefined,
      events: () => undefined,
    });
    return { built: true };
  } catch (err) {
    if (err instanceof KilnError) return { built: false, error: err.message, code: err.code };
    return { built: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
}

process.on('message', (request: BuildRequest) => {
  void build(request).then((reply) => send(reply));
});
send({ ready: true });
