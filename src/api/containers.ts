/**
 * The container routes: create (a recorded container), start (run by a detached kiln supervisor that
 * writes its output to the container's log), and the verbs after. `attach` and `logs` follow the log as
 * Docker's multiplexed stream, `wait` watches the record.
 */
import type { ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError } from '../errors.js';
import { CONTAINER_FILTERS, type ContainerPathStat, type ContainerRequest, FOLLOW_MS, type FollowOptions, type LogWrite, type MountRequest, type WaitCondition, archiveContainerPath, containerChanges, containerStats, containerIo, containerStatus, containerStdin, createContainer, exportContainer, extractToContainer, findContainer, followLogs, inspectContainer, killContainer, listContainers, logTime, pauseContainer, pruneContainers, removeContainer, renameContainer, resizeContainer, startContainer, statContainerPath, stopContainer, tailLines, topContainer, timestamped, unpauseContainer, waitContainer, withSizes } from '../engine/containers.js';
import type { Engine } from '../engine/engine.js';
import { networkModeOf } from '../engine/networks.js';
import type { RuntimeName } from '../runtime/runtime.js';
import type { Driver } from '../snapshot/snapshotter.js';
import type { Decoded } from './json.js';
import { containerConfig, filtersParameter, flag, integer, readJsonBody, ulimitsOf } from './request.js';
import type { Call } from './server.js';

/** A create request as decoded: container.Config's fields, HostConfig and NetworkingConfig. */
type CreateRequest = Decoded<typeof containerConfig>;

/** stop's and restart's `t` (seconds before SIGKILL) and `signal`. */
function stopQuery(query: URLSearchParams): { timeout?: number; signal?: string } {
  const timeout = integer(query, 't');
  const signal = query.get('signal');
  return { ...(timeout !== undefined ? { timeout } : {}), ...(signal ? { signal } : {}) };
}

/** HostConfig settings kiln does not apply, and why: named in create's Warnings (the docker CLI prints them). */
const IGNORED_SETTINGS: Readonly<Record<string, string>> = {
  PortBindings: 'containers share the host network (-p): the process listens on the host directly; publish from --network bridge or a network of yours',
  PublishAllPorts: 'containers share the host network (-P): the process listens on the host directly; publish from --network bridge or a network of yours',
  VolumesFrom: '--volumes-from is not supported',
};

/** Warnings for each setting of the request kiln does not apply (a zero or empty value is no setting). */
function ignoredSettings(request: CreateRequest): string[] {
  const hostConfig: Readonly<Record<string, unknown>> = request.HostConfig ?? {};
  const isSet = (value: unknown): boolean =>
    value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && !(Array.isArray(value) && value.length === 0) && !(typeof value === 'object' && Object.keys(value).length === 0);
  // Ports are published from a network namespace of the container's own; on the host's (kiln's default) they are not.
  const mode = networkModeOf(request.HostConfig?.NetworkMode);
  const published = (key: string): boolean => (key === 'PortBindings' || key === 'PublishAllPorts') && mode !== 'host' && mode !== 'none';
  const warnings = Object.entries(IGNORED_SETTINGS).filter(([key]) => isSet(hostConfig[key]) && !published(key)).map(([key, why]) => `kiln ignores HostConfig.${key}: ${why}`);
  const restart = request.HostConfig?.RestartPolicy?.Name;
  if (restart && restart !== 'no') warnings.push(`kiln ignores HostConfig.RestartPolicy ${JSON.stringify(restart)}: containers are not restarted`);
  return warnings;
}

/** A create request in the engine's terms. */
function containerRequest(body: CreateRequest): ContainerRequest {
  const host = body.HostConfig ?? {};
  const [height, width] = host.ConsoleSize ?? [];
  const mounts: MountRequest[] = (host.Mounts ?? []).map((m) => ({
    type: m.Type ?? '',
    ...(m.Source ? { source: m.Source } : {}),
    target: m.Target ?? '',
    readOnly: m.ReadOnly ?? false,
    ...(m.BindOptions?.Propagation ? { propagation: m.BindOptions.Propagation } : {}),
    ...(m.VolumeOptions?.NoCopy ? { noCopy: true } : {}),
    ...(m.TmpfsOptions?.SizeBytes ? { tmpfsSize: m.TmpfsOptions.SizeBytes } : {}),
    ...(m.TmpfsOptions?.Mode ? { tmpfsMode: m.TmpfsOptions.Mode } : {}),
  }));
  const networks = Object.fromEntries(Object.entries(body.NetworkingConfig?.EndpointsConfig ?? {}).map(([name, endpoint]) => [name, { aliases: endpoint.Aliases ?? [] }]));
  return {
    image: body.Image ?? '',
    ...(body.Entrypoint !== undefined ? { entrypoint: body.Entrypoint } : {}),
    cmd: body.Cmd ?? [],
    env: body.Env ?? [],
    ...(body.User ? { user: body.User } : {}),
    ...(body.WorkingDir ? { workdir: body.WorkingDir } : {}),
    ...(body.Hostname ? { hostname: body.Hostname } : {}),
    ...(body.Domainname ? { domainname: body.Domainname } : {}),
    labels: body.Labels ?? {},
    tty: body.Tty ?? false,
    openStdin: body.OpenStdin ?? false,
    stdinOnce: body.StdinOnce ?? false,
    ...(body.StopSignal ? { stopSignal: body.StopSignal } : {}),
    ...(body.StopTimeout !== undefined && body.StopTimeout !== null ? { stopTimeout: body.StopTimeout } : {}),
    ...(body.Healthcheck ? { healthcheck: body.Healthcheck } : {}),
    exposedPorts: Object.keys(body.ExposedPorts ?? {}),
    volumes: Object.keys(body.Volumes ?? {}),
    binds: host.Binds ?? [],
    mounts,
    tmpfs: Object.entries(host.Tmpfs ?? {}).map(([path, options]) => (options ? `${path}:${options}` : path)),
    readOnly: host.ReadonlyRootfs ?? false,
    capAdd: host.CapAdd ?? [],
    capDrop: host.CapDrop ?? [],
    privileged: host.Privileged ?? false,
    securityOpt: host.SecurityOpt ?? [],
    shmSize: host.ShmSize ?? 0,
    ulimits: ulimitsOf(host.Ulimits),
    ...(host.Init ? { init: true } : {}),
    groupAdd: host.GroupAdd ?? [],
    pidMode: host.PidMode ?? '',
    ipcMode: host.IpcMode ?? '',
    utsMode: host.UTSMode ?? '',
    sysctls: host.Sysctls ?? {},
    devices: (host.Devices ?? []).map((d) => ({ pathOnHost: d.PathOnHost ?? '', pathInContainer: d.PathInContainer || (d.PathOnHost ?? ''), cgroupPermissions: d.CgroupPermissions ?? '' })),
    resources: {
      memory: host.Memory ?? 0,
      memorySwap: host.MemorySwap ?? 0,
      memoryReservation: host.MemoryReservation ?? 0,
      nanoCpus: host.NanoCpus ?? 0,
      cpuShares: host.CpuShares ?? 0,
      cpuPeriod: host.CpuPeriod ?? 0,
      cpuQuota: host.CpuQuota ?? 0,
      cpusetCpus: host.CpusetCpus ?? '',
      cpusetMems: host.CpusetMems ?? '',
      ...(host.PidsLimit !== undefined && host.PidsLimit !== null ? { pidsLimit: host.PidsLimit } : {}),
    },
    extraHosts: host.ExtraHosts ?? [],
    dns: host.Dns ?? [],
    dnsSearch: host.DnsSearch ?? [],
    dnsOptions: host.DnsOptions ?? [],
    ...(host.NetworkMode ? { networkMode: host.NetworkMode } : {}),
    networks,
    portBindings: Object.fromEntries(Object.entries(host.PortBindings ?? {}).map(([port, bindings]) => [port, bindings.map((b) => ({ hostIp: b.HostIp ?? '', hostPort: b.HostPort ?? '' }))])),
    publishAllPorts: host.PublishAllPorts ?? false,
    autoRemove: host.AutoRemove ?? false,
    ...(height && width ? { consoleSize: { height, width } } : {}),
    ...(host.RestartPolicy?.Name ? { restartPolicy: host.RestartPolicy.Name } : {}),
  };
}

export interface ContainerRouteOptions {
  readonly runtime: RuntimeName;
  readonly storageDriver?: Driver;
}

export class Containers {
  /** How many attach/logs streams of this server follow each container: `wait` answers once they have sent all. */
  private readonly following = new Map<string, number>();

  /** `stopping`: aborted when the server stops, which ends every wait and every stream that follows a container. */
  constructor(
    private readonly options: ContainerRouteOptions,
    private readonly stopping: AbortSignal,
  ) {}

  async create({ engine, req, query, res }: Call): Promise<void> {
    const body = await readJsonBody(req, containerConfig, { contentType: true });
    if (!body || Object.keys(body).every((key) => key === 'HostConfig' || key === 'NetworkingConfig')) throw new KilnError('INVALID_ARGUMENT', 'Config cannot be empty in order to create a container');
    if (!body.Image) throw new KilnError('INVALID_ARGUMENT', 'config.Image is required');
    const name = query.get('name');
    const platform = query.get('platform');
    const { id } = await createContainer(engine, { ...containerRequest(body), ...(platform ? { platform } : {}) }, { ...(name ? { name: name.replace(/^\//, '') } : {}), runtime: this.options.runtime, ...(this.options.storageDriver ? { storageDriver: this.options.storageDriver } : {}), notice: () => undefined });
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ Id: id, Warnings: ignoredSettings(body) }));
  }

  /** `docker start`: 204, or 304 when it runs already, as dockerd answers. */
  async start({ engine, params, res }: Call): Promise<void> {
    res.writeHead((await startContainer(engine, params[0] ?? '')) ? 204 : 304).end();
  }

  /** Resolves when no attach or logs stream of this server follows the container any more. */
  private async drained(id: string): Promise<void> {
    while ((this.following.get(id) ?? 0) > 0) await delay(FOLLOW_MS);
  }

  /** `POST /containers/{id}/wait`: the exit code once the `condition` is met (not-running, next-exit, removed). */
  async wait({ engine, params, query, res }: Call): Promise<void> {
    const condition = query.get('condition') || 'not-running';
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new KilnError('INVALID_ARGUMENT', `invalid condition: ${JSON.stringify(condition)}`);
    const { id } = findContainer(engine, params[0] ?? '');
    // Like dockerd: the status goes out at once (the client waits for it before it starts the
    // container), the body when the condition is met.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    try {
      const code = await waitContainer(engine, id, condition as WaitCondition, this.stopping);
      if (code === undefined) throw new KilnError('FAILED', this.stopping.aborted ? 'the server is stopping' : `container ${id} is gone`);
      // Attached streams send the last output first: a client that stops reading at the exit status
      // (as dockerode's run does) must not lose it.
      await this.drained(id);
      res.end(JSON.stringify({ StatusCode: code, Error: null }));
    } catch (err) {
      res.end(JSON.stringify({ StatusCode: -1, Error: { Message: err instanceof Error ? err.message : String(err) } }));
    }
  }

  /** Follows the container's log until it has exited and all is sent. */
  private async follow(engine: Engine, id: string, write: LogWrite, options: FollowOptions): Promise<void> {
    this.following.set(id, (this.following.get(id) ?? 0) + 1);
    try {
      await followLogs(engine, id, write, { ...options, signal: this.stopping });
    } finally {
      this.following.set(id, (this.following.get(id) ?? 1) - 1);
    }
  }

  /**
   * `POST /containers/{id}/attach`: the container's output until it exits, as multiplexed frames (raw
   * for a terminal). With `Upgrade: tcp` the connection is hijacked (101) and, with `stdin=1`, what the
   * client sends goes to the container's stdin until it closes its side; without, the output is the body.
   * Attached to a container that does not run (docker run attaches before start), it waits for its start.
   */
  async attach(engine: Engine, nameOrId: string, query: URLSearchParams, out: { write(data: Buffer): unknown; end(): unknown; upgraded: boolean; head(text: string): unknown; input?: Readable }): Promise<void> {
    const container = findContainer(engine, nameOrId);
    const { id } = container;
    out.head(out.upgraded ? 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n' : '');
    let stdin: Promise<Writable | undefined> | undefined;
    try {
      if (out.input && flag(query, 'stdin')) stdin = this.feedStdin(engine, id, out.input);
      const { tty } = containerIo(engine, id);
      const write: LogWrite = tty ? (_stream, data) => out.write(data) : (stream, data) => out.write(frame(stream === 'stdout' ? 1 : 2, data));
      // What comes next, unless it asks for the logs too.
      await this.follow(engine, id, write, { follow: flag(query, 'stream', true), stdout: flag(query, 'stdout'), stderr: flag(query, 'stderr'), onlyNew: !flag(query, 'logs'), waitForStart: true });
    } finally {
      (await stdin)?.destroy();
      out.end();
    }
  }

  /** Copies a hijacked connection's input to the container's stdin; dropped when it keeps none open. */
  private async feedStdin(engine: Engine, id: string, input: Readable): Promise<Writable | undefined> {
    const stdin = await containerStdin(engine, id).catch(() => undefined);
    if (!stdin) {
      input.resume();
      return undefined;
    }
    stdin.on('error', () => input.resume()); // the container stopped reading: drop the rest
    input.pipe(stdin);
    return stdin;
  }

  attachPlain({ engine, params, query, res }: Call): Promise<void> {
    return this.attach(engine, params[0] ?? '', query, plainStream(res));
  }

  async resize({ engine, params, query, res }: Call): Promise<void> {
    const size = consoleSize(query);
    const container = findContainer(engine, params[0] ?? '');
    if (containerStatus(container) === 'created') throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
    await resizeContainer(engine, container.id, this.options.runtime, size);
    res.writeHead(200).end();
  }

  /** `GET /containers/{id}/logs`: stdout and stderr in the order they came; `timestamps`, `since`, `until`, `tail`, `follow`. */
  async logs({ engine, params, query, res }: Call): Promise<void> {
    const [stdout, stderr] = [flag(query, 'stdout'), flag(query, 'stderr')];
    if (!stdout && !stderr) throw new KilnError('INVALID_ARGUMENT', 'Bad parameters: you must choose at least one stream');
    const tail = tailLines(query.get('tail') ?? 'all');
    const since = logTime(query.get('since'));
    const until = logTime(query.get('until'));
    const { id } = findContainer(engine, params[0] ?? '');
    const { tty } = containerIo(engine, id);
    res.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
    res.flushHeaders(); // as dockerd: a client following a silent container knows it is there
    const raw: LogWrite = (stream, data) => res.write(tty ? data : frame(stream === 'stdout' ? 1 : 2, data));
    const write = flag(query, 'timestamps') ? timestamped(raw) : raw;
    await this.follow(engine, id, write, { follow: flag(query, 'follow'), stdout, stderr, ...(tail !== undefined ? { tail } : {}), ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) });
    res.end();
  }

  async remove({ engine, params, query, res }: Call): Promise<void> {
    await removeContainer(engine, params[0] ?? '', flag(query, 'force'), flag(query, 'v'));
    res.writeHead(204).end();
  }

  async list({ engine, query, res }: Call): Promise<void> {
    const limit = integer(query, 'limit') ?? 0;
    const listed = listContainers(engine, { all: flag(query, 'all'), filters: filtersParameter(query, CONTAINER_FILTERS), ...(limit > 0 ? { last: limit } : {}) });
    const rows = flag(query, 'size') ? await withSizes(engine, listed) : listed;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows));
  }

  inspect({ engine, params, res }: Call): void {
    const body = JSON.stringify(inspectContainer(engine, params[0] ?? ''));
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  }

  /**
   * `docker cp`'s archive routes: HEAD describes a path (in the X-Docker-Container-Path-Stat header), GET
   * sends it as a tar, PUT unpacks a tar into a directory (owners root's unless copyUIDGID). The client
   * renames and places what it copies itself.
   */
  async archive({ engine, params, query, req, res }: Call): Promise<void> {
    const id = params[0] ?? '';
    const path = query.get('path');
    if (!path) throw new KilnError('INVALID_ARGUMENT', 'the archive routes need a path');
    const statHeader = (stat: ContainerPathStat): string => Buffer.from(JSON.stringify({ name: stat.name, size: stat.size, mode: stat.mode, mtime: stat.mtime, linkTarget: stat.linkTarget })).toString('base64');
    if (req.method === 'PUT') {
      await extractToContainer(engine, id, path, req, flag(query, 'copyUIDGID'));
      res.writeHead(200).end();
    } else if (req.method === 'HEAD') {
      res.writeHead(200, { 'x-docker-container-path-stat': statHeader(await statContainerPath(engine, id, path)) }).end();
    } else {
      await archiveContainerPath(engine, id, path, async (tar, stat) => {
        res.writeHead(200, { 'content-type': 'application/x-tar', 'x-docker-container-path-stat': statHeader(stat) });
        await pipeline(tar, res);
      });
    }
  }

  /** `GET /containers/{id}/export`: the container's filesystem as a tar. */
  async export({ engine, params, res }: Call): Promise<void> {
    await exportContainer(engine, params[0] ?? '', async (tar) => {
      res.writeHead(200, { 'content-type': 'application/x-tar' });
      await pipeline(tar, res);
    });
  }

  rename({ engine, params, query, res }: Call): void {
    const name = query.get('name') ?? '';
    if (name === '') throw new KilnError('INVALID_ARGUMENT', 'Neither old nor new names may be empty');
    renameContainer(engine, params[0] ?? '', name);
    res.writeHead(204).end();
  }

  /** `docker restart`: stop (if it runs) as `stop` does, then start. */
  async restart({ engine, params, query, res }: Call): Promise<void> {
    const stop = stopQuery(query);
    const { id } = findContainer(engine, params[0] ?? '');
    await stopContainer(engine, id, stop);
    await startContainer(engine, id);
    res.writeHead(204).end();
  }

  /** `docker stop`: 204 once stopped, 304 when it was not running (as dockerd answers). */
  async stop({ engine, params, query, res }: Call): Promise<void> {
    const stopped = await stopContainer(engine, params[0] ?? '', stopQuery(query));
    res.writeHead(stopped ? 204 : 304).end();
  }

  async kill({ engine, params, query, res }: Call): Promise<void> {
    await killContainer(engine, params[0] ?? '', query.get('signal') || 'KILL');
    res.writeHead(204).end();
  }

  /** `docker top`: `ps_args` as the host's ps takes them. */
  async top({ engine, params, query, res }: Call): Promise<void> {
    const top = await topContainer(engine, params[0] ?? '', query.get('ps_args') || undefined);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(top));
  }

  /** `docker stats`: one JSON document, or one a line each second until the client goes (`stream`, the default). */
  async stats({ engine, params, query, res }: Call): Promise<void> {
    const gone = new AbortController();
    const end = (): void => gone.abort();
    res.once('close', end);
    this.stopping.addEventListener('abort', end, { once: true });
    try {
      await containerStats(engine, params[0] ?? '', (stats) => {
        if (!res.headersSent) {
          res.writeHead(200, { 'content-type': 'application/json' });
        }
        res.write(`${JSON.stringify(stats)}\n`);
      }, { stream: flag(query, 'stream', true), oneShot: flag(query, 'one-shot'), signal: gone.signal });
      res.end();
    } finally {
      res.off('close', end);
      this.stopping.removeEventListener('abort', end);
    }
  }

  async pause({ engine, params, res }: Call): Promise<void> {
    await pauseContainer(engine, params[0] ?? '');
    res.writeHead(204).end();
  }

  async unpause({ engine, params, res }: Call): Promise<void> {
    await unpauseContainer(engine, params[0] ?? '');
    res.writeHead(204).end();
  }

  /** `docker diff`: Kind 0 changed, 1 added, 2 deleted. */
  async changes({ engine, params, res }: Call): Promise<void> {
    const kinds = { C: 0, A: 1, D: 2 } as const;
    const changes = await containerChanges(engine, params[0] ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(changes.map((c) => ({ Path: c.path, Kind: kinds[c.kind] }))));
  }

  async prune({ engine, query, res }: Call): Promise<void> {
    // dockerd's filters here; kiln prunes every stopped container, so it refuses to prune fewer than asked.
    const filters = filtersParameter(query, ['until', 'label', 'label!']);
    if (filters.size > 0) throw new KilnError('UNSUPPORTED', `container prune with filters (${[...filters.keys()].join(', ')}) is not supported: kiln removes every stopped container`);
    const removed = await pruneContainers(engine);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ContainersDeleted: removed, SpaceReclaimed: 0 }));
  }
}

/** A raw stream as a plain response's body (no hijack): attach's and exec's output when not upgraded. */
export function plainStream(res: ServerResponse): { upgraded: false; head(): void; write(data: Buffer): unknown; end(): unknown } {
  return {
    upgraded: false,
    head: () => {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
      res.flushHeaders();
    },
    write: (data) => res.write(data),
    end: () => res.end(),
  };
}

/** One frame of Docker's multiplexed stream: [stream, 0, 0, 0, length (big endian)] then the bytes. */
export function frame(stream: 1 | 2, data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

/** `h` and `w`, a terminal's size (resize of a container or an exec): dockerd's integers, within a terminal's range. */
export function consoleSize(query: URLSearchParams): { height: number; width: number } {
  const [height, width] = [integer(query, 'h', { required: true }) ?? 0, integer(query, 'w', { required: true }) ?? 0];
  if (![height, width].every((n) => n >= 0 && n <= 65535)) throw new KilnError('INVALID_ARGUMENT', 'resize needs h and w, whole numbers from 0 to 65535');
  return { height, width };
}

