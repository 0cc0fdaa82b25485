import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { KilnError } from '../../errors.js';
import { type ContainerRequest, type ResourceLimits, SUPERVISE_COMMAND, createContainer, healthDuration, superviseContainer, sysctlAllowed } from '../../engine/containers.js';
import type { HealthConfig } from '../../oci/types.js';
import type { Engine } from '../../engine/engine.js';
import { ensureImage, parsePullPolicy } from '../../engine/registry.js';
import { runContainer } from '../../engine/run.js';
import { parseCpus, parseDevice, parseLabels, parseMemoryBytes, parseMount, parseUlimits, portBindings } from '../container-flags.js';
import { type CommandContext, withEngine } from '../context.js';
import { INSECURE_HELP, type RegistryFlags, collect, insecure, parseInteger, print } from '../io.js';
import { progressPrinter } from '../progress.js';
import { type RuntimeFlags, addRuntimeFlags, checkRuntimeFlags } from '../runtime-flags.js';

interface ContainerFlags extends RuntimeFlags, RegistryFlags {
  pull: string;
  rm?: boolean;
  tty?: boolean;
  name?: string;
  interactive?: boolean;
  env?: string[];
  envFile?: string[];
  volume?: string[];
  mount?: string[];
  publish?: string[];
  publishAll?: boolean;
  expose?: string[];
  label?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  network?: string;
  networkAlias?: string[];
  hostname?: string;
  domainname?: string;
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  readOnly?: boolean;
  capAdd?: string[];
  securityOpt?: string[];
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  shmSize?: string;
  ulimit?: string[];
  init?: boolean;
  groupAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  addHost?: string[];
  tmpfs?: string[];
  stopSignal?: string;
  stopTimeout?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  healthRetries?: string;
  /** Commander's negation: false with --no-healthcheck. */
  healthcheck?: boolean;
  cidfile?: string;
  platform?: string;
  quiet?: boolean;
  labelFile?: string[];
  restart?: string;
  pid?: string;
  ipc?: string;
  uts?: string;
  sysctl?: string[];
  device?: string[];
}

/** Lines of an --env-file: KEY=value or KEY (taken from kiln's environment); # comments and blanks skipped. */
/** The lines of an `--env-file` or `--label-file` (`what`), without blank lines and comments. */
async function linesFile(path: string, what: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: Error) => {
    throw new KilnError('INVALID_ARGUMENT', `cannot read ${what} ${path}: ${err.message}`);
  });
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/**
 * `--cidfile`: refused at once when the file exists (the docker CLI's words); the function returned puts
 * the ID there once the container is created.
 */
function cidFile(path: string | undefined): (id: string) => Promise<void> {
  if (path !== undefined && existsSync(path)) throw new KilnError('INVALID_ARGUMENT', `container ID file found, make sure the other container isn't running or delete ${path}`);
  return async (id) => (path === undefined ? undefined : writeFile(path, id, { flag: 'wx' }));
}

/** `--restart NAME[:MAX]` as the docker CLI sends it (the name; the engine checks it), refused with --rm in its words. */
function restartPolicy(flags: ContainerFlags): string | undefined {
  const policy = flags.restart;
  if (policy === undefined || policy === 'no') return policy;
  if (flags.rm) throw new KilnError('INVALID_ARGUMENT', 'conflicting options: cannot specify both --restart and --rm');
  return policy.split(':')[0];
}

/**
 * `--security-opt` as the docker CLI sends it: a seccomp profile named by its file goes as the file's JSON,
 * compacted (the engine, like dockerd, reads profiles, not paths).
 */
async function securityOptFiles(values: readonly string[]): Promise<string[]> {
  return Promise.all(
    values.map(async (value) => {
      const file = /^seccomp[=:](.*)$/s.exec(value)?.[1];
      if (file === undefined || file === 'unconfined' || file === 'builtin' || file.startsWith('{')) return value;
      const text = await readFile(file, 'utf8').catch((err: Error) => {
        throw new KilnError('INVALID_ARGUMENT', `opening seccomp profile (${file}) failed: ${err.message}`);
      });
      try {
        return `seccomp=${JSON.stringify(JSON.parse(text))}`;
      } catch (err) {
        throw new KilnError('INVALID_ARGUMENT', `compacting json for seccomp profile (${file}) failed: ${(err as Error).message}`);
      }
    }),
  );
}

/** The flags `create` and `run` share, as docker's. */
function addContainerFlags(command: Command): Command {
  return addRuntimeFlags(command, 'the container')
    .argument('<IMAGE>')
    .argument('[COMMAND...]')
    .passThroughOptions()
    .option('--rm', 'automatically remove the container (and its anonymous volumes) when it exits')
    .option('--name <name>', 'assign a name to the container')
    .option('-i, --interactive', 'keep STDIN open')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-e, --env <KEY=value>', 'set environment variables', collect)
    .option('--env-file <file>', 'read in a file of environment variables', collect)
    .option('-l, --label <KEY=value>', 'set meta data on a container', collect)
    .option('-v, --volume <[src:]dst[:mode]>', 'bind mount a host path (absolute src), or mount a named (src) or anonymous volume', collect)
    .option('--mount <type=…,source=…,target=…>', 'attach a filesystem mount: type=bind|volume|tmpfs', collect)
    .option('-p, --publish <[ip:][hostPort:]containerPort[/proto]>', "publish a container's port(s) to the host", collect)
    .option('-P, --publish-all', 'publish all exposed ports to random host ports')
    .option('--expose <port[/proto]>', 'expose a port or a range of ports', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <name|uid[:group|gid]>', 'username or UID')
    .option('--entrypoint <command>', 'overwrite the default ENTRYPOINT of the image')
    .option('--network <network>', "connect a container to a network: host (the default, the host's network), none, bridge or a network's name")
    .option('--network-alias <alias>', 'add a network-scoped alias for the container', collect)
    .option('--hostname <name>', 'container host name')
    .option('--domainname <name>', 'container NIS domain name')
    .option('--add-host <host:ip>', 'add a custom host-to-IP mapping (host:ip)', collect)
    .option('--dns <ip>', 'set custom DNS servers', collect)
    .option('--dns-search <domain>', 'set custom DNS search domains', collect)
    .option('--dns-option <option>', 'set DNS options', collect)
    .option('--read-only', "mount the container's root filesystem as read only")
    .option('--tmpfs <path[:options]>', 'mount a tmpfs directory', collect)
    .option('--cap-add <capability>', 'add Linux capabilities', collect)
    .option('--cap-drop <capability>', 'drop Linux capabilities', collect)
    .option('--device <host[:container][:permissions]>', 'add a host device to the container', collect)
    .option('--privileged', 'give extended privileges to this container (every capability, no seccomp filter; host devices are not passed in)')
    .option('-m, --memory <bytes>', 'memory limit (512m, 1g…)')
    .option('--memory-swap <bytes>', 'memory and swap together (-1: unlimited swap; default: twice --memory)')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <number>', 'number of CPUs (1.5: one and a half)')
    .option('-c, --cpu-shares <n>', 'CPU shares (relative weight)')
    .option('--cpu-period <us>', 'limit the CPU CFS period')
    .option('--cpu-quota <us>', 'limit the CPU CFS quota')
    .option('--cpuset-cpus <list>', 'CPUs in which to allow execution (0-3, 0,1)')
    .option('--cpuset-mems <list>', 'memory nodes in which to allow execution (0-3, 0,1)')
    .option('--pids-limit <n>', 'tune the container pids limit (-1: unlimited)')
    .option('--shm-size <bytes>', 'size of /dev/shm (default 64m)')
    .option('--ulimit <name=soft[:hard]>', 'ulimit options (nofile=1024:2048; -1 is unlimited)', collect)
    .option('--init', 'run an init inside the container (docker-init) that forwards signals and reaps processes')
    .option('--group-add <group>', 'add additional groups to join (names in the image, or IDs)', collect)
    .option('--security-opt <option>', 'security options: seccomp=unconfined|builtin|PROFILE-FILE, no-new-privileges[=true|false]', collect)
    .option('--stop-signal <signal>', 'signal to stop the container')
    .option('--stop-timeout <seconds>', 'timeout (in seconds) to stop a container')
    .option('--health-cmd <command>', 'command to run to check health')
    .option('--health-interval <duration>', 'time between running the check (ms|s|m|h) (default 30s)')
    .option('--health-timeout <duration>', 'maximum time to allow one check to run (ms|s|m|h) (default 30s)')
    .option('--health-start-period <duration>', 'start period for the container to initialize before counting retries towards unstable (ms|s|m|h)')
    .option('--health-start-interval <duration>', 'time between running the check during the start period (ms|s|m|h) (default 5s)')
    .option('--health-retries <n>', 'consecutive failures needed to report unhealthy (default 3)')
    .option('--no-healthcheck', 'disable any container-specified HEALTHCHECK')
    .option('--cidfile <file>', 'write the container ID to the file')
    .option('--platform <os/arch[/variant]>', 'the platform the image must be of (pulled so when --pull says)')
    .option('-q, --quiet', 'suppress the pull output')
    .option('--label-file <file>', 'read in a line delimited file of labels', collect)
    .option('--restart <policy>', 'restart policy, recorded as Docker does (kiln restarts no container: it has no daemon)')
    .option('--pid <mode>', 'PID namespace to use: host, or the container\'s own')
    .option('--ipc <mode>', 'IPC mode to use: private (the default), shareable, none or host')
    .option('--uts <mode>', 'UTS namespace to use: host, or the container\'s own')
    .option('--sysctl <name=value>', 'sysctl options (IPC ones, fs.mqueue.*, net.* in a network namespace of the container\'s)', collect)
    .option('--pull <policy>', 'pull the image before running: "always", "missing" or "never"', 'missing')
    .option('--insecure-registry <host>', INSECURE_HELP, collect);
}

/** `--health-*` and `--no-healthcheck` as the docker CLI turns them into Config.Healthcheck, in its words. */
function healthFlags(flags: ContainerFlags): HealthConfig | undefined {
  const durations = [
    ['Interval', flags.healthInterval, '--health-interval'],
    ['Timeout', flags.healthTimeout, '--health-timeout'],
    ['StartPeriod', flags.healthStartPeriod, '--health-start-period'],
    ['StartInterval', flags.healthStartInterval, '--health-start-interval'],
  ] as const;
  const given = flags.healthCmd !== undefined || flags.healthRetries !== undefined || durations.some(([, value]) => value !== undefined);
  if (flags.healthcheck === false) {
    if (given) throw new KilnError('INVALID_ARGUMENT', '--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  if (!given) return undefined;
  const retries = flags.healthRetries === undefined ? 0 : parseInteger(flags.healthRetries);
  if (retries < 0) throw new KilnError('INVALID_ARGUMENT', '--health-retries cannot be negative');
  const health: Record<string, unknown> = { ...(flags.healthCmd ? { Test: ['CMD-SHELL', flags.healthCmd] } : {}), ...(retries ? { Retries: retries } : {}) };
  for (const [field, value, flag] of durations) {
    if (value === undefined) continue;
    if (value.startsWith('-')) throw new KilnError('INVALID_ARGUMENT', `${flag} cannot be negative`);
    health[field] = healthDuration(value, flag);
  }
  return health;
}

/** `--sysctl NAME=VALUE` flags as the docker CLI reads them, with its words for one it does not allow. */
function parseSysctls(specs: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    specs.map((spec) => {
      const eq = spec.indexOf('=');
      if (eq < 0 || !sysctlAllowed(spec.slice(0, eq))) throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(spec)} for "--sysctl" flag: sysctl '${spec}' is not allowed`);
      return [spec.slice(0, eq), spec.slice(eq + 1)];
    }),
  );
}

/** `--memory`, `--cpus`… as the docker CLI sends them (HostConfig's units); the engine checks them as dockerd does. */
function resourceFlags(flags: ContainerFlags): ResourceLimits {
  const bytes = (text: string | undefined, flag: string): number => (text === undefined ? 0 : parseMemoryBytes(text, flag));
  const integer = (text: string | undefined): number => (text === undefined ? 0 : parseInteger(text));
  return {
    memory: bytes(flags.memory, '-m, --memory'),
    memorySwap: flags.memorySwap === '-1' ? -1 : bytes(flags.memorySwap, '--memory-swap'),
    memoryReservation: bytes(flags.memoryReservation, '--memory-reservation'),
    nanoCpus: flags.cpus === undefined ? 0 : parseCpus(flags.cpus),
    cpuShares: integer(flags.cpuShares),
    cpuPeriod: integer(flags.cpuPeriod),
    cpuQuota: integer(flags.cpuQuota),
    cpusetCpus: flags.cpusetCpus ?? '',
    cpusetMems: flags.cpusetMems ?? '',
    ...(flags.pidsLimit !== undefined ? { pidsLimit: parseInteger(flags.pidsLimit) } : {}),
  };
}

/** The request `create` and `run` make of their flags. */
async function containerRequest(image: string, command: readonly string[], flags: ContainerFlags): Promise<ContainerRequest> {
  const restart = restartPolicy(flags);
  const health = healthFlags(flags);
  const fileEnv = (await Promise.all((flags.envFile ?? []).map((file) => linesFile(file, 'env file')))).flat();
  const fileLabels = (await Promise.all((flags.labelFile ?? []).map((file) => linesFile(file, 'label file')))).flat();
  const network = flags.network;
  return {
    image,
    cmd: command,
    ...(flags.entrypoint !== undefined ? { entrypoint: [flags.entrypoint] } : {}),
    env: [...fileEnv, ...(flags.env ?? [])],
    labels: parseLabels([...fileLabels, ...(flags.label ?? [])]),
    ...(flags.workdir ? { workdir: flags.workdir } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.hostname ? { hostname: flags.hostname } : {}),
    ...(flags.domainname ? { domainname: flags.domainname } : {}),
    tty: flags.tty ?? false,
    openStdin: flags.interactive ?? false,
    binds: flags.volume ?? [],
    mounts: (flags.mount ?? []).map(parseMount),
    portBindings: portBindings(flags.publish ?? []),
    publishAllPorts: flags.publishAll ?? false,
    exposedPorts: flags.expose ?? [],
    ...(network ? { networkMode: network } : {}),
    ...(flags.networkAlias?.length ? { networks: { [network ?? 'bridge']: { aliases: flags.networkAlias } } } : {}),
    extraHosts: flags.addHost ?? [],
    dns: flags.dns ?? [],
    dnsSearch: flags.dnsSearch ?? [],
    dnsOptions: flags.dnsOption ?? [],
    readOnly: flags.readOnly ?? false,
    tmpfs: flags.tmpfs ?? [],
    capAdd: flags.capAdd ?? [],
    capDrop: flags.capDrop ?? [],
    privileged: flags.privileged ?? false,
    securityOpt: await securityOptFiles(flags.securityOpt ?? []),
    resources: resourceFlags(flags),
    ulimits: parseUlimits(flags.ulimit ?? []),
    ...(flags.init ? { init: true } : {}),
    groupAdd: flags.groupAdd ?? [],
    ...(flags.shmSize !== undefined ? { shmSize: parseMemoryBytes(flags.shmSize, '--shm-size') } : {}),
    ...(flags.stopSignal ? { stopSignal: flags.stopSignal } : {}),
    ...(flags.stopTimeout !== undefined ? { stopTimeout: parseInteger(flags.stopTimeout) } : {}),
    ...(flags.pid !== undefined ? { pidMode: flags.pid } : {}),
    ...(flags.ipc !== undefined ? { ipcMode: flags.ipc } : {}),
    ...(flags.uts !== undefined ? { utsMode: flags.uts } : {}),
    sysctls: parseSysctls(flags.sysctl ?? []),
    devices: (flags.device ?? []).map(parseDevice),
    ...(health ? { healthcheck: health } : {}),
    ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
    ...(restart !== undefined ? { restartPolicy: restart } : {}),
    autoRemove: flags.rm ?? false,
  };
}

/** The image for `create` or `run`, pulled first by the --pull policy, its progress on stderr (stdout is the container's). */
async function imageReady(ctx: CommandContext, engine: Engine, image: string, flags: ContainerFlags): Promise<void> {
  const events = flags.quiet ? () => undefined : progressPrinter(ctx.io.stderr);
  await ensureImage(engine, image, parsePullPolicy(flags.pull), { events, insecureRegistries: insecure(flags), ...(flags.platform !== undefined ? { platform: flags.platform } : {}) });
}

export function registerRun(parent: Command, ctx: CommandContext): Command {
  return addContainerFlags(parent.command('run'))
    .description('Create and run a new container from an image (in the foreground, or with -d under a kiln supervisor)')
    .option('-d, --detach', 'run the container in the background and print its ID')
    .action((image: string, command: string[], flags: ContainerFlags & { detach?: boolean }) =>
      withEngine(ctx, async (engine) => {
        if (flags.tty && !flags.detach && !ctx.io.stdin.isTTY) throw new KilnError('INVALID_ARGUMENT', 'the input device is not a TTY');
        const runtimeFlags = checkRuntimeFlags(flags);
        const writeCid = cidFile(flags.cidfile);
        await imageReady(ctx, engine, image, flags);
        const notice = (message: string): void => void ctx.io.stderr.write(`${message}\n`);
        const result = await runContainer(engine, await containerRequest(image, command, flags), {
          ...(flags.name !== undefined ? { name: flags.name } : {}),
          ...runtimeFlags,
          detach: flags.detach ?? false,
          interactive: flags.interactive ?? false,
          notice,
          created: writeCid,
        });
        if (flags.detach) print(ctx.io, result.id);
        else ctx.exitCode = result.exitCode;
      }),
    );
}

export function registerCreate(parent: Command, ctx: CommandContext): Command {
  return addContainerFlags(parent.command('create'))
    .description('Create a new container (start runs it)')
    .action((image: string, command: string[], flags: ContainerFlags) =>
      withEngine(ctx, async (engine) => {
        const runtimeFlags = checkRuntimeFlags(flags);
        const writeCid = cidFile(flags.cidfile);
        await imageReady(ctx, engine, image, flags);
        const notice = (message: string): void => void ctx.io.stderr.write(`${message}\n`);
        const { id } = await createContainer(engine, await containerRequest(image, command, flags), { ...(flags.name !== undefined ? { name: flags.name } : {}), ...runtimeFlags, notice });
        await writeCid(id);
        print(ctx.io, id);
      }),
    );
}

/** The hidden command a detached container's supervisor process runs (see engine/containers/start.ts). */
export function registerSupervisor(parent: Command, ctx: CommandContext): Command {
  return parent
    .command(SUPERVISE_COMMAND, { hidden: true })
    .argument('<id>')
    .argument('<runtime>')
    .action((id: string, runtime: string) => withEngine(ctx, (engine) => superviseContainer(engine, id, runtime === 'crun' ? 'crun' : 'runc')));
}
