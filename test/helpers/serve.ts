import { type ChildProcess, spawn } from 'node:child_process';
import { kilnBin } from './kiln.js';

/** A `kiln serve` started for a test: ready when it says it serves; stopped by pid. */
export interface Served {
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export async function startServe(root: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Served> {
  const server = spawn(process.execPath, [kilnBin, '--root', root, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    server.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('serving the Docker Engine API')) resolve();
    });
    server.on('exit', (code) => reject(new Error(`kiln serve exited ${code}: ${log}`)));
  });
  server.removeAllListeners('exit');
  server.stderr?.resume();
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  return {
    process: server,
    stop: async () => {
      server.kill('SIGTERM');
      await exited;
    },
  };
}
