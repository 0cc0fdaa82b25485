/**
 * A running container's process from outside: its stdin (a named pipe its supervisor reads), its
 * terminal's size, and more processes in it (`docker exec`).
 */
import { randomBytes } from 'node:crypto';
import { constants, existsSync, open as openCallback } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { KilnError } from '../../errors.js';
import { type ExecStreams, type RuntimeName, execProcess, resizeExecTerminal, resizeTerminal, stdinPipe } from '../../runtime/runtime.js';
import { type ConsoleSize, parseSpec, resolveUser, specJson, withOverrides } from '../../runtime/spec.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { runtimeOf } from './lifecycle.js';
import { containerBundle, currentRow, findContainer, isRunning, settingsOf } from './records.js';

const openFd = promisify(openCallback);

/** How a container's process is started: with a terminal (`-t`), with stdin kept open (`-i`). */
export function containerIo(engine: Engine, id: string): { tty: boolean; openStdin: boolean } {
  const row = currentRow(engine, id);
  if (!row) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
  const settings = settingsOf(row);
  return { tty: settings.tty, openStdin: settings.openStdin && existsSync(stdinPipe(containerBundle(engine, id))) };
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
    const row = currentRow(engine, id);
    if (!row || (!isRunning(row) && row.startedAt !== null)) return undefined;
    await delay(20); // polling: the supervisor's open gives no event here (and a created container is waited for)
  }
}

/** `docker resize` of a container with a terminal; nothing for one without. */
export async function resizeContainer(engine: Engine, nameOrId: string, runtime: RuntimeName, size: ConsoleSize): Promise<void> {
  const container = findContainer(engine, nameOrId);
  if (!settingsOf(container).tty) return;
  if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
  await resizeTerminal(runtime, container.id, containerBundle(engine, container.id), size);
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
  /** Kills the process when aborted (a health check past its timeout). */
  readonly signal?: AbortSignal;
}

/** Where an exec's process spec and pid go: in its container's bundle, removed with it. */
function execFiles(bundle: string, id: string): { process: string; pid: string } {
  return { process: join(bundle, `exec-${id}.json`), pid: join(bundle, `exec-${id}.pid`) };
}

/**
 * `docker exec`: one more process in a running container, with the container's process settings
 * (environment, user, capabilities) but for what `options` changes, on kiln's stdio or `streams`.
 * Returns its exit code (0 when detached).
 */
export async function execInContainer(engine: Engine, nameOrId: string, options: ExecOptions, streams?: ExecStreams): Promise<number> {
  const container = findContainer(engine, nameOrId);
  if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
  if (container.paused) throw new KilnError('CONFLICT', `Container ${container.id} is paused, unpause the container before exec`);
  if (options.cmd.length === 0) throw new KilnError('INVALID_ARGUMENT', 'exec needs a command to run in the container');
  const runtime = await runtimeOf(engine, container, options.signal);
  const bundle = containerBundle(engine, container.id);
  const spec = parseSpec(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { env?: string[]; cwd?: string; user?: object; consoleSize?: object } };
  const user = options.user === undefined ? undefined : resolveUser(join(bundle, 'rootfs'), options.user);
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
  await writeFile(files.process, specJson(processSpec));
  const attributes = { image: settingsOf(container).image, name: container.name, execID: options.id ?? '' };
  recordEvent(engine, 'container', `exec_start: ${options.cmd.join(' ')}`, container.id, attributes);
  try {
    const code = await execProcess(runtime, container.id, files, { stdin: options.interactive, tty: options.tty, detach: options.detach, ...(options.signal ? { signal: options.signal } : {}) }, streams);
    if (!options.detach) recordEvent(engine, 'container', 'exec_die', container.id, { ...attributes, exitCode: String(code) });
    return code;
  } finally {
    await rm(files.process, { force: true });
    if (!options.detach) await rm(files.pid, { force: true });
  }
}

/** Sets the terminal size of a running `exec` with a terminal (the API's exec resize). */
export async function resizeExec(engine: Engine, containerId: string, execId: string, size: ConsoleSize): Promise<void> {
  await resizeExecTerminal(execFiles(containerBundle(engine, containerId), execId).pid, size);
}
