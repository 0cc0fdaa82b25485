import type { Command } from 'commander';
import { pipeline } from 'node:stream/promises';
import { commitContainer, containerChanges, containerLogs, exportContainer, findContainer, isRunning, removeContainer } from '../../engine/containers.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { renderRows } from '../format/table.js';
import { goTimeString, humanDuration, sinceNow, truncateDisplay } from '../format/units.js';
import { collect, print, printRows, writeFileAtomically } from '../io.js';

const PS_HEADERS = { ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', RunningFor: 'CREATED', CreatedAt: 'CREATED AT', Status: 'STATUS', Ports: 'PORTS', Names: 'NAMES' };

export function registerContainers(program: Command, ctx: CommandContext): void {
  program
    .command('ps')
    .description('List containers (kiln runs them in the foreground, so they are listed once exited with -a)')
    .option('-a, --all', 'show all containers (default shows just running)')
    .option('-q, --quiet', 'only display container IDs')
    .option('--no-trunc', "don't truncate output")
    .option('--format <format>', 'format output using a custom template')
    .action((options: { all?: boolean; quiet?: boolean; trunc: boolean; format?: string }) =>
      withEngine(ctx, (engine) => {
        const rows = engine.store.db
          .containers()
          .filter((c) => options.all || isRunning(c))
          .map((c) => {
            const command = c.command.join(' ');
            return {
              ID: options.trunc ? c.id.slice(0, 12) : c.id,
              Image: c.imageName,
              Command: `"${options.trunc ? truncateDisplay(command, 20) : command}"`,
              RunningFor: sinceNow(c.createdAt),
              CreatedAt: goTimeString(c.createdAt),
              Status: isRunning(c) ? `Up ${humanDuration(Date.now() - c.createdAt)}` : c.exitCode === null ? 'Created' : `Exited (${c.exitCode}) ${humanDuration(Date.now() - (c.finishedAt ?? c.createdAt))} ago`,
              Ports: '',
              Names: c.name,
            };
          });
        const format = options.quiet ? '{{.ID}}' : (options.format ?? 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}');
        printRows(ctx.io, renderRows(format, PS_HEADERS, rows));
      }),
    );
  program
    .command('rm')
    .description('Remove one or more containers')
    .argument('<CONTAINER...>')
    .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
    .action((names: string[], options: { force?: boolean }) =>
      withEngine(ctx, async (engine) => {
        for (const name of names) {
          try {
            print(ctx.io, await removeContainer(engine, name, options.force ?? false));
          } catch (err) {
            if (!(err instanceof KilnError)) throw err;
            ctx.io.stderr.write(`Error: ${err.message}\n`);
            ctx.exitCode = 1;
          }
        }
      }),
    );
  program
    .command('diff')
    .description("Inspect changes to files or directories on a container's filesystem")
    .argument('<CONTAINER>')
    .action((name: string) =>
      withEngine(ctx, async (engine) => {
        for (const change of await containerChanges(engine, name)) print(ctx.io, `${change.kind} ${change.path}`);
      }),
    );
  program
    .command('logs')
    .description('Fetch the logs of a container')
    .argument('<CONTAINER>')
    .action((name: string) =>
      withEngine(ctx, async (engine) => {
        const { stdout, stderr } = await containerLogs(engine, name);
        ctx.io.stdout.write(stdout);
        ctx.io.stderr.write(stderr);
      }),
    );
  program
    .command('export')
    .description("Export a container's filesystem as a tar archive (to STDOUT by default)")
    .argument('<CONTAINER>')
    .option('-o, --output <file>', 'write to a file, instead of STDOUT')
    .action((name: string, options: { output?: string }) =>
      withEngine(ctx, async (engine) => {
        if (!options.output && ctx.io.stdout.isTTY) throw new KilnError('INVALID_ARGUMENT', 'cowardly refusing to save to a terminal. Use the -o flag or redirect');
        const output = options.output;
        await exportContainer(engine, name, async (tar) => {
          if (output) await writeFileAtomically(output, tar);
          else await pipeline(tar, ctx.io.stdout, { end: false });
        });
      }),
    );
  program
    .command('commit')
    .description("Create a new image from a container's changes")
    .argument('<CONTAINER>')
    .argument('[REPOSITORY[:TAG]]')
    .option('-a, --author <author>', 'author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    .option('-c, --change <instruction>', 'apply Dockerfile instruction to the created image', collect)
    .option('-m, --message <message>', 'commit message')
    .action((name: string, reference: string | undefined, options: { author?: string; change?: string[]; message?: string }) =>
      withEngine(ctx, async (engine) => {
        findContainer(engine, name);
        print(ctx.io, await commitContainer(engine, name, { reference, changes: options.change ?? [], message: options.message, author: options.author }));
      }),
    );
}
