import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, existsSync, open as openCallback } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Socket } from 'node:net';
import { lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { join, posix, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KilnError, storeWriteError } from '../errors.js';
import { processAlive } from '../gc/gc.js';
import { applyChanges } from '../build/changes.js';
import { type Change, overlayChanges, overlayLayerEntries, treeChanges, treeLayerEntries } from '../layer/diff.js';
import { writeTar } from '../layer/tar/writer.js';
import type { ContainerRow } from '../meta/db.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import type { ImageConfig } from '../oci/types.js';
import { parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import { type ExecStreams, type RuntimeName, execProcess, logPath, resizeExecTerminal, resizeTerminal, stdinPipe } from '../runtime/runtime.js';
import { type ConsoleSize, resolveUser, withOverrides } from '../runtime/spec.js';
import { Snapshotter, mount, unmount, unmountStale } from '../snapshot/snapshotter.js';
import { tarDirectory, tarPath } from '../layer/directory.js';
import { applyLayer } from '../layer/apply.js';
import { resolveInRoot } from '../build/ops.js';
import type { Engine } from './engine.js';
import type { Filters } from './filters.js';

const run = promisify(execFile);
const openFd = promisify(openCallback);
import { OWNER_FILE, checkNewContainerName, containerBundle, containerKey, spawnSupervisor } from './run.js';

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

function snapshotterFor(engine: Engine, container: ContainerRow): Snapshotter {
  return new Snapshotter(engine.store.root, engine.store.db, container.driver === 'vfs' ? 'vfs' : 'overlay');
}

/** What kiln knows of a container, for `docker inspect`. */
export interface ContainerFacts {
  readonly id: string;
  readonly name: string;
  readonly createdAt: number;
  readonly command: readonly string[];
  readonly imageId: string;
  readonly imageName: string;
  readonly status: 'created' | 'running' | 'exited';
  readonly pid: number;
  readonly exitCode: number;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly tty: boolean;
  readonly openStdin: boolean;
  readonly autoRemove: boolean;
}

/** A container as `docker inspect` (and the API's /containers/{id}/json) shows it, in Docker's field names. */
export function containerJson(facts: ContainerFacts): object {
  return {
    Id: facts.id,
    Created: new Date(facts.createdAt).toISOString(),
    Path: facts.command[0] ?? '',
    Args: facts.command.slice(1),
    State: {
      Status: facts.status,
      Running: facts.status === 'running',
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: facts.pid,
      ExitCode: facts.exitCode,
      Error: '',
      StartedAt: new Date(facts.startedAt).toISOString(),
      FinishedAt: new Date(facts.finishedAt).toISOString(),
    },
    Image: facts.imageId,
    Name: `/${facts.name}`,
    Config: { Image: facts.imageName, Cmd: facts.command, Tty: facts.tty, OpenStdin: facts.openStdin },
    HostConfig: { AutoRemove: facts.autoRemove, NetworkMode: 'host' },
    Mounts: [],
    NetworkSettings: { Networks: {} },
  };
}

/** `docker inspect CONTAINER`. */
export async function inspectContainer(engine: Engine, nameOrId: string): Promise<object> {
  const row = findContainer(engine, nameOrId);
  const running = isRunning(row);
  const io = await containerIo(engine, row.id);
  return containerJson({
    id: row.id,
    name: row.name,
    createdAt: row.createdAt,
    command: row.command,
    imageId: row.imageId,
    imageName: row.imageName,
    status: running ? 'running' : 'exited',
    pid: running ? (row.pid ?? 0) : 0,
    exitCode: row.exitCode ?? 0,
    startedAt: row.startedAt ?? row.createdAt,
    finishedAt: row.finishedAt ?? 0,
    ...io,
    autoRemove: false,
  });
}

/** The filters `docker ps` (and the API's container list) take. */
export const CONTAINER_FILTERS = ['id', 'name', 'status', 'exited', 'ancestor', 'before', 'since'] as const;
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

/**
 * `docker ps`: the containers, newest first: the running ones, or `all`, narrowed by Docker's filters;
 * `last` keeps the n newest (of all). A status or exited filter looks at every container, as Docker's.
 */
export function listContainers(engine: Engine, options: { readonly all: boolean; readonly filters: Filters; readonly last?: number }): ContainerRow[] {
  const { filters } = options;
  const values = (key: string): readonly string[] => filters.get(key) ?? [];
  for (const status of values('status')) if (!STATUSES.includes(status)) throw new KilnError('INVALID_ARGUMENT', `invalid filter 'status=${status}'`);
  for (const code of values('exited')) if (!/^-?\d+$/.test(code)) throw new KilnError('INVALID_ARGUMENT', `invalid filter 'exited=${code}'`);
  const names = values('name').map((pattern) => {
    try {
      return new RegExp(pattern);
    } catch {
      throw new KilnError('INVALID_ARGUMENT', `invalid filter 'name=${pattern}': not a regular expression`);
    }
  });
  const ancestors = values('ancestor').map((reference) => {
    try {
      return engine.image(reference).id;
    } catch {
      return undefined; // an image that is not here: no container has it
    }
  });
  const createdOf = (key: string): number | undefined => (values(key)[0] === undefined ? undefined : findContainer(engine, values(key)[0] as string).createdAt);
  const before = createdOf('before');
  const since = createdOf('since');
  const everything = options.all || options.last !== undefined || filters.has('status') || filters.has('exited');
  const rows = engine.store.db.containers().filter((c) => {
    const running = isRunning(c);
    const status = running ? 'running' : c.exitCode === null && c.pid === null ? 'created' : 'exited';
    return (
      (everything || running) &&
      (values('id').length === 0 || values('id').some((id) => c.id.startsWith(id))) &&
      (names.length === 0 || names.some((pattern) => pattern.test(c.name))) &&
      (values('status').length === 0 || values('status').includes(status)) &&
      (values('exited').length === 0 || (status === 'exited' && values('exited').some((code) => Number(code) === (c.exitCode ?? 0)))) &&
      (ancestors.length === 0 || ancestors.includes(c.imageId)) &&
      (before === undefined || c.createdAt < before) &&
      (since === undefined || c.createdAt > since)
    );
  });
  return options.last !== undefined && options.last >= 0 ? rows.slice(0, options.last) : rows;
}

/** True while a detached container's supervisor (and so its process) runs. */
export function isRunning(container: ContainerRow): boolean {
  return container.exitCode === null && container.pid !== null && processAlive(container.pid);
}

/** How a container's process was started: with a terminal (`-t`), with stdin kept open (`-i`). */
export async function containerIo(engine: Engine, id: string): Promise<{ tty: boolean; openStdin: boolean }> {
  const bundle = containerBundle(engine, id);
  const spec = await readFile(join(bundle, 'config.json'), 'utf8').then((text) => JSON.parse(text) as { process?: { terminal?: boolean } }, () => undefined);
  return { tty: spec?.process?.terminal === true, openStdin: existsSync(stdinPipe(bundle)) };
}

/**
 * A writer to a detached container's stdin (the named pipe its supervisor reads once the process runs);
 * ending it ends the process's stdin. Undefined when the container keeps no stdin open or has exited.
 */
export async function containerStdin(engine: Engine, id: string): Promise<Socket | undefined> {
  const fifo = stdinPipe(containerBundle(engine, id));
  if (!existsSync(fifo)) return undefined;
  for (;;) {
    // Non-blocking: ENXIO until the supervisor reads (a blocking open would wait forever for one that died).
    const fd = await openFd(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENXIO' || err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (fd !== undefined) return new Socket({ fd, readable: false, writable: true });
    const row = engine.store.db.containers().find((c) => c.id === id);
    if (!row || !isRunning(row)) return undefined;
    await delay(20); // polling: the supervisor's open gives no event here
  }
}

/** `docker resize` of a container with a terminal; nothing for one without. */
export async function resizeContainer(engine: Engine, nameOrId: string, runtime: RuntimeName, size: ConsoleSize): Promise<void> {
  const container = findContainer(engine, nameOrId);
  if (!(await containerIo(engine, container.id)).tty) return;
  if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
  await resizeTerminal(runtime, container.id, size);
}

export interface ExecOptions {
  readonly cmd: readonly string[];
  /** `-i`: kiln's stdin goes to the process. */
  readonly interactive: boolean;
  /** `-t`: the process gets a pseudo-terminal. */
  readonly tty: boolean;
  /** `-d`: the process is started and left running. */
  readonly detach: boolean;
  /** `-e`: on top of the container's environment. */
  readonly env: readonly string[];
  /** `-u`, `-w`: else the container's. */
  readonly user?: string;
  readonly workdir?: string;
  /** Names the process's files in the bundle (the API's exec ID, for resizeExec); else a random one. */
  readonly id?: string;
}

/**
 * `docker exec`: one more process in a running container, with the container's process settings
 * (environment, user, capabilities) but for what `options` changes, on kiln's stdio or `streams`.
 * Returns its exit code (0 when detached).
 */
export async function execInContainer(engine: Engine, nameOrId: string, options: ExecOptions, streams?: ExecStreams): Promise<number> {
  const container = findContainer(engine, nameOrId);
  if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
  if (options.cmd.length === 0) throw new KilnError('INVALID_ARGUMENT', 'exec needs a command to run in the container');
  const bundle = containerBundle(engine, container.id);
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { env?: string[]; cwd?: string; user?: object; consoleSize?: object } };
  const user = options.user === undefined ? undefined : await resolveUser(join(bundle, 'rootfs'), options.user);
  const { consoleSize: _size, ...base } = spec.process;
  const processSpec = {
    ...base,
    terminal: options.tty,
    args: options.cmd,
    env: withOverrides(base.env ?? [], options.env),
    cwd: options.workdir ?? base.cwd ?? '/',
    ...(user ? { user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } } : {}),
  };
  const files = execFiles(bundle, options.id ?? randomBytes(6).toString('hex'));
  await writeFile(files.process, JSON.stringify(processSpec));
  try {
    return await execProcess(await runtimeOf(container), container.id, files, { stdin: options.interactive, tty: options.tty, detach: options.detach }, streams);
  } finally {
    await rm(files.process, { force: true });
    if (!options.detach) await rm(files.pid, { force: true });
  }
}

/** Where an exec's process spec and pid go: in its container's bundle, removed with it. */
function execFiles(bundle: string, id: string): { process: string; pid: string } {
  return { process: join(bundle, `exec-${id}.json`), pid: join(bundle, `exec-${id}.pid`) };
}

/** Sets the terminal size of a running `exec` with a terminal (the API's exec resize). */
export async function resizeExec(engine: Engine, containerId: string, execId: string, size: ConsoleSize): Promise<void> {
  await resizeExecTerminal(execFiles(containerBundle(engine, containerId), execId).pid, size);
}

/**
 * The runtime that runs a container: the one that knows its state. Just after `run -d` its supervisor
 * may not have started the runtime yet: that is waited for (polling: there is no event for it).
 */
async function runtimeOf(container: ContainerRow): Promise<RuntimeName> {
  for (;;) {
    for (const runtime of ['runc', 'crun'] as const) {
      if (await run(runtime, ['state', container.id]).then(() => true, () => false)) return runtime;
    }
    if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
    await delay(50);
  }
}

/**
 * `docker start`: runs a stopped container again, detached, on its writable layer as it was left, with
 * the same process settings; its logs go on after the earlier runs'. Returns false when it was running
 * (Docker's 304).
 */
export async function startContainer(engine: Engine, nameOrId: string, runtime: RuntimeName): Promise<boolean> {
  const container = findContainer(engine, nameOrId);
  if (isRunning(container)) return false;
  const bundle = containerBundle(engine, container.id);
  const [spec] = snapshotterFor(engine, container).mounts(containerKey(container.id));
  if (!spec || !existsSync(join(bundle, 'config.json'))) throw new KilnError('CONFLICT', `container ${container.name} cannot start again: its snapshot or bundle is gone (remove it and run the image anew)`);
  await mount(spec, join(bundle, 'rootfs'));
  engine.store.db.restartContainer(container.id, process.pid); // running from now on: wait and ps see it
  spawnSupervisor(engine, container.id, runtime, false);
  return true;
}

/**
 * A signal as `docker kill -s` takes it: a name with or without SIG, in any case, or a number from 1 to
 * 64. Returns what runc and crun take: the name without SIG, or the number.
 */
export function parseSignal(value: string): string {
  const name = value.toUpperCase().replace(/^SIG/, '');
  if (`SIG${name}` in osConstants.signals) return name;
  if (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 64) return String(Number(value));
  throw new KilnError('INVALID_ARGUMENT', `Invalid signal: ${value}`);
}

/**
 * `docker kill`: a signal (SIGKILL unless told) to a running container's process. After SIGKILL it
 * waits until the container shows as exited; another signal is only sent, as Docker does.
 */
export async function killContainer(engine: Engine, nameOrId: string, signal = 'KILL'): Promise<void> {
  const container = findContainer(engine, nameOrId);
  const runtimeSignal = parseSignal(signal);
  if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
  if (runtimeSignal === 'KILL' || runtimeSignal === '9') await kill(container);
  else if (!(await signalProcess(container, runtimeSignal))) throw new KilnError('INTERNAL', `cannot send SIG${runtimeSignal} to container ${container.name}: neither runc nor crun knows it`);
}

/**
 * `docker stop`: the stop signal (`signal`, else the image's STOPSIGNAL, else SIGTERM), then SIGKILL if
 * the container still runs after `timeout` seconds (default 10; negative: wait as long as it takes).
 * Returns false when it was not running (Docker's 304).
 */
export async function stopContainer(engine: Engine, nameOrId: string, options: { readonly timeout?: number; readonly signal?: string } = {}): Promise<boolean> {
  const container = findContainer(engine, nameOrId);
  const signal = parseSignal(options.signal ?? stopSignalOf(engine, container));
  if (!isRunning(container)) return false;
  await signalProcess(container, signal);
  const timeout = options.timeout ?? 10;
  if (!(await exited(container, timeout < 0 ? Infinity : Date.now() + timeout * 1000))) await kill(container);
  return true;
}

/** The container's image's STOPSIGNAL, or SIGTERM (also when the image is gone). */
function stopSignalOf(engine: Engine, container: ContainerRow): string {
  try {
    return engine.store.configOf(container.imageId).config?.StopSignal || 'SIGTERM';
  } catch {
    return 'SIGTERM';
  }
}

/** Sends a signal through whichever runtime runs the container; false if neither knows it. */
async function signalProcess(container: ContainerRow, signal: string): Promise<boolean> {
  for (const runtime of ['runc', 'crun']) {
    if (await run(runtime, ['kill', container.id, signal]).then(() => true, () => false)) return true;
  }
  return false;
}

/** Kills a detached container's process and waits for its supervisor to record the exit and clean up. */
async function kill(container: ContainerRow): Promise<void> {
  await signalProcess(container, 'KILL');
  if (!(await exited(container, Date.now() + 30_000))) throw new KilnError('INTERNAL', `container ${container.name} did not stop within 30 s of SIGKILL`);
}

/** Waits until the container's supervisor has gone (its exit recorded), or `deadline` (ms) has passed: false then. */
async function exited(container: ContainerRow, deadline: number): Promise<boolean> {
  while (container.pid !== null && processAlive(container.pid)) {
    if (Date.now() > deadline) return false;
    await delay(50); // polling a foreign pid: there is no exit event for a process that is not our child
  }
  return true;
}

/** `docker rm`: the container's record, writable snapshot and bundle; `force` kills a running one first. */
export async function removeContainer(engine: Engine, nameOrId: string, force = false): Promise<string> {
  const container = findContainer(engine, nameOrId);
  if (isRunning(container)) {
    if (!force) throw new KilnError('CONFLICT', `You cannot remove a running container ${container.id}. Stop the container before attempting removal or force remove`);
    await kill(container);
  }
  await forget(engine, snapshotterFor(engine, container), container.id);
  engine.store.db.deleteContainer(container.id);
  return nameOrId;
}

/** Unmounts (if a crash left it mounted) and removes a container's bundle and writable snapshot. */
async function forget(engine: Engine, snapshots: Snapshotter, id: string): Promise<void> {
  const bundle = containerBundle(engine, id);
  await unmountStale(join(bundle, 'rootfs'));
  const key = containerKey(id);
  if (snapshots.list().some((s) => s.key === key)) await snapshots.remove(key);
  await rm(bundle, { recursive: true, force: true });
}

/**
 * Bundles that no container record explains and whose owning kiln process is gone: what a kill -9 of
 * `run --rm` leaves (a mounted rootfs, a writable snapshot).
 */
export async function abandonedBundles(engine: Engine): Promise<string[]> {
  const known = new Set(engine.store.db.containers().map((c) => c.id));
  const abandoned: string[] = [];
  for (const id of await readdir(join(engine.store.root, 'containers')).catch(() => [] as string[])) {
    if (known.has(id)) continue;
    const owner = Number(await readFile(join(containerBundle(engine, id), OWNER_FILE), 'utf8').catch(() => '0'));
    if (owner !== process.pid && !(owner > 0 && processAlive(owner))) abandoned.push(id);
  }
  return abandoned;
}

/**
 * The container's writable snapshot and the image snapshots below it, nearest first. For overlay the
 * writable one holds only the changes; for vfs it is a full copy and the nearest lower is the image.
 */
function layerDirs(engine: Engine, container: ContainerRow): { driver: 'overlay' | 'vfs'; upper: string; lowers: string[] } {
  const snapshots = snapshotterFor(engine, container);
  const rows = new Map(snapshots.list().map((s) => [s.key, s]));
  const lowers: string[] = [];
  for (let parent = rows.get(containerKey(container.id))?.parent; parent; parent = rows.get(parent)?.parent) lowers.push(snapshots.dir(parent));
  return { driver: snapshots.driver, upper: snapshots.dir(containerKey(container.id)), lowers };
}

/** The layer of a container's changes, for either driver. */
function changedEntries(dirs: ReturnType<typeof layerDirs>) {
  if (dirs.driver === 'overlay') return overlayLayerEntries(dirs.upper);
  return treeLayerEntries(dirs.lowers[0] ?? EMPTY_TREE, dirs.upper);
}

/** A container on an image with no layers compares against nothing. */
const EMPTY_TREE = '/nonexistent-kiln-empty-tree';

/** `docker diff`: what the container added (A), changed (C) and deleted (D) against its image. */
export async function containerChanges(engine: Engine, nameOrId: string): Promise<Change[]> {
  const { driver, upper, lowers } = layerDirs(engine, findContainer(engine, nameOrId));
  if (driver === 'vfs') return treeChanges(lowers[0] ?? EMPTY_TREE, upper);
  const existsBelow = async (rel: string): Promise<boolean> => {
    for (const lower of lowers) if (await lstat(join(lower, rel)).then(() => true, () => false)) return true;
    return false;
  };
  return overlayChanges(upper, existsBelow);
}

export interface CommitOptions {
  readonly reference?: string;
  readonly changes?: readonly string[];
  readonly message?: string;
  readonly author?: string;
}

/**
 * `docker commit`: the container's changes become one new layer on its image, with a history entry
 * for the command that made them and the config changes applied.
 */
export async function commitContainer(engine: Engine, nameOrId: string, options: CommitOptions = {}): Promise<Digest> {
  const container = findContainer(engine, nameOrId);
  const dirs = layerDirs(engine, container);
  const name = options.reference ? referenceString(withDefaultTag(parseReference(options.reference))) : undefined;
  const base = engine.store.configOf(container.imageId);
  const { store } = engine;
  return store.withLease(async (lease) => {
    const layer = await store.ingestLayer(lease, writeTar(changedEntries(dirs)), { mediaType: MediaType.ociLayer }, `changes of container ${container.name}`);
    const created = new Date().toISOString();
    const config: ImageConfig = {
      ...base,
      created,
      ...(options.author ? { author: options.author } : {}),
      config: applyChanges(base.config ?? {}, options.changes ?? []),
      rootfs: { type: 'layers', diff_ids: [...base.rootfs.diff_ids, layer.diffId] },
      history: [...(base.history ?? []), { created, created_by: container.command.join(' '), ...(options.author ? { author: options.author } : {}), ...(options.message ? { comment: options.message } : {}) }],
    };
    const rawConfig = Buffer.from(JSON.stringify(config));
    const baseImage = await store.image(engine.image(container.imageId));
    const id = sha256(rawConfig);
    await store.writeImage(
      lease,
      {
        image: { id, rawConfig, config, layers: [...baseImage.layers, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, diffId: layer.diffId, open: () => store.content.open(layer.digest) }] },
        names: name ? [name] : [],
      },
      `commit of ${container.name}`,
      container.imageId,
    );
    return id;
  });
}

/** How often a follower looks at a running container's logs and state (its supervisor appends to files). */
export const FOLLOW_MS = 50;

export interface FollowOptions {
  /** Go on until the container has exited (`logs -f`, attach), or stop at what is there now. */
  readonly follow: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  /** Only what is written from now on (an attach to a running container). */
  readonly onlyNew?: boolean;
  /** Only what is written after these sizes of the logs (taken with logSizes before a start). */
  readonly from?: LogSizes;
  /** Only the last lines of each stream, and what comes after (`--tail N`). */
  readonly tail?: number;
  /** Stops following (a detach): the promise then resolves. */
  readonly signal?: AbortSignal;
}

export interface LogSizes {
  readonly stdout: number;
  readonly stderr: number;
}

/** How much a container's logs hold now: `start -a` follows from there, so that it misses nothing the start writes. */
export async function logSizes(engine: Engine, id: string): Promise<LogSizes> {
  const bundle = containerBundle(engine, id);
  const size = async (stream: 'stdout' | 'stderr'): Promise<number> => (await stat(logPath(bundle, stream)).catch(() => undefined))?.size ?? 0;
  return { stdout: await size('stdout'), stderr: await size('stderr') };
}

/** `logs --tail` (the API's `tail`): a number of lines, or undefined for all (`all`, or a negative number, as docker takes them). */
export function tailLines(value: string): number | undefined {
  if (value === 'all') return undefined;
  if (!/^-?\d+$/.test(value)) throw new KilnError('INVALID_ARGUMENT', `invalid value for "tail": ${JSON.stringify(value)} is not a number of lines or "all"`);
  return Number(value) < 0 ? undefined : Number(value);
}

/** Where the last `lines` lines of a log start (read backwards: a log can be large). */
async function tailOffset(path: string, lines: number): Promise<number> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return 0;
  try {
    const { size } = await handle.stat();
    if (lines <= 0) return size;
    const buffer = Buffer.alloc(64 << 10);
    let newlines = 0;
    for (let end = size; end > 0; ) {
      const start = Math.max(0, end - buffer.length);
      await handle.read(buffer, 0, end - start, start);
      for (let i = end - start - 1; i >= 0; i--) {
        // The log's final newline ends its last line; every other one starts the line after it.
        if (buffer[i] === 0x0a && start + i !== size - 1 && ++newlines === lines) return start + i + 1;
      }
      end = start;
    }
    return 0;
  } finally {
    await handle.close();
  }
}

/** `docker rename`: a container's new name, by the rules `run --name` follows. */
export function renameContainer(engine: Engine, nameOrId: string, name: string): void {
  const container = findContainer(engine, nameOrId);
  const wanted = name.replace(/^\//, '');
  if (wanted === container.name) throw new KilnError('INVALID_ARGUMENT', 'Renaming a container with the same name as its current name');
  checkNewContainerName(engine, wanted);
  engine.store.db.renameContainer(container.id, wanted);
}

/**
 * `docker logs` and the output side of attach: what a kept container wrote, each piece to `write` with
 * its stream, read from the logs its supervisor keeps; with `follow`, until it has exited and all is read.
 */
export async function followLogs(engine: Engine, id: string, write: (stream: 'stdout' | 'stderr', data: Buffer) => unknown, options: FollowOptions): Promise<void> {
  const bundle = containerBundle(engine, id);
  const tail = options.tail;
  const offsets =
    tail !== undefined
      ? { stdout: await tailOffset(logPath(bundle, 'stdout'), tail), stderr: await tailOffset(logPath(bundle, 'stderr'), tail) }
      : { ...(options.from ?? (options.onlyNew ? await logSizes(engine, id) : { stdout: 0, stderr: 0 })) };
  for (;;) {
    const row = engine.store.db.containers().find((c) => c.id === id);
    const done = !row || row.exitCode !== null || !isRunning(row);
    for (const stream of ['stdout', 'stderr'] as const) {
      if (!options[stream]) continue;
      const handle = await open(logPath(bundle, stream), 'r').catch(() => undefined);
      if (!handle) continue;
      try {
        for (;;) {
          const buffer = Buffer.alloc(64 << 10);
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, offsets[stream]);
          if (bytesRead === 0) break;
          offsets[stream] += bytesRead;
          write(stream, buffer.subarray(0, bytesRead));
        }
      } finally {
        await handle.close();
      }
    }
    if (done || !options.follow || options.signal?.aborted) return;
    await delay(FOLLOW_MS, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

/** A container's exit code once it has exited (waiting for that), or undefined when it is gone. */
export async function exitCodeOf(engine: Engine, id: string): Promise<number | undefined> {
  for (;;) {
    const row = engine.store.db.containers().find((c) => c.id === id);
    if (!row) return undefined;
    if (row.exitCode !== null) return row.exitCode;
    if (!isRunning(row) && row.pid === null) return 0;
    await delay(FOLLOW_MS);
  }
}

/**
 * `docker export`: the container's whole filesystem as a tar; `consume` gets the stream while the
 * filesystem is mounted.
 */
export async function exportContainer(engine: Engine, nameOrId: string, consume: (tar: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  await withContainerRoot(engine, findContainer(engine, nameOrId), (root) => consume(tarDirectory(root)));
}

/**
 * Runs `use` on a container's root filesystem: a running container's where it is mounted, a stopped
 * one's snapshot mounted on a scratch directory for the time of `use`.
 */
async function withContainerRoot<T>(engine: Engine, container: ContainerRow, use: (root: string) => Promise<T>): Promise<T> {
  if (isRunning(container)) return use(join(containerBundle(engine, container.id), 'rootfs'));
  const [spec] = snapshotterFor(engine, container).mounts(containerKey(container.id));
  if (!spec) throw new KilnError('INTERNAL', `container ${container.name} has no filesystem`);
  await mkdir(engine.store.content.tmpDir, { recursive: true });
  const target = await mkdtemp(join(engine.store.content.tmpDir, 'rootfs-'));
  await mount(spec, target);
  try {
    return await use(target);
  } finally {
    await unmount(target);
    await rm(target, { recursive: true, force: true });
  }
}

/** A path in a container as `docker cp` and the API's archive routes describe it; `mode` has Go's os.FileMode type bits. */
export interface ContainerPathStat {
  readonly name: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: string;
  readonly linkTarget: string;
  readonly isDirectory: boolean;
}

/** The host path of a container's `path`: its parents resolved inside the root (symlinks too), its own name as it is. */
async function hostPathIn(root: string, path: string): Promise<string> {
  const normalized = posix.normalize(`/${path}`);
  if (normalized === '/') return root;
  return join(await resolveInRoot(root, posix.dirname(normalized)), posix.basename(normalized));
}

async function statIn(root: string, container: ContainerRow, path: string, follow = false): Promise<{ host: string; stat: ContainerPathStat }> {
  const host = follow ? await resolveInRoot(root, posix.normalize(`/${path}`)) : await hostPathIn(root, path);
  const st = await lstat(host).catch(() => undefined);
  if (!st) throw new KilnError('NOT_FOUND', `Could not find the file ${path} in container ${container.name}`);
  const typeBits = st.isDirectory() ? 2 ** 31 : st.isSymbolicLink() ? 2 ** 27 : 0;
  const stat = {
    name: posix.basename(posix.normalize(`/${path}`)) || '/',
    size: st.size,
    mode: typeBits + (st.mode & 0o777),
    mtime: st.mtime.toISOString(),
    linkTarget: st.isSymbolicLink() ? await readlink(host) : '',
    isDirectory: st.isDirectory(),
  };
  return { host, stat };
}

/** `docker cp`'s look at a path in a container (the API's HEAD archive); `follow` (-L) looks through a symlink. */
export async function statContainerPath(engine: Engine, nameOrId: string, path: string, follow = false): Promise<ContainerPathStat> {
  const container = findContainer(engine, nameOrId);
  return withContainerRoot(engine, container, async (root) => (await statIn(root, container, path, follow)).stat);
}

/**
 * `docker cp CONTAINER:PATH`: the path as a tar whose entry is named `as` (default its own name; `.` gives
 * a directory's contents), given to `consume` with the path's description while the filesystem is mounted.
 * With `follow` (-L), a symlink is copied as what it points to, under its own name.
 */
export async function archiveContainerPath(engine: Engine, nameOrId: string, path: string, consume: (tar: AsyncIterable<Buffer>, stat: ContainerPathStat) => Promise<void>, options: { readonly as?: string; readonly follow?: boolean } = {}): Promise<void> {
  const { as, follow = false } = options;
  const container = findContainer(engine, nameOrId);
  await withContainerRoot(engine, container, async (root) => {
    const { host, stat } = await statIn(root, container, path, follow);
    await consume(tarPath(host, as ?? (stat.name === '/' ? '.' : stat.name)), stat);
  });
}

/**
 * `docker cp … CONTAINER:DIR`: a tar unpacked into a directory of the container, every path kept inside
 * its root; owners become root's unless `keepOwners` (`-a`).
 */
export async function extractToContainer(engine: Engine, nameOrId: string, dir: string, tar: AsyncIterable<Uint8Array>, keepOwners: boolean): Promise<void> {
  const container = findContainer(engine, nameOrId);
  await withContainerRoot(engine, container, async (root) => {
    const host = await resolveInRoot(root, posix.normalize(`/${dir}`));
    if (!(await stat(host).catch(() => undefined))?.isDirectory()) throw new KilnError('NOT_FOUND', `Could not find the directory ${dir} in container ${container.name} (the destination must be a directory that exists)`);
    await applyLayer(host, tar, { whiteouts: 'delete', privileged: true, what: `the copy into ${container.name}:${dir}`, ...(keepOwners ? {} : { owner: { uid: 0, gid: 0 } }) }).catch((err: unknown) => {
      throw storeWriteError(err, engine.store.root, host);
    });
  });
}

/** Counts the bytes of a stream as they pass (the size docker cp reports). */
function counted(source: AsyncIterable<Uint8Array>, count: { bytes: number }): AsyncIterable<Uint8Array> {
  return (async function* () {
    for await (const chunk of source) {
      count.bytes += chunk.length;
      yield chunk;
    }
  })();
}

/**
 * Where a copy lands by docker cp's rules, given what the source is and what the destination is now:
 * into an existing directory under the source's name (its contents for SRC/.), over an existing file, or
 * as a new file or directory named as the destination, whose parent must exist. Returns the directory
 * the tar unpacks into and the name its top entry takes.
 */
function landing(source: { name: string; isDirectory: boolean; contentsOnly: boolean }, destination: { path: string; isDirectory?: boolean | undefined; exists: boolean }): { dir: string; as: string } {
  if (destination.exists && destination.isDirectory) return { dir: destination.path, as: source.contentsOnly && source.isDirectory ? '.' : source.name };
  if (destination.exists && source.isDirectory) throw new KilnError('CONFLICT', `cannot copy a directory to a file: ${destination.path}`);
  if (!destination.exists && !source.isDirectory && destination.path.endsWith('/')) throw new KilnError('NOT_FOUND', `the destination directory ${destination.path} must exist`);
  const path = destination.path.replace(/\/+$/, '') || '/';
  return { dir: posix.dirname(path), as: posix.basename(path) };
}

/** docker cp's options: `archive` (-a) keeps owners, `follow` (-L) copies what a source symlink points to. */
export interface CopyOptions {
  readonly archive: boolean;
  readonly follow: boolean;
}

/**
 * `docker cp CONTAINER:PATH DEST`: to a host path by docker cp's rules (files owned by whoever runs kiln
 * unless `archive`), or as a tar to a stream (`-`). Returns the bytes copied.
 */
export async function copyFromContainer(engine: Engine, nameOrId: string, path: string, destination: string | NodeJS.WritableStream, options: CopyOptions): Promise<number> {
  const count = { bytes: 0 };
  const { follow } = options;
  if (typeof destination !== 'string') {
    await archiveContainerPath(engine, nameOrId, path, (tar) => pipeline(counted(tar, count), destination), { follow });
    return count.bytes;
  }
  const source = await statContainerPath(engine, nameOrId, path, follow);
  const existing = await stat(destination).catch(() => undefined);
  const { dir, as } = landing({ ...source, contentsOnly: /(^|\/)\.$/.test(path) }, { path: destination, isDirectory: existing?.isDirectory(), exists: existing !== undefined });
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new KilnError('NOT_FOUND', `the parent directory ${dir} of ${destination} does not exist`);
  const owner = options.archive ? {} : { owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } };
  await archiveContainerPath(engine, nameOrId, path, (tar) => applyLayer(dir, counted(tar, count), { whiteouts: 'delete', what: `the copy of ${nameOrId}:${path}`, ...owner }).then(() => undefined), { as, follow });
  return count.bytes;
}

/**
 * `docker cp SRC CONTAINER:PATH`: a host path by docker cp's rules, or a tar from a stream (`-`, into a
 * directory). Returns the bytes copied.
 */
export async function copyIntoContainer(engine: Engine, source: string | AsyncIterable<Uint8Array>, nameOrId: string, path: string, options: CopyOptions): Promise<number> {
  const count = { bytes: 0 };
  if (typeof source !== 'string') {
    await extractToContainer(engine, nameOrId, path, counted(source, count), options.archive);
    return count.bytes;
  }
  const local = await (options.follow ? stat : lstat)(source).catch(() => undefined);
  if (!local) throw new KilnError('NOT_FOUND', `could not find the file ${source} (no such file or directory)`);
  const existing = await statContainerPath(engine, nameOrId, path).catch((err: unknown) => {
    if (err instanceof KilnError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  });
  const { dir, as } = landing({ name: posix.basename(resolve(source)), isDirectory: local.isDirectory(), contentsOnly: /(^|\/)\.$/.test(source) }, { path, isDirectory: existing?.isDirectory, exists: existing !== undefined });
  await extractToContainer(engine, nameOrId, dir, counted(tarPath(source, as, options.follow), count), options.archive);
  return count.bytes;
}

/** `docker container prune`: removes every container that is not running; returns their IDs. */
export async function pruneContainers(engine: Engine): Promise<string[]> {
  const stopped = engine.store.db.containers().filter((c) => !isRunning(c));
  for (const container of stopped) await removeContainer(engine, container.id);
  const snapshots = new Snapshotter(engine.store.root, engine.store.db, 'overlay');
  for (const id of await abandonedBundles(engine)) await forget(engine, snapshots, id);
  return stopped.map((c) => c.id);
}
