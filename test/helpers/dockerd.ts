import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRoot } from './paths.js';

const run = promisify(execFile);

export interface Dockerd {
  readonly host: string;
  docker(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Why a real Docker daemon cannot be started here, or undefined when it can. */
export async function dockerdUnavailable(): Promise<string | undefined> {
  if (!isRoot) return 'starting dockerd needs root';
  try {
    await run('sh', ['-c', 'command -v dockerd && command -v docker']);
    return undefined;
  } catch {
    return 'dockerd is not installed (scripts/setup.sh installs Debian docker.io as root)';
  }
}

/**
 * Starts Debian's dockerd on a private socket and data root (no bridge, no iptables), ready when it
 * logs that its API listens; stopped by pid.
 */
export async function startDockerd(): Promise<Dockerd> {
  const dir = await mkdtemp('/tmp/kd-');
  const host = `unix://${join(dir, 'd.sock')}`;
  const child: ChildProcess = spawn('dockerd', ['--bridge=none', '--iptables=false', '--ip6tables=false', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'x'), '--pidfile', join(dir, 'pid'), '-H', host], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`dockerd did not start within 60 s:\n${log}`)), 60_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('API listen on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dockerd exited (${code}):\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    host,
    docker: async (args) => (await run('docker', ['-H', host, ...args], { maxBuffer: 64 << 20 })).stdout,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
