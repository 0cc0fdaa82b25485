import type { Command } from 'commander';
import { KilnError } from '../../errors.js';
import { localTags, login, logout, pullAllTags, pullImage, pushImage, searchImages } from '../../engine/registry.js';
import { parseFilterFlags } from '../../engine/filters.js';
import { renderRows } from '../format/table.js';
import { truncateDisplay } from '../format/units.js';
import { parseReference } from '../../reference/reference.js';
import { type CommandContext, withEngine } from '../context.js';
import { INSECURE_HELP, type RegistryFlags, collect, insecure, print, printRows } from '../io.js';
import { progressPrinter } from '../progress.js';

export function registerRegistry(parent: Command, ctx: CommandContext): void {
  parent
    .command('pull')
    .description('Download an image from a registry')
    .argument('<NAME[:TAG|@DIGEST]>')
    .option('-a, --all-tags', 'download all tagged images in the repository')
    .option('-q, --quiet', 'suppress verbose output')
    .option('--platform <os/arch[/variant]>', "pull this platform's image from a multi-platform index")
    .option('--max-concurrent-downloads <n>', 'layers downloaded at once', '3')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((name: string, flags: RegistryFlags & { allTags?: boolean; quiet?: boolean; platform?: string; maxConcurrentDownloads: string }) =>
      withEngine(ctx, async (engine) => {
        const concurrency = Number(flags.maxConcurrentDownloads);
        if (!Number.isInteger(concurrency) || concurrency < 1) throw new KilnError('INVALID_ARGUMENT', `invalid --max-concurrent-downloads ${JSON.stringify(flags.maxConcurrentDownloads)}: a positive integer`);
        const events = flags.quiet ? () => undefined : progressPrinter(ctx.io.stdout);
        const options = { events, insecureRegistries: insecure(flags), maxConcurrentDownloads: concurrency, ...(flags.platform !== undefined ? { platform: flags.platform } : {}) };
        if (flags.allTags) {
          print(ctx.io, await pullAllTags(engine, name, options));
          return;
        }
        const result = await pullImage(engine, name, options);
        print(ctx.io, parseReference(name).digest ? `${result.name.replace(/:[^/:@]+$/, '')}@${result.digest}` : result.name);
      }),
    );
  parent
    .command('push')
    .description('Upload an image to a registry')
    .argument('<NAME[:TAG]>')
    .option('-a, --all-tags', 'push all tags of the repository')
    .option('-q, --quiet', 'suppress verbose output')
    .option('--compression <gzip|zstd>', 'compression for layers the store holds uncompressed', 'gzip')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((name: string, flags: RegistryFlags & { allTags?: boolean; quiet?: boolean; compression: string }) =>
      withEngine(ctx, async (engine) => {
        if (flags.compression !== 'gzip' && flags.compression !== 'zstd') throw new KilnError('INVALID_ARGUMENT', `invalid --compression ${JSON.stringify(flags.compression)}: gzip or zstd`);
        const events = flags.quiet ? () => undefined : progressPrinter(ctx.io.stdout);
        const names = flags.allTags ? localTags(engine, name).map((tag) => `${name}:${tag}`) : [name];
        for (const each of names) {
          const results = await pushImage(engine, each, { events, compression: flags.compression, insecureRegistries: insecure(flags) });
          if (flags.quiet) for (const result of results) print(ctx.io, `${each.replace(/:[^/:]+$/, '')}:${result.tag}`);
        }
      }),
    );
  parent
    .command('search')
    .description('Search for images: Docker Hub\'s search, or a registry\'s catalog')
    .argument('<TERM>', 'a search term; REGISTRY/TERM searches that registry')
    .option('--limit <n>', 'max number of search results', '25')
    .option('-f, --filter <filter>', 'stars=N, is-official=true|false, is-automated=true|false', collect)
    .option('--format <format>', 'Go template, or table')
    .option('--no-trunc', "don't truncate output")
    .option('--registry <host>', 'the registry to search (kiln\'s own; default docker.io or the one TERM names)')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((term: string, flags: RegistryFlags & { limit: string; filter?: string[]; format?: string; trunc: boolean; registry?: string }) =>
      (async () => {
        const results = await searchImages(term, {
          limit: Number(flags.limit),
          insecureRegistries: insecure(flags),
          ...(flags.registry !== undefined ? { registry: flags.registry } : {}),
          filters: parseFilterFlags(flags.filter ?? [], ['stars', 'is-official', 'is-automated']),
        });
        const rows = results.map((r) => ({
          Name: r.name,
          Description: flags.trunc ? truncateDisplay(r.description.replace(/\s+/g, ' '), 45) : r.description,
          StarCount: String(r.star_count),
          IsOfficial: r.is_official ? '[OK]' : '',
          IsAutomated: r.is_automated ? '[OK]' : '',
        }));
        const columns = '{{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}';
        const format = flags.format ?? `table ${columns}`;
        printRows(ctx.io, renderRows(format === 'table' ? `table ${columns}` : format, { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' }, rows));
      })(),
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
