/**
 * `kiln network …`, `kiln volume …` and `kiln port`: Docker's verbs over the engine's networks and
 * volumes, with the docker CLI's output.
 */
import type { Command } from 'commander';
import { inspectContainer } from '../../engine/containers.js';
import { parseFilterFlags } from '../../engine/filters.js';
import { NETWORK_LIST_FILTERS, NETWORK_PRUNE_FILTERS, connectNetwork, createNetwork, disconnectNetwork, inspectNetwork, listNetworks, pruneNetworks, removeNetwork } from '../../engine/networks.js';
import { VOLUME_LIST_FILTERS, VOLUME_PRUNE_FILTERS, createVolume, inspectVolume, listVolumes, pruneVolumes, removeVolume } from '../../engine/volumes.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { goJson, sortKeys } from '../format/gojson.js';
import { renderRows, renderTemplate } from '../format/table.js';
import { humanSize } from '../format/units.js';
import { collect, confirm, print, printRows } from '../io.js';

const NETWORK_HEADERS = { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT' };
const VOLUME_HEADERS = { Driver: 'DRIVER', Name: 'VOLUME NAME', Mountpoint: 'MOUNTPOINT', Scope: 'SCOPE', Labels: 'LABELS' };

/** `--label k=v` and `--opt k=v` flags as a map. */
function keyValues(flags: readonly string[]): Record<string, string> {
  return Object.fromEntries(flags.map((flag) => [flag.split('=')[0] ?? '', flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : '']));
}

function labelsText(labels: Readonly<Record<string, string>> | null): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Prints each inspected object (as a JSON array, or through -f's template); NOT_FOUND ones are reported and make the exit code 1. */
async function printInspected(ctx: CommandContext, names: readonly string[], format: string | undefined, look: (name: string) => unknown): Promise<void> {
  const found: unknown[] = [];
  for (const name of names) {
    try {
      found.push(await look(name));
    } catch (err) {
      if (!(err instanceof KilnError) || err.code !== 'NOT_FOUND') throw err;
      ctx.io.stderr.write(`Error: ${err.message}\n`);
      ctx.exitCode = 1;
    }
  }
  if (format) for (const item of found) print(ctx.io, renderTemplate(format, sortKeys(item)));
  else print(ctx.io, goJson(found, '    '));
}

/** Removes each named object, printing its name, or the error and on to the next (exit code 1), as docker's rm verbs do. */
async function removeEach(ctx: CommandContext, names: readonly string[], remove: (name: string) => Promise<void>): Promise<void> {
  for (const name of names) {
    try {
      await remove(name);
      print(ctx.io, name);
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      ctx.io.stderr.write(`Error: ${err.message}\n`);
      ctx.exitCode = 1;
    }
  }
}

export function registerNetwork(program: Command, ctx: CommandContext): Command {
  const network = program.command('network').description('Manage networks');
  network
    .command('create')
    .description('Create a network (a bridge with its own subnet; its containers reach each other by name)')
    .argument('<NETWORK>')
    .option('-d, --driver <driver>', 'driver to manage the network (bridge)', 'bridge')
    .option('--subnet <cidr>', 'subnet in CIDR format (default: a free one, as 172.18.0.0/16)')
    .option('--gateway <ip>', "the subnet's gateway (default: its first address)")
    .option('--internal', 'restrict external access to the network')
    .option('--label <label>', 'set metadata on a network', collect)
    .option('-o, --opt <key=value>', 'set driver specific options (com.docker.network.bridge.name)', collect)
    .action((name: string, options: { driver: string; subnet?: string; gateway?: string; internal?: boolean; label?: string[]; opt?: string[] }) =>
      withEngine(ctx, async (engine) => {
        const id = await createNetwork(engine, { name, driver: options.driver, internal: options.internal ?? false, labels: keyValues(options.label ?? []), options: keyValues(options.opt ?? []), ...(options.subnet ? { subnet: options.subnet } : {}), ...(options.gateway ? { gateway: options.gateway } : {}) });
        print(ctx.io, id);
      }),
    );
  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('-f, --filter <filter>', "provide filter values (e.g. 'driver=bridge')", collect)
    .option('--format <format>', 'format output using a custom template')
    .option('--no-trunc', 'do not truncate the output')
    .option('-q, --quiet', 'only display network IDs')
    .action((options: { filter?: string[]; format?: string; trunc: boolean; quiet?: boolean }) =>
      withEngine(ctx, async (engine) => {
        const networks = await listNetworks(engine, parseFilterFlags(options.filter ?? [], NETWORK_LIST_FILTERS));
        const rows = networks.map((n) => ({ ID: options.trunc ? n.Id.slice(0, 12) : n.Id, Name: n.Name, Driver: n.Driver, Scope: n.Scope, IPv6: String(n.EnableIPv6), Internal: String(n.Internal), Labels: labelsText(n.Labels), CreatedAt: n.Created }));
        const format = options.quiet ? '{{.ID}}' : (options.format ?? 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}');
        printRows(ctx.io, renderRows(format, NETWORK_HEADERS, rows));
      }),
    );
  network
    .command('inspect')
    .description('Display detailed information on one or more networks')
    .argument('<NETWORK...>')
    .option('-f, --format <format>', 'format output using a custom template')
    .action((names: string[], options: { format?: string }) => withEngine(ctx, (engine) => printInspected(ctx, names, options.format, (name) => inspectNetwork(engine, name))));
  network
    .command('rm')
    .alias('remove')
    .description('Remove one or more networks')
    .argument('<NETWORK...>')
    .action((names: string[]) => withEngine(ctx, (engine) => removeEach(ctx, names, (name) => removeNetwork(engine, name))));
  network
    .command('prune')
    .description('Remove all unused networks')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', "provide filter values (e.g. 'until=<timestamp>')", collect)
    .action((options: { force?: boolean; filter?: string[] }) =>
      withEngine(ctx, async (engine) => {
        const filters = parseFilterFlags(options.filter ?? [], NETWORK_PRUNE_FILTERS);
        if (!options.force && !(await confirm(ctx.io, 'WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?'))) return;
        const removed = await pruneNetworks(engine, filters);
        if (removed.length > 0) print(ctx.io, `Deleted Networks:\n${removed.join('\n')}\n`);
      }),
    );
  network
    .command('connect')
    .description('Connect a container to a network')
    .argument('<NETWORK>')
    .argument('<CONTAINER>')
    .option('--alias <alias>', 'add network-scoped alias for the container', collect)
    .action((name: string, container: string, options: { alias?: string[] }) => withEngine(ctx, (engine) => connectNetwork(engine, name, container, options.alias ?? [])));
  network
    .command('disconnect')
    .description('Disconnect a container from a network')
    .argument('<NETWORK>')
    .argument('<CONTAINER>')
    .option('-f, --force', 'force the container to disconnect from a network')
    .action((name: string, container: string) => withEngine(ctx, (engine) => disconnectNetwork(engine, name, container)));
  return network;
}

export function registerVolume(program: Command, ctx: CommandContext): Command {
  const volume = program.command('volume').description('Manage volumes');
  volume
    .command('create')
    .description('Create a volume')
    .argument('[VOLUME]')
    .option('-d, --driver <driver>', 'specify volume driver name', 'local')
    .option('--label <label>', 'set metadata for a volume', collect)
    .option('-o, --opt <key=value>', 'set driver specific options', collect)
    .action((name: string | undefined, options: { driver: string; label?: string[]; opt?: string[] }) =>
      withEngine(ctx, (engine) => {
        const created = createVolume(engine, { ...(name ? { name } : {}), driver: options.driver, labels: options.label ? keyValues(options.label) : null, options: options.opt ? keyValues(options.opt) : null });
        print(ctx.io, created.Name);
      }),
    );
  volume
    .command('ls')
    .alias('list')
    .description('List volumes')
    .option('-f, --filter <filter>', "provide filter values (e.g. 'dangling=true')", collect)
    .option('--format <format>', 'format output using a custom template')
    .option('-q, --quiet', 'only display volume names')
    .action((options: { filter?: string[]; format?: string; quiet?: boolean }) =>
      withEngine(ctx, (engine) => {
        const rows = listVolumes(engine, parseFilterFlags(options.filter ?? [], VOLUME_LIST_FILTERS)).map((v) => ({ Driver: v.Driver, Name: v.Name, Mountpoint: v.Mountpoint, Scope: v.Scope, Labels: labelsText(v.Labels) }));
        printRows(ctx.io, renderRows(options.quiet ? '{{.Name}}' : (options.format ?? 'table {{.Driver}}\t{{.Name}}'), VOLUME_HEADERS, rows));
      }),
    );
  volume
    .command('inspect')
    .description('Display detailed information on one or more volumes')
    .argument('<VOLUME...>')
    .option('-f, --format <format>', 'format output using a custom template')
    .action((names: string[], options: { format?: string }) => withEngine(ctx, (engine) => printInspected(ctx, names, options.format, (name) => inspectVolume(engine, name))));
  volume
    .command('rm')
    .alias('remove')
    .description('Remove one or more volumes')
    .argument('<VOLUME...>')
    .option('-f, --force', 'force the removal of one or more volumes')
    .action((names: string[], options: { force?: boolean }) => withEngine(ctx, (engine) => removeEach(ctx, names, (name) => removeVolume(engine, name, options.force ?? false))));
  volume
    .command('prune')
    .description('Remove unused local volumes')
    .option('-a, --all', 'remove all unused volumes, not just anonymous ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', "provide filter values (e.g. 'label=<label>')", collect)
    .action((options: { all?: boolean; force?: boolean; filter?: string[] }) =>
      withEngine(ctx, async (engine) => {
        const filters = parseFilterFlags(options.filter ?? [], VOLUME_PRUNE_FILTERS);
        const what = options.all ? 'all local volumes' : 'anonymous local volumes';
        if (!options.force && !(await confirm(ctx.io, `WARNING! This will remove ${what} not used by at least one container.\nAre you sure you want to continue?`))) return;
        const report = await pruneVolumes(engine, { filters, all: options.all ?? false });
        if (report.VolumesDeleted.length > 0) print(ctx.io, `Deleted Volumes:\n${report.VolumesDeleted.join('\n')}\n`);
        print(ctx.io, `Total reclaimed space: ${humanSize(report.SpaceReclaimed)}`);
      }),
    );
  return volume;
}

/** `kiln port CONTAINER [PRIVATE_PORT[/PROTO]]`: where its ports are published on the host. */
export function registerPort(program: Command, ctx: CommandContext): Command {
  return program
    .command('port')
    .description('List port mappings or a specific mapping for the container')
    .argument('<CONTAINER>')
    .argument('[PRIVATE_PORT[/PROTO]]')
    .action((name: string, wanted: string | undefined) =>
      withEngine(ctx, (engine) => {
        const ports = ((inspectContainer(engine, name).NetworkSettings as { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> }).Ports);
        const key = wanted === undefined ? undefined : wanted.includes('/') ? wanted : `${wanted}/tcp`;
        const lines = Object.entries(ports)
          .filter(([port]) => key === undefined || port === key)
          .flatMap(([port, bindings]) => (bindings ?? []).map((b) => (key ? '' : `${port} -> `) + `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp}:${b.HostPort}`));
        if (key !== undefined && lines.length === 0) throw new KilnError('NOT_FOUND', `No public port '${key}' published for ${name}`);
        for (const line of lines) print(ctx.io, line);
      }),
    );
}
