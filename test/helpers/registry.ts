import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Registry {
  /** host:port on 127.0.0.1 */
  readonly host: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** Why Debian's docker-registry cannot be started here, or undefined when it can. */
export function registryUnavailable(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v docker-registry'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'docker-registry is not installed (scripts/setup.sh installs Debian docker-registry as root)';
  }
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for the server to take). */
export async function freePort(address = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, address, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Starts a test's HTTP server on 127.0.0.1 at a port the kernel picks; `stop` drops its connections and closes it. */
export async function listenOnLoopback(server: Server): Promise<{ host: string; stop(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface RegistryAuth {
  /** htpasswd Basic auth with one user. */
  readonly basic?: { readonly username: string; readonly password: string };
  /** Token auth: the realm URL, the issuer and service names, and the PEM bundle that signs tokens. */
  readonly token?: { readonly realm: string; readonly issuer: string; readonly service: string; readonly rootCertBundle: string };
}

/**
 * Starts Debian's docker-registry (distribution 2.8) on 127.0.0.1:<free port> with a filesystem store in
 * a temp dir; ready when it logs that it listens. Stopped by pid.
 */
export async function startRegistry(auth: RegistryAuth = {}, listen: { address?: string; tls?: { certificate: string; key: string } } = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  const port = await freePort(listen.address);
  const host = `${listen.address ?? '127.0.0.1'}:${port}`;
  let tlsConfig = '';
  if (listen.tls) {
    await writeFile(join(dir, 'cert.pem'), listen.tls.certificate);
    await writeFile(join(dir, 'key.pem'), listen.tls.key);
    tlsConfig = `  tls:\n    certificate: ${join(dir, 'cert.pem')}\n    key: ${join(dir, 'key.pem')}\n`;
  }
  let authConfig = '';
  if (auth.basic) {
    const hash = execFileSync('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))', auth.basic.password]).toString().trim();
    await writeFile(join(dir, 'htpasswd'), `${auth.basic.username}:${hash}\n`);
    authConfig = `auth:\n  htpasswd:\n    realm: kiln-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (auth.token) {
    await writeFile(join(dir, 'token-ca.pem'), auth.token.rootCertBundle);
    authConfig = `auth:\n  token:\n    realm: ${auth.token.realm}\n    service: ${auth.token.service}\n    issuer: ${auth.token.issuer}\n    rootcertbundle: ${join(dir, 'token-ca.pem')}\n`;
  }
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n${tlsConfig}${authConfig}`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start within 30 s:\n${log}`)), 30_000);
    const watch = (chunk: Buffer): void => {
      log += chunk.toString();
      if (log.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', watch);
    child.stderr?.on('data', watch);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`docker-registry exited (${code}):\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  child.stdout?.resume();
  child.stderr?.resume();
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    host,
    dir,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
