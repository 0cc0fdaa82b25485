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
  if (!addon?.spawn || !addon.watch) return undefined;
  const events = new EventEmitter();
  let spawned: [number, number, number, number];
  try {
    spawned = addon.spawn(sealedCopy(file, addon) ?? file, [file, ...args], SPAWN_OUTPUT_PIPES);
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'EIO';
    process.nextTick(() => events.emit('error', spawnError(file, args, code)));
    return Object.assign(events, { stdin: null, stdout: null, stderr: null, kill: () => false }) as unknown as RuntimeChild;
  }
  const [pid, , outFd, errFd] = spawned;
  // The output comes through native/sys's thread, which reaps the child after it: Node's net and stream
  // modules, which a socket per pipe needs, would load as the first RUN starts (some ms of a cold build).
  const stdout = new EventEmitter();
  const stderr = new EventEmitter();
  let ended = false;
  addon.watch(pid, outFd, errFd, (stream, chunkOrCode, signal) => {
    if (stream === 1) stdout.emit('data', chunkOrCode);
    else if (stream === 2) stderr.emit('data', chunkOrCode);
    else {
      ended = true;
      if (stream === 0) events.emit('exit', signal === 0 ? chunkOrCode : null, signal === 0 ? null : (SIGNAL_NAMES.get(signal) ?? null));
      else events.emit('error', spawnError(file, args, errnoName(chunkOrCode as number), 'waitpid')); // not kiln's child any more: nothing else reaps those
    }
  });
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

/** The name of an errno (ECHILD). */
function errnoName(errno: number): string {
  return Object.entries(constants.errno).find(([, value]) => value === errno)?.[0] ?? 'EIO';
}

/** An Error as Node's spawn makes it (`spawn FILE ENOENT`, with code, syscall, path and spawnargs). */
function spawnError(file: string, args: readonly string[], code: string, call = 'spawn'): Error {
  return Object.assign(new Error(`${call} ${file} ${code}`), { code, syscall: `${call} ${file}`, path: file, spawnargs: [...args] });
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
