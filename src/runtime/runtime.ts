import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, open as openCallback, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { KilnError, readTextIfPresent } from '../errors.js';
import { guardUndo, shellQuote } from './guard.js';
import { LogWriter, logFile } from './logs.js';
import { type ConsoleSize, specJson } from './spec.js';
import { execFileAsync } from '../exec-file.js';
import { shortId } from '../oci/digest.js';

/**
 * The IDs of the runtime's containers on this machine (`runc list -q`). The list is read from one state
 * directory every runtime process shares: a container that goes away between its listing and the read
 * of its state fails the whole command ("no such file or directory"), so that failure is tried again.
 * Rejects when the runtime is missing or fails otherwise.
 */
export async function runtimeContainerIds(runtime: RuntimeName): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await execFileAsync(runtime, ['list', '-q'])).stdout.split('\n').filter(Boolean);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      if (attempt >= 20 || !stderr.includes('no such file or directory')) throw err;
    }
  }
}
const openFd = promisify(openCallback);

export type RuntimeName = 'runc' | 'crun';

const HUGETLB = '/sys/fs/cgroup/hugetlb';

/**
 * True when crun 1.8 would refuse to start on this host as it is: a hybrid cgroup host (v1 controllers
 * plus a v2 `unified` mount) where the hugetlb controller is not mounted as a v1 hierarchy too.
 */
function crunNeedsHugetlb(): boolean {
  const hybrid = existsSync('/sys/fs/cgroup/unified') && existsSync('/sys/fs/cgroup/memory');
  if (!hybrid) return false;
  const mounts = readFileSync('/proc/self/mounts', 'utf8'); // a few kB, and a thread-pool round trip would cost more
  return !mounts.split('\n').some((line) => line.split(' ')[1] === HUGETLB);
}

/** kiln mounts the hugetlb controller crun needs (root only) and says so; runc needs nothing. Returns what kiln did, for the caller to tell the user. */
export async function prepareRuntime(runtime: RuntimeName): Promise<string | undefined> {
  if (runtime !== 'crun' || !crunNeedsHugetlb()) return undefined;
  await mkdir(HUGETLB, { recursive: true });
  await execFileAsync('mount', ['-t', 'cgroup', '-o', 'hugetlb', 'cgroup', HUGETLB]).catch((err: Error) => {
    throw new KilnError('UNSUPPORTED', `crun needs the hugetlb cgroup controller mounted on this hybrid-cgroup host, and mounting it failed (${err.message.trim()}); use --runtime runc`);
  });
  return `kiln: mounted the hugetlb cgroup v1 controller at ${HUGETLB}, which crun needs on this hybrid-cgroup host (runc does not)`;
}

/**
 * The runtime of RUN steps when the build names none: crun where it is installed and runs on this host as
 * it is (kiln sets the host up for it only when asked to use it), else runc. A step's container starts in
 * about half runc's time in crun (0.12 s against 0.25 s on a busy 2-core machine), and RUN steps behave
 * the same in both: same spec, same exit codes.
 */
export function buildRuntime(): RuntimeName {
  return onPath('crun') !== undefined && !crunNeedsHugetlb() ? 'crun' : 'runc';
}

/** Where the shell would find the program `name`: the first executable of that name in PATH's directories. */
/** The init of `run --init`: Docker's docker-init (a static tini), from PATH, or Debian's tini-static. */
export function initBinary(): string {
  const found = onPath('docker-init') ?? onPath('tini-static');
  if (!found) throw new KilnError('NOT_FOUND', "--init needs docker-init (a static tini) on PATH: install Debian's tini package");
  return found;
}

export function onPath(name: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, name))
    .find((file) => {
      try {
        accessSync(file, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/**
 * Runs a bundle's process in the OCI runtime in the foreground: stdio passes through, the exit code comes
 * back, SIGINT/SIGTERM sent to kiln reach the container's process (runc forwards what it receives).
 * `runc run` removes the container's runtime state when the process exits.
 */
export interface BundleStdio {
  /**
   * `fifo`: the process's stdin is what is written to this named pipe, once the process runs; with `once`
   * it ends when the first writer closes, else the pipe waits for the next writer (attach after attach).
   */
  readonly stdin: 'inherit' | 'ignore' | { readonly fifo: string; readonly once: boolean };
  readonly keepLogs: boolean;
  readonly tty?: boolean;
  /** Where the process's output goes instead of kiln's own stdout/stderr (a build step's log). */
  readonly output?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Kills the container when aborted (a build whose client went away). */
  readonly signal?: AbortSignal;
  /**
   * Starts the runtime when stdin is 'ignore' and the output goes to `output`, in place of Node's spawn
   * (a build step's: see builder/spawn.ts); undefined from it means Node's spawn.
   */
  readonly spawn?: (file: string, args: readonly string[]) => RuntimeChild | undefined;
}

/** What kiln uses of a runtime's process: Node's ChildProcess has it, and so has one of BundleStdio's `spawn`. */
export type RuntimeChild = Pick<ChildProcess, 'stdin' | 'stdout' | 'stderr' | 'kill' | 'on'>;

export async function runBundle(runtime: RuntimeName, bundle: string, id: string, spec: object, stdio: BundleStdio): Promise<number> {
  stdio.signal?.throwIfAborted();
  // Synchronously: a thread-pool round trip costs more than writing a few kB.
  writeFileSync(join(bundle, 'config.json'), specJson(spec));
  const unguard = await guardUndo(removeContainerCommand(runtime, id));
  const child = spawnRuntime(runtime, bundle, id, spec, stdio);
  // The guard's own command: it also kills a container the runtime is still creating.
  const kill = (): void => void spawn('sh', ['-c', removeContainerCommand(runtime, id)], { stdio: 'ignore' }).on('error', () => undefined);
  stdio.signal?.addEventListener('abort', kill, { once: true });
  const write = stdio.output ?? ((stream: 'stdout' | 'stderr', chunk: Buffer) => process[stream].write(chunk));
  // A kept container's output is also written to its bundle's log, for `kiln logs` and attach (a
  // terminal's as stdout), after what earlier runs of it wrote (a container started again). One thread
  // reads both pipes, so the log has them in the order read: a write is logged before any write made
  // after it was read. Writes closer together than a reader wakes have no order to see (the kernel keeps
  // none between pipes) and can swap, in Docker too; a blocking reader per pipe on its own thread, stamping
  // and merging, swapped them more often than this loop on a loaded machine (33% against 44% in order).
  const log = stdio.keepLogs ? new LogWriter(logFile(bundle)) : undefined;
  child.stdout?.on('data', (chunk: Buffer) => {
    write('stdout', chunk);
    log?.write('stdout', chunk);
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 65536) stderr += chunk.toString();
    write('stderr', chunk);
    log?.write('stderr', chunk);
  });
  const stopForwarding = forwardSignals(child);
  child.stdin?.on('error', () => undefined); // the process may exit without reading all of it
  const feeding = typeof stdio.stdin === 'object' && child.stdin ? feedStdin(runtime, id, stdio.stdin, child.stdin) : undefined;
  try {
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', (err) =>
        reject(
          supervisedTerminal(stdio)
            ? new KilnError('NOT_FOUND', `cannot start util-linux's script, which gives a detached container's runtime its terminal: ${err.message} (install Debian's bsdutils package)`)
            : new KilnError('NOT_FOUND', `cannot start the OCI runtime ${runtime}: ${err.message} (install Debian's ${runtime} package, or pick another with --runtime)`),
        ),
      );
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    if (supervisedTerminal(stdio)) {
      // The runtime's own messages went to a file, not into the terminal's stream: the log shows them.
      const runtimeErrors = await readFile(join(bundle, RUNTIME_ERRORS), 'utf8').catch(() => '');
      stderr += runtimeErrors;
      if (runtimeErrors) log?.write('stderr', Buffer.from(runtimeErrors));
    }
    return exitCode(runtime, exit.code, exit.signal, stderr);
  } finally {
    stdio.signal?.removeEventListener('abort', kill);
    unguard();
    stopForwarding();
    if (feeding) await feeding.stop();
    child.stdin?.destroy();
    await log?.close();
  }
}

/**
 * A shell command that kills and deletes a runtime container if kiln dies while it runs (see guard.ts).
 * It tries for a second at least, and up to three while the container is there: the runtime may still
 * be creating it when kiln dies.
 */
function removeContainerCommand(runtime: RuntimeName, id: string): string {
  const [r, i] = [shellQuote(runtime), shellQuote(id)];
  return `for n in $(seq 30); do ${r} kill ${i} KILL; ${r} delete --force ${i}; ${r} state ${i} || [ $n -lt 10 ] || break; sleep 0.1; done >/dev/null 2>&1`;
}

/** The file in a bundle where a supervised terminal's runtime writes its own errors. */
const RUNTIME_ERRORS = 'runtime.err';
/** Where in its bundle the runtime writes the pid of the container's first process (inspect's State.Pid). */
export const INIT_PID_FILE = 'init.pid';
/** Where in a detached terminal container's bundle the path of the terminal its runtime relays to is (script's). */
const RELAYED_TERMINAL_FILE = 'relayed-tty';

function supervisedTerminal(stdio: BundleStdio): boolean {
  return (stdio.tty ?? false) && stdio.keepLogs;
}

/**
 * The runtime's process for each kind of stdio. A terminal in the foreground: runc allocates the
 * pseudo-terminal and relays it to the one kiln runs in, so every stream is inherited. A terminal with
 * no one's terminal to relay to (a detached container): runc still needs one of its own, so it runs
 * under util-linux's `script`, whose pseudo-terminal is put in raw mode at the console size first (runc
 * would set raw mode too, but only later: input arriving before would be echoed and an EOF lost).
 */
function spawnRuntime(runtime: RuntimeName, bundle: string, id: string, spec: object, stdio: BundleStdio): RuntimeChild {
  const stdin = stdio.stdin === 'inherit' ? 'inherit' : stdio.stdin === 'ignore' ? 'ignore' : 'pipe';
  const args = ['run', '--bundle', bundle, '--pid-file', join(bundle, INIT_PID_FILE), id];
  if (supervisedTerminal(stdio)) {
    const size = (spec as { process?: { consoleSize?: ConsoleSize } }).process?.consoleSize ?? { height: 24, width: 80 };
    return underScript([runtime, ...args].map(shellQuote).join(' '), size, join(bundle, RUNTIME_ERRORS), join(bundle, RELAYED_TERMINAL_FILE));
  }
  if (stdio.tty) return spawn(runtime, args, { stdio: 'inherit' });
  const piped = stdin === 'ignore' && stdio.output && stdio.spawn ? stdio.spawn(runtime, args) : undefined;
  return piped ?? spawn(runtime, args, { stdio: [stdin, stdio.keepLogs || stdio.output ? 'pipe' : 'inherit', 'pipe'] });
}

/**
 * A runtime command under util-linux's `script`, for a terminal that is no one's: the pseudo-terminal is
 * put in raw mode at `size` first; the runtime's own messages go to `errors`. script's input is a pipe,
 * to be held open until the runtime exits: at the end of its input script types the EOF character, which
 * the terminal would echo (as ^@) if it came before the raw mode.
 */
function underScript(runtimeCommand: string, size: ConsoleSize, errors: string, terminalFile?: string): ChildProcess {
  const named = terminalFile ? ` && { tty > ${shellQuote(terminalFile)} || true; }` : ''; // a resize without it still sizes the container's
  const command = `stty raw -echo rows ${size.height} cols ${size.width}${named} && exec ${runtimeCommand} 2>${shellQuote(errors)}`;
  return spawn('script', ['--quiet', '--return', '--echo', 'never', '--command', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SHELL: '/bin/sh' } });
}

/** Where an exec's process reads and writes when not kiln's own stdio (the Engine API's exec). */
export interface ExecStreams {
  readonly stdin?: Readable;
  /** With a terminal, everything the process writes comes as 'stdout', raw. */
  readonly output: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** With a terminal: its first size. */
  readonly consoleSize?: ConsoleSize;
}

/**
 * Runs one more process in a running container (`exec`, with its full process spec in `processFile`).
 * In the foreground its stdio is kiln's (with `terminal`, a pseudo-terminal the runtime relays at kiln's
 * terminal's size) and SIGINT/SIGTERM sent to kiln reach it, or it is `streams`; its exit code comes
 * back. `detach` starts it and returns 0.
 */
export async function execProcess(runtime: RuntimeName, id: string, files: { readonly process: string; readonly pid: string }, options: { readonly stdin: boolean; readonly tty: boolean; readonly detach: boolean; readonly signal?: AbortSignal }, streams?: ExecStreams): Promise<number> {
  const args = ['exec', '--process', files.process, '--pid-file', files.pid, ...(options.detach ? ['--detach'] : []), id];
  const errors = `${files.process}.err`;
  const stdin = options.stdin && !options.detach ? (streams ? 'pipe' : 'inherit') : 'ignore';
  const child = options.detach
    ? spawn(runtime, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    : options.tty && streams
      ? underScript([runtime, ...args].map(shellQuote).join(' '), streams.consoleSize ?? { height: 24, width: 80 }, errors) // no one's terminal: script's
      : options.tty
        ? spawn(runtime, args, { stdio: 'inherit' }) // kiln's own terminal, relayed by the runtime
        : spawn(runtime, args, { stdio: [stdin, streams ? 'pipe' : 'inherit', 'pipe'] });
  if (streams?.stdin && child.stdin) {
    child.stdin.on('error', () => streams.stdin?.resume()); // the process stopped reading: drop the rest
    streams.stdin.pipe(child.stdin);
  }
  child.stdout?.on('data', (chunk: Buffer) => streams?.output('stdout', chunk));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 65536) stderr += chunk.toString();
    if (streams) streams.output('stderr', chunk);
    else process.stderr.write(chunk);
  });
  const stopForwarding = streams ? () => undefined : forwardSignals(child);
  // Aborted (a health check past its timeout): the process is killed where it runs, and the runtime's exec ends with it.
  const onAbort = (): void => {
    const pid = Number(readTextIfPresent(files.pid) ?? 0); // none yet: the runtime's exec is still starting it
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // it has ended meanwhile
    }
    child.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort(); // aborted on the way here: an abort event comes only once
  try {
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', (err) => reject(new KilnError('NOT_FOUND', `cannot start the OCI runtime ${runtime}: ${err.message}`)));
      child.on('close', (code, signal) => resolve({ code, signal }));
      // Aborted, its end is the runtime's exit: what it started in a container on its way out may hold the output open.
      child.on('exit', (code, signal) => {
        if (options.signal?.aborted) resolve({ code, signal });
      });
    });
    if (options.tty && streams) {
      const runtimeErrors = await readFile(errors, 'utf8').catch(() => '');
      stderr += runtimeErrors;
      if (runtimeErrors) streams.output('stdout', Buffer.from(runtimeErrors.replace(/\n/g, '\r\n')));
    }
    return exitCode(runtime, exit.code, exit.signal, stderr);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    stopForwarding();
    streams?.stdin?.unpipe();
    await rm(errors, { force: true });
  }
}

/**
 * Sets the terminal size of a process started by `exec` with a terminal (whose pid the runtime writes to
 * `pidFile`), as resizeTerminal does for a container's.
 */
export async function resizeExecTerminal(pidFile: string, size: ConsoleSize): Promise<void> {
  // Just after the start, the runtime may not have written the pid yet: polled for (no event), 5 s at most.
  const deadline = Date.now() + 5000;
  let pid = 0;
  while (!(pid = Number(await readFile(pidFile, 'utf8').catch(() => ''))) && Date.now() < deadline) await delay(20);
  if (!pid) throw new KilnError('CONFLICT', 'the exec process is not running');
  await execFileAsync('stty', ['-F', `/proc/${pid}/fd/0`, 'rows', String(size.height), 'cols', String(size.width)]).catch((err: Error) => {
    throw new KilnError('CONFLICT', `cannot resize the exec process's terminal: ${err.message.trim()}`);
  });
}

/** Passes SIGINT and SIGTERM sent to kiln on to a runtime child (which passes them to its process); returns the undo. */
function forwardSignals(child: Pick<RuntimeChild, 'kill'>): () => void {
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}

/** Docker's exit code for how the runtime ended. */
function exitCode(runtime: RuntimeName, code: number | null, signal: NodeJS.Signals | null, stderr: string): number {
  if (/cgroups in hybrid mode not supported/.test(stderr)) {
    throw new KilnError('UNSUPPORTED', `${runtime} refuses this machine's hybrid cgroup setup; use --runtime runc, or mount the hugetlb controller: mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`);
  }
  // The command cannot be found, or run: runc's words, then crun's.
  if (code !== 0 && (/executable file not found|no such file or directory/.test(stderr) || /^executable file `.*` not found in \$PATH/m.test(stderr))) return 127;
  if (code !== 0 && (/permission denied/.test(stderr) || /^open executable: (?:Permission denied|Operation not permitted)$/m.test(stderr))) return 126;
  return code ?? 128 + (signal ? (({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }) as Record<string, number>)[signal] ?? 1 : 1);
}

/**
 * Copies what is written to a container's stdin pipe (the named pipe in its bundle) into the process,
 * once it runs. When the writer closes, the process's stdin ends (`once`, Docker's StdinOnce) or the pipe
 * is opened again for the next one. Waiting for a writer is a blocking open on a thread-pool thread,
 * which `stop` releases by opening the pipe for writing itself; the reading after that is on the event
 * loop, so `stop` ends it at once.
 */
function feedStdin(runtime: RuntimeName, id: string, pipe: { readonly fifo: string; readonly once: boolean }, stdin: Writable): { stop(): Promise<void> } {
  let stopped = false;
  let reader: Socket | undefined;
  const opening = (async () => {
    await runningState(runtime, id, () => stopped);
    // node:net loads here, not with this module: a build that runs nothing does not need it.
    const { Socket } = await import('node:net');
    while (!stopped) {
      const fd = await openFd(pipe.fifo, constants.O_RDONLY);
      reader = new Socket({ fd, readable: true, writable: false });
      if (stopped) break;
      const current = reader;
      await new Promise<void>((resolve) => {
        current.on('end', resolve);
        current.on('close', resolve);
        current.on('error', () => resolve());
        current.pipe(stdin, { end: false });
      });
      current.unpipe(stdin);
      current.destroy();
      if (pipe.once) break;
    }
    reader?.destroy();
    stdin.end();
  })().catch(() => stdin.end());
  return {
    async stop() {
      stopped = true;
      reader?.destroy(); // a writer may still be attached: reading stops all the same
      const writer = await openFd(pipe.fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined); // ENXIO: no open waits
      if (writer !== undefined) closeSync(writer);
      await opening;
      reader?.destroy();
    },
  };
}

/**
 * Waits until the runtime reports the container running (its terminal, if any, is then in raw mode),
 * or `cancelled` says to stop waiting. Polls: the runtime has no event for it.
 */
async function runningState(runtime: RuntimeName, id: string, cancelled: () => boolean): Promise<number | undefined> {
  while (!cancelled()) {
    const state = await execFileAsync(runtime, ['state', id]).then(({ stdout }) => JSON.parse(stdout) as { status?: string; pid?: number }, () => undefined);
    if (state?.status === 'running' && state.pid) return state.pid;
    await delay(20);
  }
  return undefined;
}

/**
 * Sets a running container's terminal size (`docker resize`, and the client's first size after start):
 * on the process's terminal, which makes the kernel send it SIGWINCH. Waits a little for a container that
 * is still starting.
 */
export async function resizeTerminal(runtime: RuntimeName, id: string, bundle: string, size: ConsoleSize): Promise<void> {
  const deadline = Date.now() + 5000;
  const pid = await runningState(runtime, id, () => Date.now() > deadline);
  if (pid === undefined) throw new KilnError('CONFLICT', `container ${shortId(id)} is not running`);
  const sizeArgs = ['rows', String(size.height), 'cols', String(size.width)];
  // A detached container's runtime copies the size of the terminal it relays to (script's) onto the
  // container's, once as it sets up (which may come after this resize) and at each SIGWINCH: that one
  // is sized first, so that whatever the runtime copies is this size.
  const relayed = await readFile(join(bundle, RELAYED_TERMINAL_FILE), 'utf8').then((path) => path.trim(), () => undefined);
  if (relayed?.startsWith('/dev/pts/')) await execFileAsync('stty', ['-F', relayed, ...sizeArgs]).catch(() => undefined);
  await execFileAsync('stty', ['-F', `/proc/${pid}/fd/0`, ...sizeArgs]).catch((err: Error) => {
    throw new KilnError('CONFLICT', `cannot resize the terminal of container ${shortId(id)}: ${err.message.trim()}`);
  });
}

/** The named pipe in a detached container's bundle that feeds its stdin (`-i`). */
export function stdinPipe(bundle: string): string {
  return join(bundle, 'stdin');
}

export async function makeStdinPipe(bundle: string, once: boolean): Promise<void> {
  await execFileAsync('mkfifo', ['-m', '0600', stdinPipe(bundle)]);
  if (once) await writeFile(join(bundle, STDIN_ONCE), '');
}

/** Marks a bundle whose process's stdin ends with the first writer's (Docker's StdinOnce). */
const STDIN_ONCE = 'stdin-once';

/** How a supervisor feeds a detached container's stdin, if it has one (see `makeStdinPipe`). */
export function stdinOf(bundle: string): BundleStdio['stdin'] {
  const fifo = stdinPipe(bundle);
  return existsSync(fifo) ? { fifo, once: existsSync(join(bundle, STDIN_ONCE)) } : 'ignore';
}
