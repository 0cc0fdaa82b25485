import type { Command } from 'commander';
import { KilnError } from '../../errors.js';
import { parseFilterFlags } from '../../engine/filters.js';
import type { DeleteEvent, PruneReport } from '../../engine/types.js';
import { type CommandContext, withEngine } from '../context.js';
import { goJson, sortKeys } from '../format/gojson.js';
import { renderRows, renderTemplate } from '../format/table.js';
import { goTimeString, humanSize, rfc3339Local, sinceNow, truncateDisplay } from '../format/units.js';
import { collect, confirm, parseBool, print, printRows } from '../io.js';
import { shortImageId } from './images.js';

function deleteLine(event: DeleteEvent): string {
  return 'Untagged' in event ? `Untagged: ${event.Untagged}` : `Deleted: ${event.Deleted}`;
}

export function registerTag(parent: Command, ctx: CommandContext, name = 'tag'): Command {
  return parent
    .command(name)
    .description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE')
    .argument('<SOURCE_IMAGE[:TAG]>')
    .argument('<TARGET_IMAGE[:TAG]>')
    .action((source: string, target: string) => withEngine(ctx, (engine) => engine.tag(source, target)));
}

export function registerRmi(parent: Command, ctx: CommandContext, name = 'rmi'): Command {
  return parent
    .command(name)
    .description('Remove one or more images')
    .argument('<IMAGE...>')
    .option('-f, --force', 'force removal of the image')
    .option('--no-prune', 'do not delete untagged parents')
    .action((images: string[], options: { force?: boolean; prune: boolean }) =>
      withEngine(ctx, async (engine) => {
        const { events, errors } = await engine.removeImages(images, { force: options.force ?? false, noPrune: !options.prune });
        for (const event of events) print(ctx.io, deleteLine(event));
        for (const error of errors) ctx.io.stderr.write(`Error: ${error.message}\n`);
        if (errors.length > 0) ctx.exitCode = 1;
      }),
    );
}

const HISTORY_HEADERS = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };

export function registerHistory(parent: Command, ctx: CommandContext, name = 'history'): Command {
  return parent
    .command(name)
    .description('Show the history of an image')
    .argument('<IMAGE>')
    .option('-H, --human [bool]', 'print sizes and dates in human readable format', parseBool, true)
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .option('--format <format>', 'format output using a custom template')
    .action((image: string, options: { human: boolean; trunc: boolean; quiet?: boolean; format?: string }) =>
      withEngine(ctx, (engine) => {
        const rows = engine.history(image).map((h) => {
          const createdBy = h.CreatedBy.replaceAll('\t', ' ');
          return {
            ID: h.Id === '<missing>' ? h.Id : shortImageId(h.Id, !options.trunc),
            CreatedSince: options.human ? (h.Created ? sinceNow(h.Created * 1000) : 'N/A') : rfc3339Local(h.Created * 1000),
            CreatedAt: goTimeString(h.Created * 1000),
            CreatedBy: options.trunc ? truncateDisplay(createdBy, 45) : createdBy,
            Size: options.human ? humanSize(h.Size) : String(h.Size),
            Comment: h.Comment,
          };
        });
        const format = options.quiet ? '{{.ID}}' : (options.format ?? 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}');
        printRows(ctx.io, renderRows(format, HISTORY_HEADERS, rows));
      }),
    );
}

export function registerInspect(parent: Command, ctx: CommandContext, name = 'inspect'): Command {
  // Under `image` and `container` (docker's management commands), only that kind of object.
  const only = parent.name() === 'image' || parent.name() === 'container' ? parent.name() : undefined;
  return parent
    .command(name)
    .description(only ? `Display detailed information on one or more ${only}s` : 'Return low-level information on containers and images')
    .argument(only ? `<${only.toUpperCase()}...>` : '<NAME|ID...>')
    .option('-f, --format <format>', 'format output using a custom template')
    .option('--type <type>', 'only inspect objects of the given type (container or image)')
    .action((names: string[], options: { format?: string; type?: string }) =>
      withEngine(ctx, async (engine) => {
        const type = only ?? options.type;
        if (type !== undefined && type !== 'image' && type !== 'container') throw new KilnError('INVALID_ARGUMENT', `"${type}" is not a valid value for --type (kiln has containers and images)`);
        const found: unknown[] = [];
        const errors: string[] = [];
        // The container verbs (the runtime, networks, volumes) load only when there is a container to inspect.
        const containers = type !== 'image' && engine.store.db.containers().length > 0 ? await import('../../engine/containers/inspect.js') : undefined;
        for (const n of names) {
          // As docker: a container before an image of the same name, unless --type says which.
          const item = (containers ? await ifFound(() => containers.inspectContainer(engine, n)) : undefined) ?? (type !== 'container' ? await ifFound(() => engine.inspect(n)) : undefined);
          if (item !== undefined) found.push(item);
          else errors.push(`Error: No such ${type ?? 'object'}: ${n}`);
        }
        // docker's CLI runs inspect templates over the decoded JSON, so maps come out with sorted keys.
        if (options.format) for (const item of found) print(ctx.io, renderTemplate(options.format, sortKeys(item)));
        else print(ctx.io, goJson(found, '    '));
        for (const e of errors) ctx.io.stderr.write(`${e}\n`);
        if (errors.length > 0) ctx.exitCode = 1;
      }),
    );
}

/** What `look` finds, or undefined when it finds nothing (NOT_FOUND). */
async function ifFound<T>(look: () => T | Promise<T>): Promise<T | undefined> {
  try {
    return await look();
  } catch (err) {
    if (err instanceof KilnError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

export function registerImagePrune(parent: Command, ctx: CommandContext): Command {
  return parent
    .command('prune')
    .description('Remove unused images')
    .option('-a, --all', 'remove all unused images, not just dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', "provide filter values (e.g. 'until=<timestamp>', 'label=key=value')", collect)
    .action((options: { all?: boolean; force?: boolean; filter?: string[] }) =>
      withEngine(ctx, async (engine) => {
        const filters = parseFilterFlags(options.filter ?? [], ['dangling', 'until', 'label', 'label!']);
        const warning = options.all ? 'WARNING! This will remove all images without at least one container associated to them.' : 'WARNING! This will remove all dangling images.';
        if (!options.force && !(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return;
        printPruneReport(ctx, await engine.pruneImages({ all: options.all ?? false, filters }));
      }),
    );
}

/** Docker's prune report: the deleted images, a blank line, and the space reclaimed. */
export function printPruneReport(ctx: CommandContext, report: PruneReport): void {
  if (report.ImagesDeleted.length > 0) {
    print(ctx.io, 'Deleted Images:');
    for (const event of report.ImagesDeleted) print(ctx.io, 'Untagged' in event ? `untagged: ${event.Untagged}` : `deleted: ${event.Deleted}`);
    print(ctx.io, '');
  }
  print(ctx.io, `Total reclaimed space: ${humanSize(report.SpaceReclaimed)}`);
}
