/**
 * The container routes `docker run`, `ps`, `logs`, `rm` need. A created container is only a request
 * kept here until `start`, which runs it detached (a kiln supervisor process writes its output to the
 * bundle's logs); `attach` and `logs` follow those logs as Docker's multiplexed stream, `wait` watches
 * the record. Containers with AutoRemove are removed by this server when they exit.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError } from '../errors.js';
import { CONTAINER_FILTERS, type ContainerPathStat, FOLLOW_MS, type FollowOptions, archiveContainerPath, containerChanges, containerIo, containerJson, containerStdin, exitCodeOf, extractToContainer, findContainer, followLogs, inspectContainer, isRunning, killContainer, listContainers, pruneContainers, removeContainer, renameContainer, resizeContainer, startContainer, statContainerPath, stopContainer, tailLines } from '../engine/containers.js';
import type { Engine } from '../engine/engine.js';
import { checkNewContainerName, runContainer } from '../engine/run.js';
import type { ContainerRow } from '../meta/db.js';
import type { RuntimeName } from '../runtime/runtime.js';
import type { Driver } from '../snapshot/snapshotter.js';
import type { Decoded } from './json.js';
import { containerConfig, filtersParameter, flag, integer, readJsonBody } from './request.js';
import type { Call } from './server.js';

/** A create request as decoded: container.Config's fields and HostConfig. */
type CreateRequest = Decoded<typeof containerConfig>;

/** stop's and restart's `t` (seconds before SIGKILL) and `signal`. */
function stopQuery(query: URLSearchParams): { timeout?: number; signal?: string } {
  const timeout = integer(query, 't');
  const signal = query.get('signal');
  return { ...(timeout !== undefined ? { timeout } : {}), ...(signal ? { signal } : {}) };
}

/** HostConfig settings kiln does not apply, and why: named in create's Warnings (the docker CLI prints them). */
const IGNORED_SETTINGS: Readonly<Record<string, string>> = {
  PortBindings: 'containers share the host network (-p): the process listens on the host directly',
  PublishAllPorts: 'containers share the host network (-P): the process listens on the host directly',
  Memory: 'resource limits (--memory) are not applied',
  MemorySwap: 'resource limits (--memory-swap) are not applied',
  NanoCpus: 'resource limits (--cpus) are not applied',
  CpuShares: 'resource limits (--cpu-shares) are not applied',
  CpuQuota: 'resource limits (--cpu-quota) are not applied',
  CpusetCpus: 'resource limits (--cpuset-cpus) are not applied',
  PidsLimit: 'resource limits (--pids-limit) are not applied',
  Devices: 'host devices (--device) are not passed in',
  Dns: 'the host resolv.conf is used (--dns)',
  DnsSearch: 'the host resolv.conf is used (--dns-search)',
  Mounts: 'only -v HOST:CONTAINER binds are mounted (--mount)',
  VolumesFrom: '--volumes-from is not supported',
  SecurityOpt: 'security options (--security-opt) are not applied',
};

/** Warnings for each setting of the request kiln does not apply (a zero or empty value is no setting). */
function ignoredSettings(request: CreateRequest): string[] {
  const hostConfig: Readonly<Record<string, unknown>> = request.HostConfig ?? {};
  const isSet = (value: unknown): boolean =>
    value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && !(Array.isArray(value) && value.length === 0) && !(typeof value === 'object' && Object.keys(value).length === 0);
  const warnings = Object.entries(IGNORED_SETTINGS).filter(([key]) => isSet(hostConfig[key])).map(([key, why]) => `kiln ignores HostConfig.${key}: ${why}`);
  const restart = request.HostConfig?.RestartPolicy?.Name;
  if (restart && restart !== 'no') warnings.push(`kiln ignores HostConfig.RestartPolicy ${JSON.stringify(restart)}: containers are not restarted`);
  return warnings;
}

interface Pending {
  readonly name: string;
  readonly request: CreateRequest;
  /** Resolved once start has made the container record (attach waits for it). */
  readonly started: Promise<void>;
  readonly markStarted: (err?: unknown) => void;
}

export interface ContainerRoutes {
  readonly runtime: RuntimeName;
  readonly storageDriver?: Driver;
}

export class Containers {
  private readonly pending = new Map<string, Pending>();
  /** Exit codes of AutoRemove containers this server removed, for `wait`. */
  private readonly removedExits = new Map<string, number>();
  /** How many attach/logs streams follow each container: an AutoRemove waits for them to drain. */
  private readonly following = new Map<string, number>();

  /** `stopping`: aborted when the server stops, which ends every wait and every stream that follows a container. */
  constructor(
    private readonly options: ContainerRoutes,
    private readonly stopping: AbortSignal,
  ) {}

  private resolve(engine: Engine, nameOrId: string): { id: string; row?: ContainerRow; pending?: Pending } {
    for (const [id, pending] of this.pending) if (id.startsWith(nameOrId) || pending.name === nameOrId.replace(/^\//, '')) return { id, pending };
    const row = findContainer(engine, nameOrId);
    return { id: row.id, row };
  }

  async create({ engine, req, query, res }: Call): Promise<void> {
    const body = await readJsonBody(req, containerConfig, { contentType: true });
    if (!body || Object.keys(body).every((key) => key === 'HostConfig')) throw new KilnError('INVALID_ARGUMENT', 'Config cannot be empty in order to create a container');
    if (!body.Image) throw new KilnError('INVALID_ARGUMENT', 'config.Image is required');
    engine.image(body.Image); // 404 now, as Docker answers create for a missing image
    const name = query.get('name') || `kiln_${randomBytes(4).toString('hex')}`;
    checkNewContainerName(engine, name);
    if ([...this.pending.values()].some((p) => p.name === name)) throw new KilnError('CONFLICT', `Conflict. The container name "/${name}" is already in use`);
    const id = randomBytes(32).toString('hex');
    let markStarted!: (err?: unknown) => void;
    const started = new Promise<void>((resolve, reject) => (markStarted = (err) => (err === undefined ? resolve() : reject(err instanceof Error ? err : new Error('the container did not start')))));
    started.catch(() => undefined);
    this.pending.set(id, { name, request: body, started, markStarted });
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ Id: id, Warnings: ignoredSettings(body) }));
  }

  async start({ engine, params, res }: Call): Promise<void> {
    const { id, pending } = this.resolve(engine, params[0] ?? '');
    if (!pending) {
      // A container that ran before starts again (204), one that runs is left alone (304), as dockerd does.
      res.writeHead((await startContainer(engine, id, this.options.runtime)) ? 204 : 304).end();
      return;
    }
    const request = pending.request;
    const entrypoint = request.Entrypoint;
    const network = request.HostConfig?.NetworkMode === 'none' ? 'none' : 'host';
    const [height, width] = request.HostConfig?.ConsoleSize ?? [];
    const consoleSize = height && width ? { height, width } : undefined;
    try {
      await runContainer(engine, request.Image ?? '', {
        id,
        name: pending.name,
        cmd: [...(entrypoint && entrypoint.length > 1 ? entrypoint.slice(1) : []), ...(request.Cmd ?? [])],
        ...(entrypoint !== undefined ? { entrypoint: entrypoint[0] ?? '' } : {}),
        env: request.Env ?? [],
        volumes: request.HostConfig?.Binds ?? [],
        ...(request.WorkingDir ? { workdir: request.WorkingDir } : {}),
        ...(request.User ? { user: request.User } : {}),
        ...(request.Hostname ? { hostname: request.Hostname } : {}),
        extraHosts: request.HostConfig?.ExtraHosts ?? [],
        readOnly: request.HostConfig?.ReadonlyRootfs ?? false,
        tmpfs: Object.entries(request.HostConfig?.Tmpfs ?? {}).map(([path, options]) => (options ? `${path}:${options}` : path)),
        capAdd: request.HostConfig?.CapAdd ?? [],
        capDrop: request.HostConfig?.CapDrop ?? [],
        privileged: request.HostConfig?.Privileged ?? false,
        network,
        remove: false,
        detach: true,
        tty: request.Tty ?? false,
        ...(consoleSize ? { consoleSize } : {}),
        interactive: request.OpenStdin ?? false,
        stdinOnce: request.StdinOnce ?? false,
        runtime: this.options.runtime,
        ...(this.options.storageDriver ? { storageDriver: this.options.storageDriver } : {}),
        notice: () => undefined,
      });
      pending.markStarted();
    } catch (err) {
      pending.markStarted(err);
      throw err;
    } finally {
      this.pending.delete(id);
    }
    if (request.HostConfig?.AutoRemove) void this.removeWhenDone(engine, id);
    res.writeHead(204).end();
  }

  private async exitCode(engine: Engine, id: string): Promise<number> {
    const code = (await exitCodeOf(engine, id)) ?? this.removedExits.get(id);
    if (code === undefined) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
    return code;
  }

  private async removeWhenDone(engine: Engine, id: string): Promise<void> {
    try {
      const code = await this.exitCode(engine, id);
      this.removedExits.set(id, code);
      await this.drained(id);
      await removeContainer(engine, id, true);
    } catch {
      // Removed by someone else meanwhile: nothing left to do.
    }
  }

  /** Resolves when no attach or logs stream follows the container any more. */
  private async drained(id: string): Promise<void> {
    while ((this.following.get(id) ?? 0) > 0) await delay(FOLLOW_MS);
  }

  async wait({ engine, params, res }: Call): Promise<void> {
    const { id, pending } = this.resolve(engine, params[0] ?? '');
    // Like dockerd: the status goes out at once (the client waits for it before it starts the
    // container), the body when the container has exited.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    try {
      if (pending) await pending.started;
      const code = await untilAborted(this.exitCode(engine, id), this.stopping);
      // Attached streams send the last output first: a client that stops reading at the exit status
      // (as dockerode's run does) must not lose it.
      await this.drained(id);
      res.end(JSON.stringify({ StatusCode: code, Error: null }));
    } catch (err) {
      res.end(JSON.stringify({ StatusCode: -1, Error: { Message: err instanceof Error ? err.message : String(err) } }));
    }
  }

  /** Follows the container's two logs (streams 1 and 2) until it has exited and all is sent. */
  private async follow(engine: Engine, id: string, write: (stream: 1 | 2, data: Buffer) => unknown, options: FollowOptions): Promise<void> {
    this.following.set(id, (this.following.get(id) ?? 0) + 1);
    try {
      await followLogs(engine, id, (stream, data) => write(stream === 'stdout' ? 1 : 2, data), { ...options, signal: this.stopping });
    } finally {
      this.following.set(id, (this.following.get(id) ?? 1) - 1);
    }
  }

  /**
   * `POST /containers/{id}/attach`: the container's output until it exits, as multiplexed frames (raw
   * for a terminal). With `Upgrade: tcp` the connection is hijacked (101) and, with `stdin=1`, what the
   * client sends goes to the container's stdin until it closes its side; without, the output is the body.
   */
  async attach(engine: Engine, nameOrId: string, query: URLSearchParams, out: { write(data: Buffer): unknown; end(): unknown; upgraded: boolean; head(text: string): unknown; input?: Readable }): Promise<void> {
    const { id, pending } = this.resolve(engine, nameOrId);
    out.head(out.upgraded ? 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n' : '');
    let stdin: Promise<Writable | undefined> | undefined;
    try {
      if (pending) await pending.started;
      if (out.input && flag(query, 'stdin')) stdin = this.feedStdin(engine, id, out.input);
      const { tty } = await containerIo(engine, id);
      const write = tty ? (_stream: 1 | 2, data: Buffer) => out.write(data) : (stream: 1 | 2, data: Buffer) => out.write(frame(stream, data));
      // `docker run` attaches before start and gets everything; a later attach gets what comes next, unless it asks for the logs.
      await this.follow(engine, id, write, { follow: flag(query, 'stream', true), stdout: flag(query, 'stdout'), stderr: flag(query, 'stderr'), onlyNew: !pending && !flag(query, 'logs') });
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
    const { id, pending } = this.resolve(engine, params[0] ?? '');
    if (pending) throw new KilnError('CONFLICT', `Container ${id} is not running`);
    await resizeContainer(engine, id, this.options.runtime, size);
    res.writeHead(200).end();
  }

  async logs({ engine, params, query, res }: Call): Promise<void> {
    const [stdout, stderr] = [flag(query, 'stdout'), flag(query, 'stderr')];
    if (!stdout && !stderr) throw new KilnError('INVALID_ARGUMENT', 'Bad parameters: you must choose at least one stream');
    const tail = tailLines(query.get('tail') ?? 'all');
    const { id } = this.resolve(engine, params[0] ?? '');
    const { tty } = await containerIo(engine, id);
    res.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
    res.flushHeaders(); // as dockerd: a client following a silent container knows it is there
    await this.follow(engine, id, (stream, data) => res.write(tty ? data : frame(stream, data)), { follow: flag(query, 'follow'), stdout, stderr, ...(tail !== undefined ? { tail } : {}) });
    res.end();
  }

  async remove({ engine, params, query, res }: Call): Promise<void> {
    const { id, pending } = this.resolve(engine, params[0] ?? '');
    if (pending) this.pending.delete(id);
    else await removeContainer(engine, id, flag(query, 'force'));
    res.writeHead(204).end();
  }

  list({ engine, query, res }: Call): void {
    const limit = integer(query, 'limit') ?? 0;
    const rows = listContainers(engine, { all: flag(query, 'all'), filters: filtersParameter(query, CONTAINER_FILTERS), ...(limit > 0 ? { last: limit } : {}) });
    const body = rows.map((c) => ({
      Id: c.id,
      Names: [`/${c.name}`],
      Image: c.imageName,
      ImageID: c.imageId,
      Command: c.command.join(' '),
      Created: Math.floor(c.createdAt / 1000),
      State: isRunning(c) ? 'running' : 'exited',
      Status: isRunning(c) ? 'Up' : `Exited (${c.exitCode ?? 0})`,
      Ports: [],
      Labels: {},
      HostConfig: { NetworkMode: 'host' },
      NetworkSettings: { Networks: {} },
      Mounts: [],
    }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  async inspect({ engine, params, res }: Call): Promise<void> {
    const { id, pending } = this.resolve(engine, params[0] ?? '');
    const body = pending
      ? containerJson({
          id,
          name: pending.name,
          createdAt: Date.now(),
          command: [],
          imageId: '',
          imageName: pending.request.Image ?? '',
          status: 'created',
          pid: 0,
          exitCode: 0,
          startedAt: 0,
          finishedAt: 0,
          tty: pending.request.Tty ?? false,
          openStdin: pending.request.OpenStdin ?? false,
          autoRemove: pending.request.HostConfig?.AutoRemove ?? false,
        })
      : await inspectContainer(engine, id);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
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

  rename({ engine, params, query, res }: Call): void {
    const name = query.get('name') ?? '';
    if (name === '') throw new KilnError('INVALID_ARGUMENT', 'Neither old nor new names may be empty');
    renameContainer(engine, this.resolve(engine, params[0] ?? '').id, name);
    res.writeHead(204).end();
  }

  /** `docker restart`: stop (if it runs) as `stop` does, then start. */
  async restart({ engine, params, query, res }: Call): Promise<void> {
    const stop = stopQuery(query);
    const { id } = this.resolve(engine, params[0] ?? '');
    await stopContainer(engine, id, stop);
    await startContainer(engine, id, this.options.runtime);
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

/** `work`, or a rejection as soon as `signal` aborts (the server stops): a wait must not hold it up. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const stop = (): void => reject(new KilnError('FAILED', 'the server is stopping'));
    if (signal.aborted) stop();
    signal.addEventListener('abort', stop, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}
