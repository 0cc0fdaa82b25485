/**
 * The verbs that act on a container's process from outside: kill, stop, pause, unpause, wait, and the
 * record's own: rename and rm.
 */
import { constants as osConstants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError } from '../../errors.js';
import { ownerGone } from '../../content/owner.js';
import type { ContainerRow } from '../../meta/db.js';
import type { RuntimeName } from '../../runtime/runtime.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { FOLLOW_MS, checkNewContainerName, containerBundle, containerStatus, currentRow, findContainer, isRunning, settingsOf } from './records.js';
import { destroyContainer } from './remove.js';
import { claimLaunch, endUnlaunched } from './start.js';
import { execFileAsync } from '../../exec-file.js';

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

export function notRunning(container: ContainerRow): KilnError {
  return new KilnError('CONFLICT', `Container ${container.id} is not running`);
}

/** Events carry the container's image, name and labels. */
function eventAttributes(container: ContainerRow, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const settings = settingsOf(container);
  return { image: settings.image, name: container.name, ...settings.labels, ...extra };
}

/**
 * The runtime that runs a container: the one that knows its state. Just after a start its supervisor
 * may not have had the runtime create it yet: that is waited for (polling: there is no event for it).
 */
export async function runtimeOf(engine: Engine, container: ContainerRow, signal?: AbortSignal): Promise<RuntimeName> {
  for (;;) {
    // A health probe stops asking once its container has exited: the supervisor asking records that exit only after.
    signal?.throwIfAborted();
    for (const runtime of ['runc', 'crun'] as const) {
      if (await execFileAsync(runtime, ['state', container.id]).then(() => true, () => false)) return runtime;
    }
    const current = currentRow(engine, container.id);
    if (!current || !isRunning(current)) throw notRunning(container);
    await delay(FOLLOW_MS);
  }
}

/** The runtime's word for the container's state (creating, created, running, paused, stopped), or undefined when it has none. */
async function runtimeStatus(runtime: string, id: string): Promise<string | undefined> {
  return execFileAsync(runtime, ['state', id]).then(({ stdout }) => (JSON.parse(stdout) as { status?: string }).status, () => undefined);
}

/**
 * Sends a signal through whichever runtime runs the container. Just after a start, its supervisor may not
 * have had the runtime create the container yet (a `run -d` then `rm -f` at once): the signal is sent
 * again until a runtime takes it, or the container no longer runs (false then), or `patienceMs` has
 * passed. Polling: nothing tells another process when the runtime has created the container.
 */
async function signalProcess(engine: Engine, container: ContainerRow, signal: string, patienceMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + patienceMs;
  const killing = signal === 'KILL' || signal === '9';
  for (;;) {
    for (const runtime of ['runc', 'crun']) {
      // Until the runtime has started the process, a signal reaches the runtime's own init (which sets up
      // the container, its seccomp filter…) and ends it as a failed start (exit 1), not as the process
      // would take it: only SIGKILL goes then, and any other waits for the process.
      if (!killing && (await runtimeStatus(runtime, container.id))?.startsWith('creat')) continue;
      if (await execFileAsync(runtime, ['kill', container.id, signal]).then(() => true, () => false)) return true;
    }
    const current = currentRow(engine, container.id);
    if (!current || !isRunning(current) || Date.now() > deadline) return false;
    await delay(20);
  }
}

/**
 * Waits until whichever process ran the container has let it go (recorded its exit and released what
 * its start set up), or `deadline` (ms) has passed: false then.
 */
async function released(engine: Engine, id: string, deadline: number): Promise<boolean> {
  for (;;) {
    const row = currentRow(engine, id);
    if (!row || row.pid === null || ownerGone(row.pid)) return true;
    if (Date.now() > deadline) return false;
    await delay(FOLLOW_MS); // polling a foreign process: there is no exit event for one that is not our child
  }
}

/**
 * Ends a started container whose runtime has not been launched yet, so that it never is (see claimLaunch):
 * true then. False when the runtime has been launched (it may still be creating the container).
 */
async function stopBeforeLaunch(engine: Engine, container: ContainerRow): Promise<boolean> {
  if (!(await claimLaunch(containerBundle(engine, container.id), container, 'stop'))) return false;
  await endUnlaunched(engine, container);
  return true;
}

/**
 * Stops a running container's process for good: before its runtime is launched (a `run -d` then `rm -f`
 * at once), or a paused one thawed, then SIGKILL; then its release waited for.
 */
async function kill(engine: Engine, container: ContainerRow): Promise<void> {
  if (!(await stopBeforeLaunch(engine, container))) {
    await signalProcess(engine, container, 'KILL');
    if (container.paused) await thaw(engine, container).catch(() => undefined);
  }
  if (!(await released(engine, container.id, Date.now() + 30_000))) throw new KilnError('INTERNAL', `container ${container.name} did not stop within 30 s of SIGKILL`);
}

/**
 * `docker kill`: a signal (SIGKILL unless told) to a running container's process. After SIGKILL it
 * waits until the container has stopped; another signal is only sent, as Docker does.
 */
export async function killContainer(engine: Engine, nameOrId: string, signal = 'KILL'): Promise<void> {
  const container = findContainer(engine, nameOrId);
  const runtimeSignal = parseSignal(signal);
  if (!isRunning(container)) throw notRunning(container);
  recordEvent(engine, 'container', 'kill', container.id, eventAttributes(container, { signal: runtimeSignal }));
  if (runtimeSignal === 'KILL' || runtimeSignal === '9') await kill(engine, container);
  else if (!(await signalProcess(engine, container, runtimeSignal))) throw new KilnError('CONFLICT', `cannot send SIG${runtimeSignal} to container ${container.name}: it is not running`);
}

/**
 * `docker stop`: the stop signal (`signal`, else the image's STOPSIGNAL, else SIGTERM), then SIGKILL if
 * the container still runs after `timeout` seconds (default its --stop-timeout, else 10; negative: wait as
 * long as it takes).
 * Returns false when it was not running (Docker's 304).
 */
export async function stopContainer(engine: Engine, nameOrId: string, options: { readonly timeout?: number; readonly signal?: string } = {}): Promise<boolean> {
  const container = findContainer(engine, nameOrId);
  const settings = settingsOf(container);
  const signal = parseSignal(options.signal ?? settings.stopSignal ?? 'SIGTERM');
  if (!isRunning(container)) return false;
  if (!(await stopBeforeLaunch(engine, container))) {
    if (container.paused) await thaw(engine, container);
    await signalProcess(engine, container, signal);
    const timeout = options.timeout ?? settings.stopTimeout ?? 10;
    if (!(await released(engine, container.id, timeout < 0 ? Infinity : Date.now() + timeout * 1000))) await kill(engine, container);
  }
  recordEvent(engine, 'container', 'stop', container.id, eventAttributes(container));
  return true;
}

async function thaw(engine: Engine, container: ContainerRow): Promise<void> {
  await execFileAsync(await runtimeOf(engine, container), ['resume', container.id]);
  engine.store.db.setContainerPaused(container.id, false);
}

/** `docker pause`: the container's processes frozen (the cgroup freezer, through its runtime). */
export async function pauseContainer(engine: Engine, nameOrId: string): Promise<void> {
  const container = findContainer(engine, nameOrId);
  if (!isRunning(container)) throw notRunning(container);
  if (container.paused) throw new KilnError('CONFLICT', `Container ${container.id} is already paused`);
  await execFileAsync(await runtimeOf(engine, container), ['pause', container.id]).catch((err: Error & { stderr?: string }) => {
    throw new KilnError('FAILED', `cannot pause container ${container.name}: ${(err.stderr ?? err.message).trim()}`);
  });
  engine.store.db.setContainerPaused(container.id, true);
  recordEvent(engine, 'container', 'pause', container.id, eventAttributes(container));
}

/** `docker unpause`. */
export async function unpauseContainer(engine: Engine, nameOrId: string): Promise<void> {
  const container = findContainer(engine, nameOrId);
  if (!isRunning(container)) throw notRunning(container);
  if (!container.paused) throw new KilnError('CONFLICT', `Container ${container.id} is not paused`);
  await thaw(engine, container).catch((err: Error & { stderr?: string }) => {
    throw new KilnError('FAILED', `cannot unpause container ${container.name}: ${(err.stderr ?? err.message).trim()}`);
  });
  recordEvent(engine, 'container', 'unpause', container.id, eventAttributes(container));
}

/**
 * `docker rm`: the container's record, writable snapshot and bundle; `force` kills a running one first;
 * `volumes` (-v) removes its anonymous volumes too.
 */
export async function removeContainer(engine: Engine, nameOrId: string, force = false, volumes = false): Promise<string> {
  const container = findContainer(engine, nameOrId);
  if (isRunning(container)) {
    if (!force) throw new KilnError('CONFLICT', `You cannot remove a running container ${container.id}. Stop the container before attempting removal or force remove`);
    await kill(engine, container);
  }
  await destroyContainer(engine, container.id, volumes);
  return nameOrId;
}

/** `docker rename`: a container's new name, by the rules `run --name` follows. */
export function renameContainer(engine: Engine, nameOrId: string, name: string): void {
  const container = findContainer(engine, nameOrId);
  const wanted = name.replace(/^\//, '');
  if (wanted === container.name) throw new KilnError('INVALID_ARGUMENT', 'Renaming a container with the same name as its current name');
  engine.store.db.transaction(() => {
    checkNewContainerName(engine, wanted);
    engine.store.db.renameContainer(container.id, wanted);
  });
  recordEvent(engine, 'container', 'rename', container.id, eventAttributes({ ...container, name: wanted }, { oldName: `/${container.name}` }));
}

/** What `wait` waits for: the container not running (now or later), its next exit, or its removal. */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/**
 * `docker wait`: a container's exit code once `condition` is met, or undefined when `signal` aborts (or,
 * but for `removed`, it is gone). A removed container's code is its last `die` event's.
 */
export async function waitContainer(engine: Engine, id: string, condition: WaitCondition = 'not-running', signal?: AbortSignal): Promise<number | undefined> {
  const firstFinished = currentRow(engine, id)?.finishedAt ?? null;
  let sawRunning = false;
  for (;;) {
    const row = currentRow(engine, id);
    if (!row) {
      const code = engine.store.db.lastEvent(id, 'die')?.attributes.exitCode;
      return code !== undefined ? Number(code) : condition === 'removed' ? 0 : undefined;
    }
    const status = containerStatus(row);
    if (status === 'running' || status === 'paused') sawRunning = true;
    if (condition === 'not-running' && !(status === 'running' || status === 'paused')) return row.exitCode ?? 0;
    if (condition === 'next-exit' && status === 'exited' && (sawRunning || row.finishedAt !== firstFinished)) return row.exitCode ?? 0;
    if (signal?.aborted) return undefined;
    await delay(FOLLOW_MS, undefined, { signal }).catch(() => undefined);
  }
}
