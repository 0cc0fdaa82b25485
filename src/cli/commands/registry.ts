import type { Command } from 'commander';
import { KilnError } from '../../errors.js';
import { login, logout, pullImage, pushImage } from '../../engine/registry.js';
import { parseReference } from '../../reference/reference.js';
import { type CommandContext, withEngine } from '../context.js';
import { collect, print } from '../io.js';
import { progressPrinter } from '../progress.js';

interface RegistryFlags {
  insecureRegistry?: string[];
}

function insecure(flags: RegistryFlags): string[] {
  return [...(flags.insecureRegistry ?? []), ...(process.env.KILN_INSECURE_REGISTRIES ?? '').split(',').filter(Boolean)];
}

const INSECURE_HELP = 'a registry reached over plain HTTP or unverified TLS (loopback ones always are; also $KILN_INSECURE_REGISTRIES)';

export function registerRegistry(parent: Command, ctx: CommandContext): void {
  parent
    .command('pull')
    .description('Download an image from a registry')
    .argument('<NAME[:TAG|@DIGEST]>')
    .option('-q, --quiet', 'suppress verbose output')
    .option('--platform <os/arch[/variant]>', "pull this platform's image from a multi-platform index")
    .option('--max-concurrent-downloads <n>', 'layers downloaded at once', '3')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((name: string, flags: RegistryFlags & { quiet?: boolean; platform?: string; maxConcurrentDownloads: string }) =>
      withEngine(ctx, async (engine) => {
        const concurrency = Number(flags.maxConcurrentDownloads);
        if (!Number.isInteger(concurrency) || concurrency < 1) throw new KilnError('INVALID_ARGUMENT', `invalid --max-concurrent-downloads ${JSON.stringify(flags.maxConcurrentDownloads)}: a positive integer`);
        const events = flags.quiet ? () => undefined : progressPrinter(ctx.io, ctx.io.stdout.isTTY === true);
        const result = await pullImage(engine, name, { events, insecureRegistries: insecure(flags), maxConcurrentDownloads: concurrency, ...(flags.platform !== undefined ? { platform: flags.platform } : {}) });
        print(ctx.io, parseReference(name).digest ? `${result.name.replace(/:[^/:@]+$/, '')}@${result.digest}` : result.name);
      }),
    );
  parent
    .command('push')
    .description('Upload an image to a registry')
    .argument('<NAME[:TAG]>')
    .option('-q, --quiet', 'suppress verbose output')
    .option('--compression <gzip|zstd>', 'compression for layers the store holds uncompressed', 'gzip')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((name: string, flags: RegistryFlags & { quiet?: boolean; compression: string }) =>
      withEngine(ctx, async (engine) => {
        if (flags.compression !== 'gzip' && flags.compression !== 'zstd') throw new KilnError('INVALID_ARGUMENT', `invalid --compression ${JSON.stringify(flags.compression)}: gzip or zstd`);
        const events = flags.quiet ? () => undefined : progressPrinter(ctx.io, ctx.io.stdout.isTTY === true);
        const results = await pushImage(engine, name, { events, compression: flags.compression, insecureRegistries: insecure(flags) });
        if (flags.quiet) for (const result of results) print(ctx.io, `${name.replace(/:[^/:]+$/, '')}:${result.tag}`);
      }),
    );
  parent
    .command('login')
    .description('Log in to a registry')
    .argument('[SERVER]', 'the registry (default: Docker Hub)')
    .option('-u, --username <name>', 'username')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'take the password from stdin')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((server: string | undefined, flags: RegistryFlags & { username?: string; password?: string; passwordStdin?: boolean }) =>
      (async () => {
        let password = flags.password;
        if (flags.passwordStdin) {
          if (password !== undefined) throw new KilnError('INVALID_ARGUMENT', '--password and --password-stdin are mutually exclusive');
          if (!flags.username) throw new KilnError('INVALID_ARGUMENT', 'Must provide --username with --password-stdin');
          const chunks: Buffer[] = [];
          for await (const chunk of ctx.io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
          password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
        } else if (password !== undefined) {
          ctx.io.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
        }
        if (!flags.username || password === undefined) throw new KilnError('INVALID_ARGUMENT', 'kiln login needs -u USER and --password-stdin (it does not prompt)');
        await login(server ?? 'docker.io', flags.username, password, { insecureRegistries: insecure(flags) });
        print(ctx.io, 'Login Succeeded');
      })(),
    );
  parent
    .command('logout')
    .description('Log out from a registry')
    .argument('[SERVER]', 'the registry (default: Docker Hub)')
    .action((server: string | undefined) =>
      (async () => {
        const registry = server ?? 'docker.io';
        print(ctx.io, (await logout(registry)) ? `Removing login credentials for ${registry}` : `Not logged in to ${registry}`);
      })(),
    );
}
