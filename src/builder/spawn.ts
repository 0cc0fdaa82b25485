import { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';
import { constants } from 'node:os';
import { SPAWN_OUTPUT_PIPES, SPAWN_SESSION, SPAWN_STDIN_PIPE, sys } from '../sys.js';
import type { GuardPipe } from '../runtime/guard.js';
import { type RuntimeChild, onPath } from '../runtime/runtime.js';

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/**
 * The runtimes that run from a sealed copy in memory (see sys.c's sealedcopy): crun re-executes itself
 * from such a copy at every start (4-10 ms of a step's ~25-50) unless it already runs from one. runc 1.1
 * gains nothing from it (measured).
 */
const SEALED_RUNTIMES = new Set(['crun']);
/** The sealed copies made, by runtime name (undefined: none can be made, the runtime runs from PATH): one per kiln process. */
const sealedCopies = new Map<string, string | undefined>();

/** `/proc/self/fd/N` of a sealed copy of `file` (searched in PATH) when it is one of SEALED_RUNTIMES and the addon can make it. */
function sealedCopy(file: string, addon: NonNullable<ReturnType<typeof sys>>): string | undefined {
  if (!SEALED_RUNTIMES.has(file) || !addon.sealedcopy) return undefined;
  if (!sealedCopies.has(file)) {
    const found = onPath(file);
    let copy: string | undefined;
    try {
      // The child execs it by this path: the name resolves in the child, to the descriptor it inherits until the exec.
      if (found) copy = `/proc/self/fd/${addon.sealedcopy(found)}`;
    } catch {
      // A kernel without memfd_create or sealing: the runtime copies itself, as it would anyway.
    }
    sealedCopies.set(file, copy);
  }
  return sealedCopies.get(file);
}

/**
 * Starts `file` (searched in PATH; a runtime from its sealed copy, see sealedCopy) with `args`, its stdin /dev/null and its stdout and stderr pipes to
 * read, through native/sys's posix_spawn: Node's spawn forks kiln, and copying the page tables of a
 * 60-100 MB process blocks its thread 5-10 ms on a busy machine, once per RUN step; posix_spawn runs the
 * child in kiln's memory until it execs. Undefined when the addon lacks it (one built before): Node's
 * spawn then (runBundle's `spawn`). Behaves as Node's child for what kiln uses: a failed start is an 'error' event (ENOENT,
 * Node's words), 'exit' comes with the code or the signal, after the output is read to its end.
 */
export function spawnPiped(file: string, args: readonly string[]): RuntimeChild | undefined {
  const addon = sys();
  if (!addon?.spawn || !addon.reap) return undefined;
  const { spawn, reap } = addon;
  const events = new EventEmitter();
  let spawned: [number, number, number, number];
  try {
    spawned = spawn(sealedCopy(file, addon) ?? file, [file, ...args], SPAWN_OUTPUT_PIPES);
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'EIO';
    const error = Object.assign(new Error(`spawn ${file} ${code}`), { code, syscall: `spawn ${file}`, path: file, spawnargs: [...args] });
    process.nextTick(() => events.emit('error', error));
    return Object.assign(events, { stdin: null, stdout: null, stderr: null, kill: () => false }) as unknown as RuntimeChild;
  }
  const [pid, , outFd, errFd] = spawned;
  // Node's net module loads here, as the runtime starts beside it, not before (some ms of a cold build).
  const { Socket } = process.getBuiltinModule('node:net');
  const stdout = new Socket({ fd: outFd, readable: true, writable: false });
  const stderr = new Socket({ fd: errFd, readable: true, writable: false });
  let ended: [number, number] | undefined;
  // 'exit' once the process is reaped and both pipes are read to their end.
  let waiting = 3;
  const settle = (): void => {
    if (--waiting > 0 || !ended) return;
    const [code, signal] = ended;
    events.emit('exit', signal === 0 ? code : null, signal === 0 ? null : (SIGNAL_NAMES.get(signal) ?? null));
  };
  stdout.on('close', settle);
  stderr.on('close', settle);
  // SIGCHLD tells that some child ended; each such child reaps its own pid only (Node's reap theirs).
  // Node's signal listeners keep no process alive: the timer does, until the reap (and looks itself, rarely).
  const alive = setInterval(() => onChild(), 500);
  const stop = (): void => {
    process.off('SIGCHLD', onChild);
    clearInterval(alive);
  };
  const onChild = (): void => {
    if (ended) return;
    try {
      ended = reap(pid);
    } catch (err) {
      stop();
      events.emit('error', err); // not kiln's child any more: nothing else reaps those
      return;
    }
    if (!ended) return;
    stop();
    settle();
  };
  process.on('SIGCHLD', onChild);
  onChild(); // it may have ended before the listener was there
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): boolean => {
    if (ended) return false;
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  };
  return Object.assign(events, { stdin: null, stdout, stderr, kill }) as unknown as RuntimeChild;
}

/**
 * The guard's start (see runtime/guard.ts) through native/sys's posix_spawn, for the reason above; its
 * lines are written straight into the pipe (a blocking one), without Node's stream and net modules.
 */
export function startGuard(file: string, args: readonly string[]): GuardPipe | undefined {
  const spawn = sys()?.spawn;
  if (!spawn) return undefined;
  let stdinFd: number;
  try {
    [, stdinFd] = spawn(file, [file, ...args], SPAWN_STDIN_PIPE | SPAWN_SESSION);
  } catch {
    return undefined; // Node's spawn tries, and tells no one either
  }
  let open = true;
  return (line) => {
    if (!open) return false;
    try {
      const bytes = Buffer.from(line);
      for (let at = 0; at < bytes.length; ) at += writeSync(stdinFd, bytes, at);
    } catch {
      open = false; // EPIPE: the guard is gone (the descriptor closes as kiln ends, which is the guard's signal)
    }
    return open;
  };
}
