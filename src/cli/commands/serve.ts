import type { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Listen } from '../../api/server.js';
import { readFile } from 'node:fs/promises';
import { KilnError } from '../../errors.js';
import { Engine } from '../../engine/engine.js';
import type { CommandContext } from '../context.js';
import { addRuntimeFlags, checkPickedRuntimeFlags, type RuntimeFlags } from '../runtime-flags.js';

/** How long requests still at work may take to finish when kiln serve is told to stop. */
const STOP_GRACE_MS = 3000;

/** Docker's default socket for kiln: /run/kiln.sock as root, $XDG_RUNTIME_DIR/kiln.sock otherwise. */
function defaultSocket(): string {
  if (process.getuid?.() === 0) return '/run/kiln.sock';
  return join(process.env.XDG_RUNTIME_DIR ?? '/tmp', 'kiln.sock');
}

/** A group name or number → gid (through getent, as the group database may be NSS). */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    const line = execFileSync('getent', ['group', group]).toString().trim();
    return Number(line.split(':')[2]);
  } catch {
    throw new KilnError('INVALID_ARGUMENT', `unknown group ${JSON.stringify(group)}`);
  }
}

export function registerServe(parent: Command, ctx: CommandContext): void {
  addRuntimeFlags(parent.command('serve'), 'containers (by default runc) and RUN steps', null)
    .description("Serve Docker's Engine API, so the docker CLI and Docker SDKs drive kiln")
    .option('-H, --host <unix:///path|tcp://host:port>', 'where to listen (default unix:///run/kiln.sock as root)')
    .option('--group <group>', 'group that owns the socket (mode 0660)')
    .option('--tls', 'serve TCP over TLS (--tlscert, --tlskey)')
    .option('--tlsverify', 'serve TCP over TLS and accept only clients with a certificate from --tlscacert')
    .option('--tlscert <file>', 'the server certificate (PEM)')
    .option('--tlskey <file>', "the server certificate's key (PEM)")
    .option('--tlscacert <file>', 'the CA that signs client certificates (PEM)')
    .option('--insecure-tcp', 'serve plain TCP: anyone who reaches the port controls kiln')
    .action((flags: Omit<RuntimeFlags, 'runtime'> & { runtime?: string; host?: string; group?: string; tls?: boolean; tlsverify?: boolean; tlscert?: string; tlskey?: string; tlscacert?: string; insecureTcp?: boolean }) =>
      (async () => {
        const host = flags.host ?? `unix://${defaultSocket()}`;
        // Builds' RUN steps run where the engine picks unless --runtime says; containers in runc, as kiln run's.
        const build = checkPickedRuntimeFlags(flags);
        const containers = { ...build, runtime: build.runtime ?? 'runc' } as const;
        let listen: Listen;
        if (host.startsWith('unix://')) {
          listen = { socket: host.slice('unix://'.length), ...(flags.group !== undefined ? { group: groupId(flags.group) } : {}) };
        } else {
          const match = /^tcp:\/\/([^:]+|\[[^\]]+\]):(\d+)$/.exec(host);
          if (!match) throw new KilnError('INVALID_ARGUMENT', `invalid -H ${JSON.stringify(host)}: use unix:///path or tcp://host:port`);
          const tls = flags.tls || flags.tlsverify;
          if (!tls && !flags.insecureTcp) {
            throw new KilnError('INVALID_ARGUMENT', `refusing to serve ${host} without TLS: anyone who reaches it would control kiln; use --tlsverify with --tlscert, --tlskey and --tlscacert (or --insecure-tcp if you mean it)`);
          }
          if (tls && (!flags.tlscert || !flags.tlskey || (flags.tlsverify && !flags.tlscacert))) {
            throw new KilnError('INVALID_ARGUMENT', '--tls needs --tlscert and --tlskey; --tlsverify also needs --tlscacert');
          }
          const read = async (file: string): Promise<string> =>
            readFile(file, 'utf8').catch((err: Error) => {
              throw new KilnError('INVALID_ARGUMENT', `cannot read ${file}: ${err.message}`);
            });
          listen = {
            host: (match[1] ?? '').replace(/^\[|\]$/g, ''),
            port: Number(match[2]),
            ...(tls ? { tls: { cert: await read(flags.tlscert ?? ''), key: await read(flags.tlskey ?? ''), ...(flags.tlscacert ? { ca: await read(flags.tlscacert) } : {}), verifyClients: flags.tlsverify === true } } : {}),
          };
          if (!tls) ctx.io.stderr.write(`kiln: WARNING: serving the API on ${host} without TLS: anyone who can reach it controls kiln and, through containers, this machine\n`);
        }
        const engine = await Engine.open(ctx.root());
        // What a kill -9 of kiln left on the host's network (namespaces, CNI endpoints) goes before anything starts.
        await (await import('../../engine/networks.js')).releaseStaleEndpoints(engine);
        // Loaded here: the API server is most of kiln's code, which other commands need not load.
        const { serveApi } = await import('../../api/server.js');
        const api = await serveApi(engine, { listen, build, containers, log: (line) => ctx.io.stderr.write(`${line}\n`) });
        ctx.io.stderr.write(`kiln: serving the Docker Engine API on ${host} (store ${engine.store.root})\n`);
        // The first SIGTERM or SIGINT stops kiln; its handlers are gone then, so a second one ends it at once.
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            resolve();
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
        if (await api.close(STOP_GRACE_MS)) engine.close();
        else ctx.io.stderr.write(`kiln: stopped with requests still at work after ${STOP_GRACE_MS / 1000} s; the store stays consistent, as after a kill\n`);
        // Work no signal reaches (a RUN step's process, a pull, a container's AutoRemove watch) must not keep kiln running.
        process.exit(0);
      })(),
    );
}
