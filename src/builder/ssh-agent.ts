/**
 * SSH agents for RUN --mount=type=ssh (`kiln build --ssh ID[=SOCKET|KEY[,KEY]]`, buildx's flag). A step
 * gets no agent socket of the host's: each mount is a socket of kiln's own in the step's bundle, with the
 * mount's owner and mode (BuildKit's 0600, root's, by default), that passes every connection on to the
 * agent, as BuildKit's session forwards it. Key files are loaded into an ssh-agent kiln starts for the
 * build (OpenSSH's, without a passphrase: there is no one to type it), stopped when the build ends.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdtemp, rm } from 'node:fs/promises';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KilnError, isErrno } from '../errors.js';
import { execFileAsync } from '../exec-file.js';
import { guardUndo, shellQuote } from '../runtime/guard.js';

/** The agents of a build by id, and how to stop those kiln started. */
export interface SshAgents {
  readonly sockets: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

/**
 * `--ssh` values → an agent socket per id: `default` (or `ID`) alone is $SSH_AUTH_SOCK; `ID=PATH[,PATH]`
 * is an agent's socket, or key files loaded into an agent of kiln's.
 */
export async function sshAgents(specs: readonly string[]): Promise<SshAgents> {
  const sockets = new Map<string, string>();
  const stops: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const stop of stops.splice(0)) await stop();
  };
  try {
    for (const spec of specs) {
      const eq = spec.indexOf('=');
      const id = eq < 0 ? spec : spec.slice(0, eq);
      const paths = eq < 0 ? [] : spec.slice(eq + 1).split(',').filter((p) => p !== '');
      if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new KilnError('INVALID_ARGUMENT', `invalid --ssh ${JSON.stringify(spec)}: use ID[=SOCKET|KEY[,KEY]], ID such as default`);
      if (sockets.has(id)) throw new KilnError('INVALID_ARGUMENT', `--ssh ${id} given more than once`);
      if (paths.length === 0) {
        const agent = process.env.SSH_AUTH_SOCK;
        if (!agent) throw new KilnError('INVALID_ARGUMENT', `--ssh ${spec}: SSH_AUTH_SOCK is not set; start an ssh-agent, or give its socket or key files (--ssh ${id}=~/.ssh/id_ed25519)`);
        paths.push(agent);
      }
      const kinds = await Promise.all(paths.map(async (path) => (await lstat(path).catch(() => undefined))?.isSocket()));
      if (paths.length === 1 && kinds[0]) sockets.set(id, paths[0] ?? '');
      else {
        const agent = await keyAgent(id, paths);
        stops.push(agent.stop);
        sockets.set(id, agent.socket);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { sockets, close };
}

/** An ssh-agent of kiln's holding `keys` (files), guarded so that a killed kiln leaves none running. */
async function keyAgent(id: string, keys: readonly string[]): Promise<{ socket: string; stop: () => Promise<void> }> {
  for (const key of keys) {
    const stat = await lstat(key).catch(() => undefined);
    if (!stat?.isFile()) throw new KilnError('NOT_FOUND', `--ssh ${id}=${keys.join(',')}: ${key} is no agent socket and no key file`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
  const socket = join(dir, 'agent.sock');
  // -D: in the foreground, kiln's child; it says where it listens once it does.
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'ignore'] });
  const unguard = await guardUndo(`kill ${agent.pid ?? 0}; rm -rf ${shellQuote(dir)}`);
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    // Gone before the build returns: nothing of it outlives the build.
    if (agent.exitCode === null && agent.signalCode === null && agent.kill()) await exited;
    await rm(dir, { recursive: true, force: true });
    unguard();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      agent.on('error', (err) => reject(new KilnError('NOT_FOUND', `--ssh ${id}: cannot start ssh-agent for its key files (${err.message}); install Debian's openssh-client, or give an agent's socket`)));
      agent.on('exit', (code) => reject(new KilnError('FAILED', `--ssh ${id}: ssh-agent exited (${code ?? 'killed'}) before it listened`)));
      agent.stdout.once('data', () => resolve());
    });
    agent.stdout.resume();
    await execFileAsync('ssh-add', ['-q', ...keys], { env: { ...process.env, SSH_AUTH_SOCK: socket, SSH_ASKPASS_REQUIRE: 'never' } }).catch((err: { stderr?: string }) => {
      throw new KilnError('INVALID_ARGUMENT', `--ssh ${id}: cannot load ${keys.join(', ')} (${err.stderr?.trim() ?? ''}); a key with a passphrase goes into your own ssh-agent, given as --ssh ${id}`);
    });
    return { socket, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A socket at `path` (a new file) with `owner`'s ids and mode, passing each connection on to the agent at
 * `agent`, until closed.
 */
export async function agentProxy(agent: string, path: string, owner: { readonly uid: number; readonly gid: number; readonly mode: number }): Promise<{ close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(agent);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  server.unref();
  await chown(path, owner.uid, owner.gid);
  await chmod(path, owner.mode);
  return {
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(path, { force: true }).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
    },
  };
}
