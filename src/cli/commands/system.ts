import type { Command } from 'commander';
import { pruneContainers } from '../../engine/containers.js';
import { parseFilterFlags } from '../../engine/filters.js';
import { pruneNetworks } from '../../engine/networks.js';
import { type CommandContext, withEngine } from '../context.js';
import { renderRows, renderTemplate } from '../format/table.js';
import { humanSize, humanSizeWithPrecision, rfc3339NanoLocal, sinceNow, truncateDisplay } from '../format/units.js';
import { systemDiskUsage } from '../../engine/df.js';
import { pruneVolumes } from '../../engine/volumes.js';
import { collect, confirm, print, printRows } from '../io.js';
import { printPruneReport } from './image.js';
import { imageRows } from './images.js';

const DF_HEADERS = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };
const DF_CONTAINER_HEADERS = { ContainerID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', LocalVolumes: 'LOCAL VOLUMES', Size: 'SIZE', RunningFor: 'CREATED', Status: 'STATUS', Names: 'NAMES' };
const DF_VOLUME_HEADERS = { Name: 'VOLUME NAME', Links: 'LINKS', Size: 'SIZE' };
const DF_IMAGE_HEADERS = { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', Size: 'SIZE', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE', Containers: 'CONTAINERS' };

/** Docker's df sizes use four significant digits (units.HumanSize), unlike `images` (three). */
function dfSize(bytes: number): string {
  return humanSizeWithPrecision(bytes, 4);
}

function reclaimable(reclaim: number, total: number): string {
  return total > 0 ? `${dfSize(reclaim)} (${Math.trunc((100 * reclaim) / total)}%)` : dfSize(reclaim);
}

/**
 * `kiln events` (`system events`): what happened to containers, images, volumes and networks, from every
 * kiln process on the store, as `docker events` prints it; it follows until ctrl-c, or ends at --until.
 */
export function registerEvents(parent: Command, ctx: CommandContext): Command {
  return parent
    .command('events')
    .description('Get real time events from kiln')
    .option('--since <time>', 'show all events created since timestamp')
    .option('--until <time>', 'stream events until this timestamp')
    .option('-f, --filter <filter>', 'filter output based on conditions provided', collect)
    .option('--format <format>', 'format the output using the given Go template')
    .action((options: { since?: string; until?: string; filter?: string[]; format?: string }) =>
      withEngine(ctx, async (engine) => {
        const { EVENT_FILTERS, followEvents } = await import('../../engine/events.js');
        const stop = new AbortController();
        const interrupted = (): void => stop.abort();
        process.once('SIGINT', interrupted);
        process.once('SIGTERM', interrupted);
        try {
          await followEvents(
            engine,
            (event) => {
              if (options.format !== undefined) return print(ctx.io, renderTemplate(options.format, event));
              const attributes = Object.entries(event.Actor.Attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
              const when = rfc3339NanoLocal(event.time * 1000, event.timeNano % 1_000_000_000);
              print(ctx.io, `${when} ${event.Type} ${event.Action} ${event.Actor.ID}${attributes.length > 0 ? ` (${attributes.map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}`);
            },
            { filters: parseFilterFlags(options.filter ?? [], EVENT_FILTERS), signal: stop.signal, ...(options.since !== undefined ? { since: options.since } : {}), ...(options.until !== undefined ? { until: options.until } : {}) },
          );
        } finally {
          process.off('SIGINT', interrupted);
          process.off('SIGTERM', interrupted);
        }
      }),
    );
}

export function registerSystem(program: Command, ctx: CommandContext): Command {
  const system = program.command('system').description('Manage kiln');
  registerEvents(system, ctx);
  system
    .command('df')
    .description('Show kiln disk usage')
    .option('-v, --verbose', 'show detailed information on space usage')
    .option('--format <format>', 'format output using a custom template')
    .action((options: { verbose?: boolean; format?: string }) =>
      withEngine(ctx, async (engine) => {
        const { images: usage, containers, volumes } = await systemDiskUsage(engine);
        if (options.verbose) {
          const rows = usage.Images.flatMap((i) =>
            imageRows(i.summary, { digests: false, noTrunc: false }).map((r) => ({ ...r, CreatedSince: i.summary.Created ? sinceNow(i.summary.Created * 1000) : 'N/A', Size: humanSize(i.summary.Size), SharedSize: humanSize(i.sharedSize), UniqueSize: humanSize(i.uniqueSize), Containers: String(i.summary.Containers) })),
          );
          print(ctx.io, 'Images space usage:\n');
          printRows(ctx.io, renderRows(options.format ?? 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}', DF_IMAGE_HEADERS, rows));
          print(ctx.io, '\nContainers space usage:\n');
          const containerRows = containers.map((c) => ({
            ContainerID: c.Id.slice(0, 12),
            Image: c.Image,
            Command: `"${truncateDisplay(c.Command, 20)}"`,
            LocalVolumes: String(c.Mounts.filter((m) => m.Type === 'volume').length),
            Size: humanSize(c.SizeRw ?? 0),
            RunningFor: sinceNow(c.Created * 1000),
            Status: c.Status,
            Names: c.Names.map((n) => n.replace(/^\//, '')).join(','),
          }));
          printRows(ctx.io, renderRows('table {{.ContainerID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}', DF_CONTAINER_HEADERS, containerRows));
          print(ctx.io, '\nLocal Volumes space usage:\n');
          const volumeRows = volumes.map((v) => ({ Name: v.Name, Links: String(v.UsageData?.RefCount ?? 0), Size: humanSize(v.UsageData?.Size ?? 0) }));
          printRows(ctx.io, renderRows('table {{.Name}}\t{{.Links}}\t{{.Size}}', DF_VOLUME_HEADERS, volumeRows));
          print(ctx.io, '\nBuild cache usage: 0B\n');
          print(ctx.io, 'CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED');
          return;
        }
        const sum = (sizes: readonly number[]): number => sizes.reduce((a, b) => a + b, 0);
        const containersSize = sum(containers.map((c) => c.SizeRw ?? 0));
        const volumesSize = sum(volumes.map((v) => v.UsageData?.Size ?? 0));
        const unusedVolumes = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) === 0);
        const rows = [
          { Type: 'Images', TotalCount: String(usage.Images.length), Active: String(usage.ActiveImages), Size: dfSize(usage.LayersSize), Reclaimable: reclaimable(usage.ReclaimableImagesSize, usage.LayersSize) },
          { Type: 'Containers', TotalCount: String(containers.length), Active: String(containers.filter((c) => c.State === 'running').length), Size: dfSize(containersSize), Reclaimable: reclaimable(sum(containers.filter((c) => c.State !== 'running').map((c) => c.SizeRw ?? 0)), containersSize) },
          { Type: 'Local Volumes', TotalCount: String(volumes.length), Active: String(volumes.length - unusedVolumes.length), Size: dfSize(volumesSize), Reclaimable: reclaimable(sum(unusedVolumes.map((v) => v.UsageData?.Size ?? 0)), volumesSize) },
          { Type: 'Build Cache', TotalCount: '0', Active: '0', Size: dfSize(0), Reclaimable: reclaimable(0, 0) },
        ];
        printRows(ctx.io, renderRows(options.format ?? 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}', DF_HEADERS, rows));
      }),
    );
  system
    .command('prune')
    .description('Remove unused data')
    .option('-a, --all', 'remove all unused images not just dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--volumes', 'prune anonymous volumes')
    .option('--filter <filter>', "provide filter values (e.g. 'label=<key>=<value>')", collect)
    .action((options: { all?: boolean; force?: boolean; volumes?: boolean; filter?: string[] }) =>
      withEngine(ctx, async (engine) => {
        const filters = parseFilterFlags(options.filter ?? [], ['until', 'label', 'label!']);
        const images = options.all ? 'all images without at least one container associated to them' : 'all dangling images';
        const volumes = options.volumes ? '  - all anonymous volumes not used by at least one container\n' : '';
        const warning = `WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n${volumes}  - ${images}\n  - unused build cache\n`;
        if (!options.force && !(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return;
        const { pruneBuildLeftovers } = await import('../../engine/build.js'); // the builder loads only when needed
        await pruneBuildLeftovers(engine);
        const removed = await pruneContainers(engine);
        if (removed.length > 0) print(ctx.io, `Deleted Containers:\n${removed.join('\n')}\n\n`);
        const networks = await pruneNetworks(engine);
        if (networks.length > 0) print(ctx.io, `Deleted Networks:\n${networks.join('\n')}\n\n`);
        // Volumes after containers, as Docker: those the removed containers used are unused now.
        const volumeReport = options.volumes ? await pruneVolumes(engine, { filters: new Map([...filters].filter(([key]) => key.startsWith('label'))), all: false }) : { VolumesDeleted: [], SpaceReclaimed: 0 };
        if (volumeReport.VolumesDeleted.length > 0) print(ctx.io, `Deleted Volumes:\n${volumeReport.VolumesDeleted.join('\n')}\n\n`);
        const imageReport = await engine.pruneImages({ all: options.all ?? false, filters });
        printPruneReport(ctx, { ...imageReport, SpaceReclaimed: imageReport.SpaceReclaimed + volumeReport.SpaceReclaimed });
      }),
    );
  system
    .command('check')
    .description("Verify every blob's digest and every database reference; report damage and left-overs")
    .action(() =>
      withEngine(ctx, async (engine) => {
        const report = await engine.check();
        for (const problem of report.problems) print(ctx.io, `problem: ${problem}`);
        for (const orphan of report.orphans) print(ctx.io, `reclaimable: ${orphan}`);
        const verdict = report.problems.length === 0 ? 'clean' : `${report.problems.length} problem(s) found`;
        print(ctx.io, `${report.blobs} blobs verified, ${report.images} images, ${report.names} names: ${verdict}`);
        if (report.problems.length > 0) ctx.exitCode = 1;
      }),
    );
  return system;
}
