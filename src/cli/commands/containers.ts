import type { Command } from 'commander';
import { pipeline } from 'node:stream/promises';
import { CONTAINER_FILTERS, type ContainerSummary, type LogWrite, commitContainer, containerChanges, containerIo, containerStdin, copyFromContainer, copyIntoContainer, execInContainer, exportContainer, findContainer, followLogs, isRunning, killContainer, listContainers, logOffset, withSizes, logTime, pauseContainer, removeContainer, renameContainer, resizeContainer, startContainer, stopContainer, tailLines, timestamped, topContainer, unpauseContainer, waitContainer } from '../../engine/containers.js';
import type { Engine } from '../../engine/engine.js';
import { parseFilterFlags } from '../../engine/filters.js';
import type { RuntimeName } from '../../runtime/runtime.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { renderRows, tabwrite } from '../format/table.js';
import { goTimeString, humanSize, sinceNow, truncateDisplay } from '../format/units.js';
import { type Io, collect, orderedOutput, parseBool, parseInteger, print, printRows, writeFileAtomically } from '../io.js';
import { configuredDetachKeys } from '../../registry/credentials.js';
import { type RuntimeFlags, addRuntimeFlags, checkRuntimeFlags } from '../runtime-flags.js';

const PS_HEADERS = { ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', RunningFor: 'CREATED', CreatedAt: 'CREATED AT', Status: 'STATUS', Ports: 'PORTS', Names: 'NAMES', Labels: 'LABELS', State: 'STATE', Size: 'SIZE' };

/** docker ps's PORTS: `0.0.0.0:8080->80/tcp` for a published port, `80/tcp` for one only exposed. */
function portsText(container: ContainerSummary): string {
  return container.Ports.map((p) => (p.PublicPort ? `${p.IP?.includes(':') ? `[${p.IP}]` : (p.IP ?? '')}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`)).join(', ');
}

/**
 * Detach keys as docker takes them (`--detach-keys`, config.json's `detachKeys`): a comma-separated
 * list of single characters and `ctrl-X` (X a letter or one of @ [ \\ ] ^ _). Default ctrl-p,ctrl-q.
 */
export function parseDetachKeys(spec = 'ctrl-p,ctrl-q'): Buffer {
  const controls = '@abcdefghijklmnopqrstuvwxyz[\\]^_';
  const codes = spec.split(',').map((key) => {
    if (key.length === 1) return key.charCodeAt(0);
    const at = key.length === 6 && key.toLowerCase().startsWith('ctrl-') ? controls.indexOf(key[5]?.toLowerCase() ?? '') : -1;
    if (at < 0) throw new KilnError('INVALID_ARGUMENT', `Invalid detach keys (${spec}) provided: unknown key '${key}'; use characters and ctrl-a … ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_, separated by commas`);
    return at;
  });
  return Buffer.from(codes);
}

/** The detach keys of `--detach-keys`, else config.json's `detachKeys`, else docker's default. */
async function detachKeysFrom(flag: string | undefined): Promise<Buffer> {
  return parseDetachKeys(flag ?? (await configuredDetachKeys()));
}

/** The signals `--sig-proxy` passes on to a container attached without a terminal, as docker does. */
const PROXIED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

interface AttachOptions {
  /** Kiln's stdin goes to the container's (if it keeps one open). */
  readonly stdin: boolean;
  /** With a terminal, these typed keys detach. */
  readonly detachKeys: Buffer;
  /** Without a terminal, signals kiln receives go to the container's process. */
  readonly sigProxy: boolean;
  /** The output from this offset of the log on (`start -a`), else from now (before any input is passed on). */
  readonly from?: number;
}

/**
 * `docker attach`: the container's output from now on, and (unless `options.stdin` is false, and if it
 * keeps one open) kiln's stdin into the container's. With a terminal, kiln's is put in raw mode and its
 * size passed on, now and when it changes, and the detach keys detach (exit 1, as docker's). Returns the
 * container's exit code.
 */
async function attach(engine: Engine, id: string, runtime: RuntimeName, io: Io, options: AttachOptions): Promise<number> {
  const { tty, openStdin } = containerIo(engine, id);
  const stdin = options.stdin && openStdin ? io.stdin : undefined;
  if (tty && stdin && stdin.isTTY !== true) throw new KilnError('INVALID_ARGUMENT', 'the input device is not a TTY');
  const { stdout } = io;
  const resize = async (): Promise<void> => {
    if (stdout.isTTY && stdout.rows && stdout.columns) await resizeContainer(engine, id, runtime, { height: stdout.rows, width: stdout.columns }).catch(() => undefined);
  };
  const onResize = (): void => void resize();
  const detach = new AbortController();
  const input = stdin && (await containerStdin(engine, id));
  if (tty) {
    stdin?.setRawMode?.(true);
    await resize(); // before any input goes in: the first command sees the right size
    process.on('SIGWINCH', onResize);
  }
  const forward = (signal: NodeJS.Signals): void => void killContainer(engine, id, signal).catch(() => undefined);
  const proxied = !tty && options.sigProxy ? PROXIED_SIGNALS : [];
  for (const signal of proxied) process.on(signal, forward);
  // The detach keys are looked for only on a terminal, where they are typed (also across reads): the
  // last keys typed, as many as the sequence has less one, are kept to look in with the next read.
  let recent = Buffer.alloc(0);
  const onInput = (chunk: Buffer): void => {
    const typed = Buffer.concat([recent, chunk]);
    if (tty && typed.includes(options.detachKeys)) return detach.abort();
    recent = typed.subarray(Math.max(0, typed.length - (options.detachKeys.length - 1)));
    input?.write(chunk);
  };
  // Where the output shown begins is fixed before any input goes in: the container's answer to it is shown.
  const from = options.from ?? (await logOffset(engine, id));
  if (stdin && input) {
    input.on('error', () => undefined); // the container stopped reading
    stdin.on('data', onInput);
    stdin.once('end', () => input.end());
  }
  try {
    await followLogs(engine, id, orderedOutput(io), { follow: true, stdout: true, stderr: true, from, signal: detach.signal });
    if (detach.signal.aborted) {
      io.stderr.write(`${tty ? '\r\n' : ''}read escape sequence\n`);
      return 1;
    }
    return (await waitContainer(engine, id)) ?? 0;
  } finally {
    for (const signal of proxied) process.off(signal, forward);
    stdin?.off('data', onInput);
    stdin?.pause();
    input?.destroy();
    if (tty) {
      process.off('SIGWINCH', onResize);
      stdin?.setRawMode?.(false);
    }
  }
}

interface ContainerPath {
  readonly container: string;
  readonly path: string;
}

/** `CONTAINER:PATH` as docker cp reads it: a path that starts with / or . is local, whatever colons it holds. */
function containerPath(arg: string): ContainerPath | undefined {
  const colon = arg.indexOf(':');
  if (arg.startsWith('/') || arg.startsWith('.') || colon <= 0) return undefined;
  const path = arg.slice(colon + 1);
  if (path === '') throw new KilnError('INVALID_ARGUMENT', `no path in ${JSON.stringify(arg)}: use CONTAINER:PATH`);
  return { container: arg.slice(0, colon), path };
}

/** stop's and restart's -s and -t as stopContainer takes them. */
function stopOptions(flags: { signal?: string; time?: number }): { signal?: string; timeout?: number } {
  return { ...(flags.signal !== undefined ? { signal: flags.signal } : {}), ...(flags.time !== undefined ? { timeout: flags.time } : {}) };
}

/**
 * Runs `act` on each container named, printing what it returns; as docker does, one that fails prints
 * its error and the others go on, and the exit code is then 1.
 */
function eachContainer(ctx: CommandContext, names: readonly string[], act: (engine: Engine, name: string) => Promise<string>): Promise<void> {
  return withEngine(ctx, async (engine) => {
    for (const name of names) {
      try {
        print(ctx.io, await act(engine, name));
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        ctx.io.stderr.write(`Error: ${err.message}\n`);
        ctx.exitCode = 1;
      }
    }
  });
}

/**
 * The container verbs, on `program` (`kiln ps`, `kiln rm`…) or under `kiln container` (where ps is
 * `ls`, as docker's management command names it).
 */
export function registerContainers(program: Command, ctx: CommandContext): void {
  const grouped = program.name() === 'container';
  (grouped ? program.command('ls').aliases(['ps', 'list']) : program.command('ps'))
    .description('List containers')
    .option('-a, --all', 'show all containers (default shows just running)')
    .option('-f, --filter <filter>', 'filter output based on conditions provided (id, name, status, exited, ancestor, before, since, label, network, volume, health, publish, expose, is-task)', collect)
    .option('-n, --last <n>', 'show n last created containers (includes all states)', parseInteger)
    .option('-l, --latest', 'show the latest created container (includes all states)')
    .option('-q, --quiet', 'only display container IDs')
    .option('-s, --size', 'display total file sizes')
    .option('--no-trunc', "don't truncate output")
    .option('--format <format>', 'format output using a custom template')
    .action((options: { all?: boolean; filter?: string[]; last?: number; latest?: boolean; quiet?: boolean; size?: boolean; trunc: boolean; format?: string }) =>
      withEngine(ctx, async (engine) => {
        const last = options.latest ? 1 : options.last;
        // As the docker CLI: sizes are asked for by -s, or by a format that shows them.
        const sized = !options.quiet && (options.format === undefined ? options.size === true : /\.Size\b/.test(options.format));
        const listed = listContainers(engine, { all: options.all ?? false, filters: parseFilterFlags(options.filter ?? [], CONTAINER_FILTERS), ...(last !== undefined ? { last } : {}) });
        const rows = (sized ? await withSizes(engine, listed) : listed).map((c) => ({
          ID: options.trunc ? c.Id.slice(0, 12) : c.Id,
          Image: c.Image,
          Command: `"${options.trunc ? truncateDisplay(c.Command, 20) : c.Command}"`,
          RunningFor: sinceNow(c.Created * 1000),
          CreatedAt: goTimeString(c.Created * 1000),
          Status: c.Status,
          Ports: portsText(c),
          Names: c.Names.map((n) => n.replace(/^\//, '')).join(','),
          Labels: Object.entries(c.Labels).map(([k, v]) => `${k}=${v}`).join(','),
          State: c.State,
          Size: c.SizeRootFs ? `${humanSize(c.SizeRw ?? 0)} (virtual ${humanSize(c.SizeRootFs)})` : humanSize(c.SizeRw ?? 0),
        }));
        const format = options.quiet ? '{{.ID}}' : (options.format ?? `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${sized ? '\t{{.Size}}' : ''}`);
        printRows(ctx.io, renderRows(format, PS_HEADERS, rows));
      }),
    );
  program
    .command('rm')
    .description('Remove one or more containers')
    .argument('<CONTAINER...>')
    .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
    .option('-v, --volumes', 'remove anonymous volumes associated with the container')
    .action((names: string[], options: { force?: boolean; volumes?: boolean }) => eachContainer(ctx, names, (engine, name) => removeContainer(engine, name, options.force ?? false, options.volumes ?? false)));
  for (const [verb, act, description] of [
    ['pause', pauseContainer, 'Pause all processes within one or more containers'],
    ['unpause', unpauseContainer, 'Unpause all processes within one or more containers'],
  ] as const) {
    program
      .command(verb)
      .description(description)
      .argument('<CONTAINER...>')
      .action((names: string[]) =>
        eachContainer(ctx, names, async (engine, name) => {
          await act(engine, name);
          return name;
        }),
      );
  }
  program
    .command('kill')
    .description('Kill one or more running containers')
    .argument('<CONTAINER...>')
    .option('-s, --signal <signal>', 'signal to send to the container', 'KILL')
    .action((names: string[], options: { signal: string }) =>
      eachContainer(ctx, names, async (engine, name) => {
        await killContainer(engine, name, options.signal);
        return name;
      }),
    );
  program
    .command('stop')
    .description('Stop one or more running containers')
    .argument('<CONTAINER...>')
    .option('-s, --signal <signal>', "signal to send to the container (default: the image's STOPSIGNAL, else SIGTERM)")
    .option('-t, --time <seconds>', 'seconds to wait before killing the container', parseInteger)
    .action((names: string[], options: { signal?: string; time?: number }) =>
      eachContainer(ctx, names, async (engine, name) => {
        await stopContainer(engine, name, stopOptions(options));
        return name;
      }),
    );
  addRuntimeFlags(program.command('start'), 'the container')
    .description('Start one or more stopped containers (on the writable layer they left)')
    .argument('<CONTAINER...>')
    .option('-a, --attach', 'attach STDOUT/STDERR and forward signals')
    .option('-i, --interactive', "attach container's STDIN")
    .option('--detach-keys <keys>', 'override the key sequence for detaching a container (default ctrl-p,ctrl-q)')
    .action((names: string[], flags: RuntimeFlags & { attach?: boolean; interactive?: boolean; detachKeys?: string }) => {
      if (!flags.attach && !flags.interactive) {
        return eachContainer(ctx, names, async (engine, name) => {
          await startContainer(engine, name, checkRuntimeFlags(flags).runtime);
          return name;
        });
      }
      return withEngine(ctx, async (engine) => {
        if (names.length > 1) throw new KilnError('INVALID_ARGUMENT', 'you cannot start and attach multiple containers at once');
        const { runtime } = checkRuntimeFlags(flags);
        const detachKeys = await detachKeysFrom(flags.detachKeys);
        const { id } = findContainer(engine, names[0] ?? '');
        // Where the log ends before the start: the attach then misses nothing the process writes at once.
        const from = await logOffset(engine, id);
        await startContainer(engine, id, runtime);
        ctx.exitCode = await attach(engine, id, runtime, ctx.io, { stdin: flags.interactive ?? false, detachKeys, sigProxy: true, from });
      });
    });
  addRuntimeFlags(program.command('restart'), 'the container')
    .description('Restart one or more containers (stop as `stop` does, then start)')
    .argument('<CONTAINER...>')
    .option('-s, --signal <signal>', "signal to send to the container (default: the image's STOPSIGNAL, else SIGTERM)")
    .option('-t, --time <seconds>', 'seconds to wait before killing the container', parseInteger)
    .action((names: string[], flags: RuntimeFlags & { signal?: string; time?: number }) =>
      eachContainer(ctx, names, async (engine, name) => {
        await stopContainer(engine, name, stopOptions(flags));
        await startContainer(engine, name, checkRuntimeFlags(flags).runtime);
        return name;
      }),
    );
  program
    .command('exec')
    .description('Execute a command in a running container')
    .argument('<CONTAINER>')
    .argument('<COMMAND...>')
    .passThroughOptions()
    .option('-i, --interactive', 'keep STDIN open')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-d, --detach', 'detached mode: run the command in the background')
    .option('-e, --env <KEY=value>', 'set environment variables', collect)
    .option('-u, --user <name|uid[:group|gid]>', 'username or UID')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .action((name: string, command: string[], flags: { interactive?: boolean; tty?: boolean; detach?: boolean; env?: string[]; user?: string; workdir?: string }) =>
      withEngine(ctx, async (engine) => {
        if (flags.tty && !flags.detach && !ctx.io.stdin.isTTY) throw new KilnError('INVALID_ARGUMENT', 'the input device is not a TTY');
        ctx.exitCode = await execInContainer(engine, name, {
          cmd: command,
          interactive: flags.interactive ?? false,
          tty: flags.tty ?? false,
          detach: flags.detach ?? false,
          env: flags.env ?? [],
          ...(flags.user !== undefined ? { user: flags.user } : {}),
          ...(flags.workdir !== undefined ? { workdir: flags.workdir } : {}),
        });
      }),
    );
  program
    .command('cp')
    .description('Copy files/folders between a container and the local filesystem (- for a tar on stdin or stdout)')
    .argument('<SRC>', 'CONTAINER:SRC_PATH, or a local path or -')
    .argument('<DEST>', 'a local path or -, or CONTAINER:DEST_PATH')
    .option('-a, --archive', 'archive mode (copy all uid/gid information)')
    .option('-L, --follow-link', 'always follow symbol link in SRC_PATH')
    .option('-q, --quiet', 'suppress progress output during copy')
    .action((source: string, destination: string, flags: { archive?: boolean; followLink?: boolean; quiet?: boolean }) =>
      withEngine(ctx, async (engine) => {
        const from = containerPath(source);
        const to = containerPath(destination);
        if (from && to) throw new KilnError('INVALID_ARGUMENT', 'copying between containers is not supported');
        if (!from && !to) throw new KilnError('INVALID_ARGUMENT', 'must specify at least one container source');
        const options = { archive: flags.archive ?? false, follow: flags.followLink ?? false };
        const copied = from
          ? await copyFromContainer(engine, from.container, from.path, destination === '-' ? ctx.io.stdout : destination, options)
          : await copyIntoContainer(engine, source === '-' ? (ctx.io.stdin as AsyncIterable<Buffer>) : source, (to as ContainerPath).container, (to as ContainerPath).path, options);
        if (!flags.quiet && (from ? destination : source) !== '-') ctx.io.stderr.write(`Successfully copied ${humanSize(copied)} to ${destination}\n`);
      }),
    );
  program
    .command('wait')
    .description('Block until one or more containers stop, then print their exit codes')
    .argument('<CONTAINER...>')
    .action((names: string[]) =>
      eachContainer(ctx, names, async (engine, name) => {
        const { id } = findContainer(engine, name);
        return String((await waitContainer(engine, id)) ?? 0);
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
    .option('-f, --follow', 'follow log output (until the container exits)')
    .option('-t, --timestamps', 'show timestamps')
    .option('--since <time>', 'show logs since a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
    .option('--until <time>', 'show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
    .option('-n, --tail <lines>', 'number of lines to show from the end of the logs, or "all"', 'all')
    .action((name: string, options: { follow?: boolean; timestamps?: boolean; since?: string; until?: string; tail: string }) =>
      withEngine(ctx, async (engine) => {
        const { id } = findContainer(engine, name);
        const tail = tailLines(options.tail);
        const [since, until] = [logTime(options.since), logTime(options.until)];
        const raw: LogWrite = orderedOutput(ctx.io);
        await followLogs(engine, id, options.timestamps ? timestamped(raw) : raw, { follow: options.follow === true, stdout: true, stderr: true, ...(tail !== undefined ? { tail } : {}), ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) });
      }),
    );
  program
    .command('rename')
    .description('Rename a container')
    .argument('<CONTAINER>')
    .argument('<NEW_NAME>')
    .action((name: string, newName: string) => withEngine(ctx, (engine) => renameContainer(engine, name, newName)));
  addRuntimeFlags(program.command('attach'), 'the container')
    .description('Attach local standard input, output, and error streams to a running container')
    .argument('<CONTAINER>')
    .option('--no-stdin', 'do not attach STDIN')
    .option('--detach-keys <keys>', 'override the key sequence for detaching a container (default ctrl-p,ctrl-q)')
    .option('--sig-proxy [bool]', 'proxy all received signals to the process (without a terminal)', parseBool, true)
    .action((name: string, flags: RuntimeFlags & { stdin: boolean; detachKeys?: string; sigProxy: boolean }) =>
      withEngine(ctx, async (engine) => {
        const { runtime } = checkRuntimeFlags(flags);
        const detachKeys = await detachKeysFrom(flags.detachKeys);
        const container = findContainer(engine, name);
        if (!isRunning(container)) throw new KilnError('CONFLICT', 'You cannot attach to a stopped container, start it first');
        ctx.exitCode = await attach(engine, container.id, runtime, ctx.io, { stdin: flags.stdin, detachKeys, sigProxy: flags.sigProxy });
      }),
    );
  program
    .command('top')
    .description('Display the running processes of a container')
    .argument('<CONTAINER>')
    .argument('[ps OPTIONS...]', "the host ps's options (default -ef)")
    .allowUnknownOption()
    .action((name: string, psOptions: string[]) =>
      withEngine(ctx, async (engine) => {
        const top = await topContainer(engine, name, psOptions.length > 0 ? psOptions.join(' ') : undefined);
        // The docker CLI's table: its tabwriter with a minimum width of 20.
        ctx.io.stdout.write(`${tabwrite([top.Titles, ...top.Processes].map((row) => row.join('\t')).join('\n'), 20)}\n`);
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
