import type { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { serveApi } from '../../api/server.js';
import { KilnError } from '../../errors.js';
import { Engine } from '../../engine/engine.js';
import type { CommandContext } from '../context.js';
import { addRuntimeFlags, checkRuntimeFlags, type RuntimeFlags } from '../runtime-flags.js';

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
  addRuntimeFlags(parent.command('serve'), 'containers and RUN steps')
    .description("Serve Docker's Engine API, so the docker CLI and Docker SDKs drive kiln")
    .option('-H, --host <unix:///path>', 'where to listen (default unix:///run/kiln.sock as root)')
    .option('--group <group>', 'group that owns the socket (mode 0660)')
    .action((flags: RuntimeFlags & { host?: string; group?: string }) =>
      (async () => {
        const host = flags.host ?? `unix://${defaultSocket()}`;
        if (!host.startsWith('unix://')) {
          throw new KilnError('UNSUPPORTED', `${host}: kiln serves only on a unix socket for now (TCP would need mutual TLS, which is not there yet)`);
        }
        const runtime = checkRuntimeFlags(flags);
        const engine = await Engine.open(ctx.root());
        const socket = host.slice('unix://'.length);
        const server = await serveApi(engine, {
          socket,
          ...(flags.group !== undefined ? { group: groupId(flags.group) } : {}),
          build: runtime,
          log: (line) => ctx.io.stderr.write(`${line}\n`),
        });
        ctx.io.stderr.write(`kiln: serving the Docker Engine API on ${host} (store ${engine.store.root})\n`);
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            server.close(() => resolve());
            server.closeAllConnections();
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
        engine.close();
      })(),
    );
}
