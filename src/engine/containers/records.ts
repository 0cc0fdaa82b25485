/**
 * What kiln keeps of a container: its record (meta's `containers` row), the settings it was created with
 * (as JSON in the record, read back here), where its bundle and writable snapshot are, and its state as
 * Docker names it. A container is recorded when it is created, before it first runs; its record goes
 * with `rm`.
 */
import { join } from 'node:path';
import { KilnError } from '../../errors.js';
import { ownerGone } from '../../content/owner.js';
import type { ContainerRow } from '../../meta/db.js';
import type { RuntimeName } from '../../runtime/runtime.js';
import type { ResourceLimits, Ulimit } from '../../runtime/resources.js';
import type { DeviceMapping } from '../../runtime/spec.js';
import type { HealthConfig } from '../../oci/types.js';
import type { ConsoleSize } from '../../runtime/spec.js';
import { type Snapshotter, snapshotterOf } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';

/** A mount a container gets, resolved at create: a host directory, a volume (by name) or a tmpfs. */
export interface MountSetting {
  readonly type: 'bind' | 'volume' | 'tmpfs';
  /** bind: the host path; volume: the volume's name; tmpfs: ''. */
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
  /** volume: leave an empty volume empty instead of filling it from the image (`nocopy`). */
  readonly noCopy?: boolean;
  /** bind: mount propagation (rprivate unless given). */
  readonly propagation?: string;
  /** tmpfs: its size in bytes and its mode. */
  readonly tmpfsSize?: number;
  readonly tmpfsMode?: number;
  /** What asked for it: `-v` (HostConfig.Binds), `--mount` (HostConfig.Mounts), or the image's VOLUME and Config.Volumes (an anonymous volume). */
  readonly origin: 'binds' | 'mounts' | 'volumes';
}

/** A container's place on a network: the names it answers to there besides its own. */
export interface NetworkAttachment {
  readonly aliases: readonly string[];
}

/** `-p`: where a container port (`80/tcp`) is published on the host; an empty port is one the kernel picks. */
export interface PortBinding {
  readonly hostIp: string;
  readonly hostPort: string;
}

/**
 * Everything a container was created with, as `start` applies it (Docker's Config and HostConfig, the
 * parts kiln knows, in kiln's names). Stored in its record; every start builds its runtime bundle from it.
 */
export interface ContainerSettings {
  /** The image as it was named (Config.Image); the record has its ID. */
  readonly image: string;
  /** Replaces the image's Entrypoint when set ([] clears it, and then the image's Cmd is not used either). */
  readonly entrypoint?: readonly string[];
  /** Replaces the image's Cmd when not empty. */
  readonly cmd: readonly string[];
  /** On top of the image's environment. */
  readonly env: readonly string[];
  readonly user?: string;
  readonly workdir?: string;
  readonly hostname?: string;
  readonly domainname?: string;
  /** The image's labels with the request's on top, as Docker merges them. */
  readonly labels: Readonly<Record<string, string>>;
  readonly tty: boolean;
  readonly openStdin: boolean;
  readonly stdinOnce: boolean;
  readonly stopSignal?: string;
  /** The ports the image and the request expose (`80/tcp`). */
  readonly exposedPorts: readonly string[];
  /** `-v` as given (inspect shows them); `mounts` holds what they resolved to. */
  readonly binds: readonly string[];
  readonly mounts: readonly MountSetting[];
  /** `--tmpfs PATH[:OPTIONS]`. */
  readonly tmpfs: readonly string[];
  readonly readOnly: boolean;
  readonly capAdd: readonly string[];
  readonly capDrop: readonly string[];
  readonly privileged: boolean;
  /** `--security-opt` as given (see runtime/spec.ts's securityOptions). */
  readonly securityOpt: readonly string[];
  /** `--memory`, `--cpus`…, as dockerd keeps them (see runtime/spec.ts's resourceLimits). */
  readonly resources: ResourceLimits;
  /** `--ulimit`, checked (see runtime/resources.ts's checkUlimits). */
  readonly ulimits: readonly Ulimit[];
  /** `--init`: docker-init runs as the first process, the command under it. */
  readonly init: boolean;
  /** `--group-add`: more groups, names or IDs, resolved in the container at start. */
  readonly groupAdd: readonly string[];
  /** `--pid` and `--uts`: '' (its own) or host; `--ipc`: private, shareable, none or host. */
  readonly pidMode: string;
  readonly ipcMode: string;
  readonly utsMode: string;
  /** `--sysctl`, checked. */
  readonly sysctls: Readonly<Record<string, string>>;
  /** `--device`: host devices, gathered at each start (see runtime/spec.ts). */
  readonly devices: readonly DeviceMapping[];
  /** `--health-*`: over the image's HEALTHCHECK (see health.ts). */
  readonly healthcheck?: HealthConfig;
  /** `--stop-timeout` in seconds: what a stop waits unless it says. */
  readonly stopTimeout?: number;
  /** `--shm-size` in bytes; 0 is Docker's 64 MiB. */
  readonly shmSize: number;
  readonly extraHosts: readonly string[];
  readonly dns: readonly string[];
  readonly dnsSearch: readonly string[];
  readonly dnsOptions: readonly string[];
  /** `host`, `none`, `bridge` (the default network) or a network's name. */
  readonly networkMode: string;
  /** The networks it joins when it starts, by name (the first is NetworkMode's). */
  readonly networks: Readonly<Record<string, NetworkAttachment>>;
  readonly portBindings: Readonly<Record<string, readonly PortBinding[]>>;
  readonly publishAllPorts: boolean;
  /** `--rm`: removed once it has exited. */
  readonly autoRemove: boolean;
  readonly runtime: RuntimeName;
  readonly consoleSize?: ConsoleSize;
  /** HostConfig.RestartPolicy's name, recorded for inspect: kiln does not restart containers. */
  readonly restartPolicy: string;
}

/** The settings a container has unless its record says otherwise. */
function defaultSettings(row: ContainerRow): ContainerSettings {
  return {
    image: row.imageName,
    cmd: [],
    env: [],
    labels: {},
    tty: false,
    openStdin: false,
    stdinOnce: false,
    exposedPorts: [],
    binds: [],
    mounts: [],
    tmpfs: [],
    readOnly: false,
    capAdd: [],
    capDrop: [],
    privileged: false,
    securityOpt: [],
    resources: {},
    ulimits: [],
    init: false,
    groupAdd: [],
    pidMode: '',
    ipcMode: 'private',
    utsMode: '',
    sysctls: {},
    devices: [],
    shmSize: 0,
    extraHosts: [],
    dns: [],
    dnsSearch: [],
    dnsOptions: [],
    networkMode: 'host',
    networks: {},
    portBindings: {},
    publishAllPorts: false,
    autoRemove: false,
    runtime: 'runc',
    restartPolicy: 'no',
  };
}

/**
 * A container's settings, from its record. One recorded before kiln kept them runs its command as it
 * ran, on the host network.
 */
export function settingsOf(row: ContainerRow): ContainerSettings {
  const stored = JSON.parse(row.settings) as Partial<ContainerSettings>;
  return stored.image === undefined ? { ...defaultSettings(row), entrypoint: [], cmd: row.command } : { ...defaultSettings(row), ...stored };
}

/** Finds a container by name, full ID or unique ID prefix. */
export function findContainer(engine: Engine, nameOrId: string): ContainerRow {
  const all = engine.store.db.containers();
  const byName = all.find((c) => c.name === nameOrId || c.name === nameOrId.replace(/^\//, ''));
  if (byName) return byName;
  const byId = /^[a-f0-9]+$/.test(nameOrId) ? all.filter((c) => c.id.startsWith(nameOrId)) : [];
  if (byId.length > 1) throw new KilnError('CONFLICT', `multiple containers found with provided prefix: ${nameOrId}`);
  if (byId[0]) return byId[0];
  throw new KilnError('NOT_FOUND', `No such container: ${nameOrId}`);
}

/** The container's record now (after a wait, a start…), or undefined once it is removed. */
export function currentRow(engine: Engine, id: string): ContainerRow | undefined {
  return engine.store.db.container(id);
}

/** True while a container's process runs: its starter or supervisor lives and no exit is recorded. */
export function isRunning(container: ContainerRow): boolean {
  return container.exitCode === null && container.pid !== null && !ownerGone(container.pid);
}

/** Docker's name for the state a container is in. */
export type ContainerStatus = 'created' | 'running' | 'paused' | 'exited';

export function containerStatus(container: ContainerRow): ContainerStatus {
  if (isRunning(container)) return container.paused ? 'paused' : 'running';
  return container.startedAt === null && container.exitCode === null && container.pid === null ? 'created' : 'exited';
}

/** How often a waiter looks at a container's record and log (its supervisor, another process, writes them). */
export const FOLLOW_MS = 50;

/** The key of a container's writable snapshot. */
export function containerKey(id: string): string {
  return `container:${id}`;
}

/** A container's bundle: its runtime spec, mounted root filesystem, log and generated files. */
export function containerBundle(engine: Engine, id: string): string {
  return join(engine.store.paths.containers, id);
}

/** The file in a container's bundle naming the pid of the kiln process that made it (see abandonedBundles). */
export const OWNER_FILE = 'owner';

/** The store's snapshotter of the driver a container was made with. */
export function snapshotterFor(engine: Engine, container: Pick<ContainerRow, 'driver'>): Snapshotter {
  return snapshotterOf(engine.store, container.driver === 'vfs' ? 'vfs' : 'overlay');
}

/** Refuses a name Docker would refuse for a new container: badly formed, or taken. */
export function checkNewContainerName(engine: Engine, name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new KilnError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  if (engine.store.db.containers().some((c) => c.name === name)) throw new KilnError('CONFLICT', `Conflict. The container name "/${name}" is already in use; remove that container or choose another name`);
}
