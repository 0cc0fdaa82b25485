/**
 * `docker create`: a container recorded with everything it was asked to be, on a writable snapshot of
 * its image, ready for `start`. What Docker refuses at create (a missing image, a bad name, bad mounts,
 * an unknown capability, no command) is refused here, before anything is made.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KilnError } from '../../errors.js';
import { logFile } from '../../runtime/logs.js';
import { makeStdinPipe, type RuntimeName } from '../../runtime/runtime.js';
import { type ResourceLimits, type Ulimit, checkUlimits, resourceLimits } from '../../runtime/resources.js';
import { type ConsoleSize, type DeviceMapping, capabilities, commandLine, securityOptions } from '../../runtime/spec.js';
import type { Driver } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { checkNetworkMode, networkModeOf, parseExtraHost } from '../networks.js';
import { openSnapshotter, unpackImage } from '../snapshots.js';
import { recordVolume } from '../volumes.js';
import { type MountRequest, checkMountRequest, containerMounts, parseBind } from './mounts.js';
import { type ContainerSettings, type MountSetting, type NetworkAttachment, type PortBinding, OWNER_FILE, checkNewContainerName, containerBundle, containerKey } from './records.js';
import { shortId } from '../../oci/digest.js';
import type { HealthConfig } from '../../oci/types.js';
import { checkHealthcheck } from './health.js';
import { formatPlatform, imagePlatform, parsePlatform, platformMatches } from '../../oci/platform.js';

/** The limits a request sets (run/create's --memory, --cpus…; the API's HostConfig). */
export type { ResourceLimits };

/** What `create` (and `run`) is asked for: Docker's Config and HostConfig, the parts kiln applies. */
export interface ContainerRequest {
  readonly image: string;
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly user?: string;
  readonly workdir?: string;
  readonly hostname?: string;
  readonly domainname?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly tty?: boolean;
  readonly openStdin?: boolean;
  readonly stdinOnce?: boolean;
  readonly stopSignal?: string;
  readonly exposedPorts?: readonly string[];
  /** Config.Volumes: paths that get an anonymous volume (as the image's VOLUME). */
  readonly volumes?: readonly string[];
  readonly binds?: readonly string[];
  readonly mounts?: readonly MountRequest[];
  readonly tmpfs?: readonly string[];
  readonly readOnly?: boolean;
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly privileged?: boolean;
  readonly securityOpt?: readonly string[];
  readonly resources?: ResourceLimits;
  readonly ulimits?: readonly Ulimit[];
  readonly init?: boolean;
  readonly groupAdd?: readonly string[];
  /** `--pid`, `--ipc`, `--uts`: '' (the container's own) or host; `--ipc` also private, shareable, none. */
  readonly pidMode?: string;
  readonly ipcMode?: string;
  readonly utsMode?: string;
  readonly sysctls?: Readonly<Record<string, string>>;
  /** `--stop-timeout`: seconds a stop waits before the KILL, unless it says. */
  readonly stopTimeout?: number;
  /** `--platform`: the image must be of it (the API's `platform` parameter). */
  readonly platform?: string;
  readonly devices?: readonly DeviceMapping[];
  /** Config.Healthcheck (`--health-*`, `--no-healthcheck`): over the image's. */
  readonly healthcheck?: HealthConfig;
  readonly shmSize?: number;
  readonly extraHosts?: readonly string[];
  readonly dns?: readonly string[];
  readonly dnsSearch?: readonly string[];
  readonly dnsOptions?: readonly string[];
  readonly networkMode?: string;
  readonly networks?: Readonly<Record<string, NetworkAttachment>>;
  readonly portBindings?: Readonly<Record<string, readonly PortBinding[]>>;
  readonly publishAllPorts?: boolean;
  readonly autoRemove?: boolean;
  readonly consoleSize?: ConsoleSize;
  readonly restartPolicy?: string;
}

export interface CreateOptions {
  /** The container's name; else a Docker-style one. */
  readonly name?: string;
  readonly runtime: RuntimeName;
  readonly storageDriver?: Driver;
  /** Tells the user something kiln decided for them (a storage driver fallback). */
  readonly notice: (message: string) => void;
}

/** A port as Docker writes it: `80/tcp`, `53/udp` (tcp unless said). */
export function normalizePort(port: string): string {
  const match = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(port);
  if (!match || Number(match[1]) < 1 || Number(match[1]) > 65535) throw new KilnError('INVALID_ARGUMENT', `invalid port ${JSON.stringify(port)}: use PORT[/tcp|udp]`);
  return `${Number(match[1])}/${(match[2] ?? 'tcp').toLowerCase()}`;
}

/**
 * `--pid`, `--ipc`, `--uts` as dockerd takes them: the container's own namespace (''; private or
 * shareable for IPC, or none, without /dev/shm) or the host's; another container's is not supported.
 */
function namespaceModes(request: ContainerRequest): Pick<ContainerSettings, 'pidMode' | 'ipcMode' | 'utsMode'> {
  const { pidMode = '', ipcMode = '', utsMode = '' } = request;
  const refuse = (flag: string, mode: string): never => {
    throw new KilnError(mode.startsWith('container:') ? 'UNSUPPORTED' : 'INVALID_ARGUMENT', mode.startsWith('container:') ? `--${flag} ${mode}: kiln shares no namespace of another container's; use host, or the container's own` : `Invalid ${flag.toUpperCase()} mode: ${mode}`);
  };
  if (pidMode !== '' && pidMode !== 'host') refuse('pid', pidMode);
  if (!['', 'private', 'shareable', 'none', 'host'].includes(ipcMode)) refuse('ipc', ipcMode);
  if (utsMode !== '' && utsMode !== 'host') refuse('uts', utsMode);
  if (utsMode === 'host' && request.hostname) throw new KilnError('INVALID_ARGUMENT', 'conflicting options: hostname and the UTS mode');
  return { pidMode, ipcMode: ipcMode || 'private', utsMode };
}

/** A `--device` mapping, checked as dockerd checks one (the host device itself at each start). */
function checkDevice(device: DeviceMapping): DeviceMapping {
  if (!/^[rwm]*$/.test(device.cgroupPermissions)) throw new KilnError('INVALID_ARGUMENT', `invalid device mode: ${device.cgroupPermissions}`);
  if (!device.pathInContainer.startsWith('/')) throw new KilnError('INVALID_ARGUMENT', `${device.pathInContainer} is not an absolute path`);
  return { ...device, cgroupPermissions: device.cgroupPermissions || 'rwm' };
}

/** HostConfig.RestartPolicy's name, checked as dockerd checks it; kiln records it, and says it restarts nothing. */
function restartPolicyName(name: string | undefined, notice: (message: string) => void): string {
  if (!name || name === 'no') return 'no';
  if (!['always', 'unless-stopped', 'on-failure'].includes(name)) throw new KilnError('INVALID_ARGUMENT', `invalid restart policy ${JSON.stringify(name)}: use no, always, unless-stopped or on-failure[:MAX]`);
  notice(`WARNING: kiln records the restart policy ${name} but restarts no container: it has no daemon to do it`);
  return name;
}

/** The kernel parameters a container may set (in namespaces of its own), as the docker CLI allows them. */
const SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/** Whether `--sysctl` may set `name`: the IPC ones above, fs.mqueue.* and net.*. */
export function sysctlAllowed(name: string): boolean {
  return SYSCTLS.has(name) || name.startsWith('fs.mqueue.') || name.startsWith('net.');
}

/** `--sysctl` settings, checked; net.* only in a network namespace of the container's (runc's rule, said first). */
function checkSysctls(sysctls: Readonly<Record<string, string>>, networkMode: string): Record<string, string> {
  for (const [name, value] of Object.entries(sysctls)) {
    if (!sysctlAllowed(name)) throw new KilnError('INVALID_ARGUMENT', `sysctl '${name}=${value}' is not allowed`);
    if (name.startsWith('net.') && networkMode === 'host') throw new KilnError('INVALID_ARGUMENT', `sysctl "${name}" is not allowed in the host's network namespace: run with --network bridge or none (kiln's default network is the host's)`);
  }
  return { ...sysctls };
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'fervent', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'nifty', 'quirky', 'serene', 'vibrant', 'zealous'];
const NAMES = ['babbage', 'curie', 'darwin', 'euclid', 'hopper', 'kepler', 'lovelace', 'noether', 'pascal', 'ritchie', 'tesla', 'turing'];

/** A Docker-style random name (adjective_scientist) that no container has yet. */
function containerName(engine: Engine): string {
  const taken = new Set(engine.store.db.containers().map((c) => c.name));
  for (;;) {
    const pick = (list: readonly string[]): string => list[(randomBytes(1)[0] as number) % list.length] as string;
    const name = `${pick(ADJECTIVES)}_${pick(NAMES)}`;
    if (!taken.has(name)) return name;
    if (taken.size > 100) return `${name}${randomBytes(2).readUInt16BE(0)}`;
  }
}

/**
 * Creates a container: checks the request, unpacks the image into layer snapshots (held by a lease
 * until the record holds it), prepares the writable snapshot and the bundle, and records the container
 * with its volumes in one transaction. Returns its ID and name.
 */
export async function createContainer(engine: Engine, request: ContainerRequest, options: CreateOptions): Promise<{ id: string; name: string }> {
  if (process.getuid?.() !== 0) throw new KilnError('UNSUPPORTED', 'kiln runs containers as root only (rootless containers are not supported yet)');
  if (options.name !== undefined) checkNewContainerName(engine, options.name);
  return engine.store.withLease(async (lease) => {
    const row = engine.holdImage(lease, request.image);
    const imageConfig = engine.store.configOf(row.id);
    if (request.platform) {
      const wanted = parsePlatform(request.platform);
      const actual = imagePlatform(imageConfig);
      if (!platformMatches(actual, wanted)) throw new KilnError('NOT_FOUND', `image with reference ${request.image} was found but does not match the specified platform: wanted ${formatPlatform(wanted)}, actual: ${formatPlatform(actual)}`);
    }
    const config = imageConfig.config ?? {};
    const id = randomBytes(32).toString('hex');
    const entrypoint = request.entrypoint?.length === 1 && request.entrypoint[0] === '' ? [] : request.entrypoint;
    const cmd = request.cmd ?? [];
    const command = commandLine(config, { ...(entrypoint !== undefined ? { entrypoint: entrypoint[0] ?? '' } : {}), cmd: [...(entrypoint?.slice(1) ?? []), ...cmd] });
    // Unknown capabilities and security options are refused now, not at start.
    capabilities(request.capAdd, request.capDrop);
    securityOptions(request.securityOpt ?? []);
    if ((request.shmSize ?? 0) < 0) throw new KilnError('INVALID_ARGUMENT', 'SHM size can not be less than 0');
    for (const entry of request.extraHosts ?? []) parseExtraHost(entry);
    const binds = (request.binds ?? []).map(parseBind);
    const requested: MountSetting[] = [];
    for (const mount of request.mounts ?? []) requested.push(await checkMountRequest(mount));
    const mounts = containerMounts(binds, requested, [...Object.keys(config.Volumes ?? {}), ...(request.volumes ?? [])]);
    const networkMode = networkModeOf(request.networkMode);
    const networks = checkNetworkMode(engine, networkMode, request.networks ?? {});
    const portBindings = Object.fromEntries(Object.entries(request.portBindings ?? {}).map(([port, bindings]) => [normalizePort(port), bindings]));
    if ((Object.keys(portBindings).length > 0 || request.publishAllPorts) && Object.keys(networks).length === 0) options.notice(`WARNING: Published ports are discarded when using ${networkMode} network mode (publish from --network bridge or a network of yours)`);
    const settings: ContainerSettings = {
      image: request.image,
      ...(entrypoint !== undefined ? { entrypoint } : {}),
      cmd,
      env: request.env ?? [],
      ...(request.user ? { user: request.user } : {}),
      ...(request.workdir ? { workdir: request.workdir } : {}),
      hostname: request.utsMode === 'host' ? hostname() : request.hostname || shortId(id),
      ...(request.domainname ? { domainname: request.domainname } : {}),
      labels: { ...(config.Labels ?? {}), ...(request.labels ?? {}) },
      tty: request.tty ?? false,
      openStdin: request.openStdin ?? false,
      stdinOnce: request.stdinOnce ?? false,
      ...(request.stopSignal || config.StopSignal ? { stopSignal: request.stopSignal || config.StopSignal } : {}),
      exposedPorts: [...new Set([...Object.keys(config.ExposedPorts ?? {}), ...(request.exposedPorts ?? []), ...Object.keys(portBindings)].map(normalizePort))],
      binds: request.binds ?? [],
      mounts,
      tmpfs: request.tmpfs ?? [],
      readOnly: request.readOnly ?? false,
      capAdd: request.capAdd ?? [],
      capDrop: request.capDrop ?? [],
      privileged: request.privileged ?? false,
      securityOpt: request.securityOpt ?? [],
      resources: resourceLimits(request.resources ?? {}),
      ulimits: checkUlimits(request.ulimits ?? []),
      init: request.init ?? false,
      groupAdd: request.groupAdd ?? [],
      ...namespaceModes(request),
      sysctls: checkSysctls(request.sysctls ?? {}, networkMode),
      devices: (request.devices ?? []).map(checkDevice),
      ...(request.healthcheck ? { healthcheck: checkHealthcheck(request.healthcheck) } : {}),
      ...(request.stopTimeout !== undefined ? { stopTimeout: request.stopTimeout } : {}),
      shmSize: request.shmSize ?? 0,
      extraHosts: request.extraHosts ?? [],
      dns: request.dns ?? [],
      dnsSearch: request.dnsSearch ?? [],
      dnsOptions: request.dnsOptions ?? [],
      networkMode,
      networks,
      portBindings,
      publishAllPorts: request.publishAllPorts ?? false,
      autoRemove: request.autoRemove ?? false,
      runtime: options.runtime,
      ...(request.consoleSize ? { consoleSize: request.consoleSize } : {}),
      restartPolicy: restartPolicyName(request.restartPolicy, options.notice),
    };
    const snapshots = await openSnapshotter(engine, options.notice, options.storageDriver);
    const top = await unpackImage(engine, snapshots, row.id, request.image);
    const bundle = containerBundle(engine, id);
    await mkdir(join(bundle, 'rootfs'), { recursive: true });
    // Who made this bundle: a kill before the record is written leaves it, and prune tells the dead from the living by this.
    await writeFile(join(bundle, OWNER_FILE), String(process.pid));
    // The log is there before the container can start: a stream attached now (docker run attaches
    // before it starts) opens it at once and reads it to its end even if --rm removes the bundle first.
    await writeFile(logFile(bundle), '');
    await snapshots.prepare(containerKey(id), top);
    if (settings.openStdin) await makeStdinPipe(bundle, settings.stdinOnce);
    const name = engine.store.db.transaction(() => {
      const chosen = options.name ?? containerName(engine);
      checkNewContainerName(engine, chosen);
      // Anonymous volumes get their names now; named ones are made if missing: all with the record.
      const named = settings.mounts.map((mount) => (mount.type === 'volume' ? { ...mount, source: recordVolume(engine, { name: mount.source, anonymous: mount.source === '' }).name } : mount));
      engine.store.db.addContainer({ id, name: chosen, imageId: row.id, imageName: request.image, command, driver: snapshots.driver, createdAt: Date.now(), settings: JSON.stringify({ ...settings, mounts: named }) });
      return chosen;
    });
    recordEvent(engine, 'container', 'create', id, { image: request.image, name, ...settings.labels });
    return { id, name };
  });
}
