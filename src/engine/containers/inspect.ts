/**
 * Containers as the Engine API shows them: `docker inspect` (ContainerJSON, every field API 1.41
 * defines, empty where kiln has no meaning for it) and `docker ps` (the list, with every filter Docker has).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../errors.js';
import type { ContainerRow } from '../../meta/db.js';
import type { ContainerConfig } from '../../oci/types.js';
import { logFile } from '../../runtime/logs.js';
import { INIT_PID_FILE } from '../../runtime/runtime.js';
import { DEFAULT_SHM_SIZE, withOverrides } from '../../runtime/spec.js';
import { containerConfigJson } from '../config-json.js';
import type { Engine } from '../engine.js';
import type { Filters } from '../filters.js';
import { matchLabels } from '../filters.js';
import { type PortSummary, networkSettingsJson } from '../networks.js';
import { humanDuration } from '../time.js';
import { containerSizeRw } from './files.js';
import { containerHealth, effectiveHealthcheck, healthSuffix } from './health.js';
import { volumePath } from '../volumes.js';
import { type ContainerSettings, type ContainerStatus, containerBundle, containerKey, containerStatus, findContainer, settingsOf, snapshotterFor } from './records.js';
import { shortId } from '../../oci/digest.js';

const ZERO_TIME = '0001-01-01T00:00:00Z';

function time(ms: number | null): string {
  return ms === null ? ZERO_TIME : new Date(ms).toISOString();
}

/** The image's config for a container's (its image is kept while the container is); empty if gone all the same. */
function imageConfig(engine: Engine, container: ContainerRow): ContainerConfig {
  try {
    return engine.store.configOf(container.imageId).config ?? {};
  } catch {
    return {};
  }
}

/** Config as Docker keeps it for a container: the image's, with what the request set on top. */
function configJson(container: ContainerRow, settings: ContainerSettings, image: ContainerConfig): Record<string, unknown> {
  const entrypoint = settings.entrypoint ?? image.Entrypoint ?? null;
  const cmd = settings.cmd.length > 0 ? settings.cmd : settings.entrypoint !== undefined ? null : (image.Cmd ?? null);
  const volumes = Object.fromEntries(settings.mounts.filter((m) => m.origin === 'volumes').map((m) => [m.target, {}]));
  return containerConfigJson({
    ...image,
    Hostname: settings.hostname ?? shortId(container.id),
    Domainname: settings.domainname ?? '',
    User: settings.user ?? image.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ExposedPorts: Object.fromEntries(settings.exposedPorts.map((p) => [p, {}])),
    Tty: settings.tty,
    OpenStdin: settings.openStdin,
    StdinOnce: settings.stdinOnce,
    Env: withOverrides(image.Env ?? [], settings.env),
    Cmd: cmd,
    Image: settings.image,
    Volumes: Object.keys(volumes).length > 0 ? volumes : null,
    WorkingDir: settings.workdir ?? image.WorkingDir ?? '',
    Entrypoint: entrypoint && entrypoint.length > 0 ? entrypoint : null,
    Labels: settings.labels,
    ...(settings.stopSignal ? { StopSignal: settings.stopSignal } : {}),
    ...(settings.stopTimeout !== undefined ? { StopTimeout: settings.stopTimeout } : {}),
    // The request's check over the image's, as dockerd merges them at create (NONE as it is).
    ...(settings.healthcheck ? { Healthcheck: effectiveHealthcheck(settings.healthcheck, image) ?? settings.healthcheck } : {}),
  });
}

/** HostConfig as dockerd shows it: what the request set, Docker's defaults for the rest. */
function hostConfigJson(settings: ContainerSettings): Record<string, unknown> {
  const mounts = settings.mounts.filter((m) => m.origin === 'mounts').map((m) => ({
    Type: m.type,
    ...(m.source ? { Source: m.source } : {}),
    Target: m.target,
    ...(m.readOnly ? { ReadOnly: true } : {}),
    ...(m.propagation ? { BindOptions: { Propagation: m.propagation } } : {}),
    ...(m.noCopy ? { VolumeOptions: { NoCopy: true } } : {}),
    ...(m.tmpfsSize || m.tmpfsMode ? { TmpfsOptions: { ...(m.tmpfsSize ? { SizeBytes: m.tmpfsSize } : {}), ...(m.tmpfsMode ? { Mode: m.tmpfsMode } : {}) } } : {}),
  }));
  const tmpfs = Object.fromEntries(settings.tmpfs.map((t) => [t.split(':')[0] ?? t, t.includes(':') ? t.slice(t.indexOf(':') + 1) : '']));
  const none = <T>(list: readonly T[]): readonly T[] | null => (list.length > 0 ? list : null);
  const limits = settings.resources;
  return {
    Binds: none(settings.binds),
    ContainerIDFile: '',
    LogConfig: { Type: 'json-file', Config: {} },
    NetworkMode: settings.networkMode,
    PortBindings: Object.fromEntries(Object.entries(settings.portBindings).map(([port, bindings]) => [port, bindings.map((b) => ({ HostIp: b.hostIp, HostPort: b.hostPort }))])),
    RestartPolicy: { Name: settings.restartPolicy, MaximumRetryCount: 0 },
    AutoRemove: settings.autoRemove,
    VolumeDriver: '',
    VolumesFrom: null,
    CapAdd: none(settings.capAdd),
    CapDrop: none(settings.capDrop),
    CgroupnsMode: 'host',
    Dns: settings.dns,
    DnsOptions: settings.dnsOptions,
    DnsSearch: settings.dnsSearch,
    ExtraHosts: none(settings.extraHosts),
    GroupAdd: none(settings.groupAdd),
    IpcMode: settings.ipcMode,
    Cgroup: '',
    Links: null,
    OomScoreAdj: 0,
    PidMode: settings.pidMode,
    Privileged: settings.privileged,
    PublishAllPorts: settings.publishAllPorts,
    ReadonlyRootfs: settings.readOnly,
    SecurityOpt: none(settings.securityOpt),
    ...(settings.tmpfs.length > 0 ? { Tmpfs: tmpfs } : {}),
    ...(Object.keys(settings.sysctls).length > 0 ? { Sysctls: settings.sysctls } : {}),
    UTSMode: settings.utsMode,
    UsernsMode: '',
    ShmSize: settings.shmSize || DEFAULT_SHM_SIZE,
    Runtime: settings.runtime,
    ConsoleSize: settings.consoleSize ? [settings.consoleSize.height, settings.consoleSize.width] : [0, 0],
    Isolation: '',
    CpuShares: limits.cpuShares ?? 0,
    Memory: limits.memory ?? 0,
    NanoCpus: limits.nanoCpus ?? 0,
    CgroupParent: '',
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: limits.cpuPeriod ?? 0,
    CpuQuota: limits.cpuQuota ?? 0,
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: limits.cpusetCpus ?? '',
    CpusetMems: limits.cpusetMems ?? '',
    Devices: settings.devices.map((d) => ({ PathOnHost: d.pathOnHost, PathInContainer: d.pathInContainer, CgroupPermissions: d.cgroupPermissions })),
    DeviceCgroupRules: null,
    DeviceRequests: null,
    KernelMemory: 0,
    KernelMemoryTCP: 0,
    MemoryReservation: limits.memoryReservation ?? 0,
    MemorySwap: limits.memorySwap ?? 0,
    MemorySwappiness: null,
    OomKillDisable: false,
    PidsLimit: limits.pidsLimit ?? null,
    Ulimits: settings.ulimits.map(({ name, hard, soft }) => ({ Name: name, Hard: hard, Soft: soft })),
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
    ...(mounts.length > 0 ? { Mounts: mounts } : {}),
    MaskedPaths: settings.privileged ? [] : ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'],
    ReadonlyPaths: settings.privileged ? [] : ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    Init: settings.init ? true : null,
  };
}

/** The Mounts list of inspect and ps (types.MountPoint). */
function mountPoints(engine: Engine, settings: ContainerSettings): Record<string, unknown>[] {
  return settings.mounts.map((m) => {
    if (m.type === 'volume') return { Type: 'volume', Name: m.source, Source: volumePath(engine, m.source), Destination: m.target, Driver: 'local', Mode: m.origin === 'binds' ? 'z' : '', RW: !m.readOnly, Propagation: '' };
    if (m.type === 'bind') return { Type: 'bind', Source: m.source, Destination: m.target, Mode: '', RW: !m.readOnly, Propagation: m.propagation ?? 'rprivate' };
    return { Type: 'tmpfs', Source: '', Destination: m.target, Mode: '', RW: !m.readOnly, Propagation: '' };
  });
}

/** GraphDriver of inspect: the snapshot's directories, by overlay's names. */
function graphDriver(engine: Engine, container: ContainerRow): Record<string, unknown> {
  const snapshots = snapshotterFor(engine, container);
  const [spec] = snapshots.driver === 'overlay' ? snapshots.mounts(containerKey(container.id)) : [];
  const option = (name: string): string => spec?.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1) ?? '';
  const merged = join(containerBundle(engine, container.id), 'rootfs');
  const data = snapshots.driver === 'overlay' ? { LowerDir: option('lowerdir'), MergedDir: merged, UpperDir: option('upperdir'), WorkDir: option('workdir') } : { MergedDir: merged };
  return { Data: data, Name: snapshots.driver === 'overlay' ? 'overlay2' : 'vfs' };
}

/** `docker inspect CONTAINER` (the API's /containers/{id}/json). */
/**
 * The host pid of a running container's first process, as Docker's State.Pid (what `nsenter -t` takes),
 * from the pid file its runtime writes; 0 in the moment before the runtime has started it.
 */
function initPid(bundle: string): number {
  try {
    return Number(readFileSync(join(bundle, INIT_PID_FILE), 'utf8')) || 0;
  } catch {
    return 0;
  }
}

export function inspectContainer(engine: Engine, nameOrId: string): Record<string, unknown> {
  const container = findContainer(engine, nameOrId);
  const settings = settingsOf(container);
  const status = containerStatus(container);
  const bundle = containerBundle(engine, container.id);
  const running = status === 'running' || status === 'paused';
  const network = networkSettingsJson(engine, container, settings);
  const health = containerHealth(engine, container.id);
  return {
    Id: container.id,
    Created: time(container.createdAt),
    Path: container.command[0] ?? '',
    Args: container.command.slice(1),
    State: {
      Status: status,
      Running: running,
      Paused: status === 'paused',
      Restarting: false,
      OOMKilled: (engine.store.db.lastEvent(container.id, 'oom')?.seq ?? 0) > (engine.store.db.lastEvent(container.id, 'start')?.seq ?? 0),
      Dead: false,
      Pid: running ? initPid(bundle) : 0,
      ExitCode: container.exitCode ?? (container.error ? 128 : 0),
      Error: container.error,
      StartedAt: time(container.startedAt ?? (status === 'created' ? null : container.createdAt)),
      FinishedAt: time(container.finishedAt),
      ...(health ? { Health: health } : {}),
    },
    Image: container.imageId,
    ResolvConfPath: join(bundle, 'resolv.conf'),
    HostnamePath: join(bundle, 'hostname'),
    HostsPath: join(bundle, 'hosts'),
    LogPath: logFile(bundle),
    Name: `/${container.name}`,
    RestartCount: 0,
    Driver: container.driver === 'vfs' ? 'vfs' : 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: hostConfigJson(settings),
    GraphDriver: graphDriver(engine, container),
    Mounts: mountPoints(engine, settings),
    Config: configJson(container, settings, imageConfig(engine, container)),
    NetworkSettings: network.full,
  };
}

/** The container's health as ps filters it: none without a check, or not running. */
function healthOf(engine: Engine, container: ContainerRow, status: ContainerStatus): string {
  return status === 'running' ? (containerHealth(engine, container.id)?.Status ?? 'none') : 'none';
}

/** Docker's Status column: `Up 5 minutes`, `Up 2 hours (Paused)`, `Up 3 seconds (healthy)`, `Exited (0) 3 seconds ago`, `Created`. */
function statusText(engine: Engine, container: ContainerRow, status: ContainerStatus, now = Date.now()): string {
  if (status === 'created') return 'Created';
  if (status === 'exited') return `Exited (${container.exitCode ?? 0}) ${humanDuration(Math.max(0, now - (container.finishedAt ?? container.createdAt)))} ago`;
  return `Up ${humanDuration(Math.max(0, now - (container.startedAt ?? container.createdAt)))}${status === 'paused' ? ' (Paused)' : healthSuffix(containerHealth(engine, container.id))}`;
}

/** One container in `docker ps` (the API's container list: types.Container). */
export interface ContainerSummary {
  readonly Id: string;
  readonly Names: readonly string[];
  readonly Image: string;
  readonly ImageID: string;
  readonly Command: string;
  readonly Created: number;
  readonly Ports: readonly PortSummary[];
  readonly Labels: Readonly<Record<string, string>>;
  readonly State: ContainerStatus;
  readonly Status: string;
  readonly HostConfig: { readonly NetworkMode: string };
  readonly NetworkSettings: Record<string, unknown>;
  readonly Mounts: readonly Record<string, unknown>[];
  /** With `size` (ps -s): the writable layer's bytes, and those plus the image's. */
  readonly SizeRw?: number;
  readonly SizeRootFs?: number;
}

/** Containers of a list with their sizes (`docker ps -s`, the API's `size=1`, `system df`). */
export async function withSizes(engine: Engine, containers: readonly ContainerSummary[]): Promise<ContainerSummary[]> {
  const sized: ContainerSummary[] = [];
  for (const container of containers) {
    const row = engine.store.db.container(container.Id);
    const sizeRw = row ? await containerSizeRw(engine, row) : 0;
    sized.push({ ...container, SizeRw: sizeRw, SizeRootFs: sizeRw + (engine.store.db.image(container.ImageID)?.size ?? 0) });
  }
  return sized;
}

function summary(engine: Engine, container: ContainerRow): ContainerSummary {
  const settings = settingsOf(container);
  const status = containerStatus(container);
  const network = networkSettingsJson(engine, container, settings);
  return {
    Id: container.id,
    Names: [`/${container.name}`],
    Image: settings.image,
    ImageID: container.imageId,
    Command: container.command.join(' '),
    Created: Math.floor(container.createdAt / 1000),
    Ports: network.ports,
    Labels: settings.labels,
    State: status,
    Status: statusText(engine, container, status),
    HostConfig: { NetworkMode: settings.networkMode },
    NetworkSettings: network.summary,
    Mounts: mountPoints(engine, settings),
  };
}

/** The filters `docker ps` (and the API's container list) take. */
export const CONTAINER_FILTERS = ['id', 'name', 'status', 'exited', 'ancestor', 'before', 'since', 'label', 'network', 'volume', 'health', 'publish', 'expose', 'is-task'] as const;
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const HEALTH = ['starting', 'healthy', 'unhealthy', 'none'];

/** `publish=` and `expose=`: a port or a range, with or without its protocol (tcp unless said). */
function portMatcher(key: string, value: string): (port: string) => boolean {
  const match = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(value);
  if (!match) throw new KilnError('INVALID_ARGUMENT', `invalid filter '${key}=${value}': use PORT[-PORT][/PROTOCOL]`);
  const low = Number(match[1]);
  const high = Number(match[2] ?? match[1]);
  const protocol = match[3] ?? 'tcp';
  return (port) => {
    const [number, proto = 'tcp'] = port.split('/');
    return proto === protocol && Number(number) >= low && Number(number) <= high;
  };
}

/**
 * `docker ps`: the containers, newest first: the running ones, or `all`, narrowed by Docker's filters;
 * `last` keeps the n newest (of all). A status or exited filter looks at every container, as Docker's.
 */
export function listContainers(engine: Engine, options: { readonly all: boolean; readonly filters: Filters; readonly last?: number }): ContainerSummary[] {
  const { filters } = options;
  const values = (key: string): readonly string[] => filters.get(key) ?? [];
  for (const status of values('status')) if (!STATUSES.includes(status)) throw new KilnError('INVALID_ARGUMENT', `invalid filter 'status=${status}'`);
  for (const code of values('exited')) if (!/^-?\d+$/.test(code)) throw new KilnError('INVALID_ARGUMENT', `invalid filter 'exited=${code}'`);
  for (const health of values('health')) if (!HEALTH.includes(health)) throw new KilnError('INVALID_ARGUMENT', `Unrecognised filter value for health: ${health}`);
  for (const task of values('is-task')) if (task !== 'true' && task !== 'false') throw new KilnError('INVALID_ARGUMENT', `Invalid filter 'is-task=${task}'`);
  const names = values('name').map((pattern) => {
    try {
      return new RegExp(pattern);
    } catch {
      throw new KilnError('INVALID_ARGUMENT', `invalid filter 'name=${pattern}': not a regular expression`);
    }
  });
  const ancestors = values('ancestor').map((reference) => engine.imageIfPresent(reference)?.id);
  const createdOf = (key: string): number | undefined => (values(key)[0] === undefined ? undefined : findContainer(engine, values(key)[0] as string).createdAt);
  const before = createdOf('before');
  const since = createdOf('since');
  const published = values('publish').map((v) => portMatcher('publish', v));
  const exposed = values('expose').map((v) => portMatcher('expose', v));
  const everything = options.all || options.last !== undefined || filters.has('status') || filters.has('exited');
  const rows = engine.store.db.containers().filter((c) => {
    const status = containerStatus(c);
    const settings = settingsOf(c);
    const networks = [settings.networkMode, ...Object.keys(settings.networks)];
    const volumes = settings.mounts.flatMap((m) => (m.type === 'volume' ? [m.source, m.target] : [m.target]));
    return (
      (everything || status === 'running' || status === 'paused') &&
      (values('id').length === 0 || values('id').some((id) => c.id.startsWith(id))) &&
      (names.length === 0 || names.some((pattern) => pattern.test(c.name))) &&
      (values('status').length === 0 || values('status').includes(status)) &&
      (values('exited').length === 0 || (status === 'exited' && values('exited').some((code) => Number(code) === (c.exitCode ?? 0)))) &&
      (ancestors.length === 0 || ancestors.includes(c.imageId)) &&
      (before === undefined || c.createdAt < before) &&
      (since === undefined || c.createdAt > since) &&
      matchLabels(settings.labels, values('label')) &&
      (values('network').length === 0 || values('network').some((n) => networks.includes(n))) &&
      (values('volume').length === 0 || values('volume').some((v) => volumes.includes(v))) &&
      (values('health').length === 0 || values('health').includes(healthOf(engine, c, status))) &&
      (values('is-task').length === 0 || values('is-task').includes('false')) &&
      (published.length === 0 || published.some((match) => Object.keys(settings.portBindings).some(match))) &&
      (exposed.length === 0 || exposed.some((match) => settings.exposedPorts.some(match)))
    );
  });
  const kept = options.last !== undefined && options.last >= 0 ? rows.slice(0, options.last) : rows;
  return kept.map((c) => summary(engine, c));
}
