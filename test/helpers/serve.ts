import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kilnBin } from './kiln.js';
import { type Registry, registryUnavailable, startRegistry } from './registry.js';

/** A `kiln serve` started for a test: ready when it says it serves; stopped by pid. */
export interface Served {
  readonly process: ChildProcess;
  /** The exit code, or the signal that ended it, once the server has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Resolves once the server has written `text` to its stderr (with KILN_API_TRACE it names each request). */
  logged(text: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startServe(root: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Served> {
  const server = spawn(process.execPath, [kilnBin, '--root', root, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let log = '';
  server.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const logged = (text: string): Promise<void> =>
    new Promise((resolve) => {
      const look = (): void => {
        if (!log.includes(text)) return;
        server.stderr?.off('data', look);
        resolve();
      };
      server.stderr?.on('data', look);
      look();
    });
  await new Promise<void>((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`kiln serve exited ${code}: ${log}`)));
    void logged('serving the Docker Engine API').then(resolve);
  });
  server.removeAllListeners('exit');
  const exited = new Promise<number | NodeJS.Signals>((resolve) => server.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    process: server,
    exited,
    logged,
    stop: async () => {
      server.kill('SIGTERM');
      await exited;
    },
  };
}

/** A `kiln serve` on a unix socket in a fresh directory (its store in `store`), a registry beside it when one can run. */
export interface ServeLab {
  readonly dir: string;
  readonly socket: string;
  readonly root: string;
  readonly registry: Registry | undefined;
  stop(): Promise<void>;
}

/** Starts a ServeLab; `prepare` may make files in its directory and give the server's environment. */
export async function startServeLab(prefix: string, prepare: (dir: string) => Promise<NodeJS.ProcessEnv> = async () => process.env): Promise<ServeLab> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const socket = join(dir, 'kiln.sock');
  const root = join(dir, 'store');
  const server = await startServe(root, ['-H', `unix://${socket}`], await prepare(dir));
  const registry = registryUnavailable() ? undefined : await startRegistry();
  return {
    dir,
    socket,
    root,
    registry,
    stop: async () => {
      await server.stop();
      await registry?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
