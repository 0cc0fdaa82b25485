import { createWriteStream, fstatSync, writeSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { KilnError, fileWriteError } from '../errors.js';
import { sys } from '../sys.js';

/** The streams a command talks to: the process's own, or a test's. */
export interface Io {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; rows?: number; columns?: number };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
}

type Stdout = Io['stdout'];
type WriteDone = (err?: Error | null) => void;

/**
 * Standard output or error when it is a file, a pipe or a socket: text goes straight to the descriptor
 * with writeSync, as Node's own stream would write it there (synchronously, on Linux), without making that
 * stream, which loads Node's net and stream modules (some thirty, a few ms of every command that
 * prints, and of every build's progress). It is no terminal (isTTY is false). Anything else asked of it
 * (piping into it, an event other than 'error', another property) makes the stream, which then takes
 * every later write, after what was already written; so does a descriptor that its opener made
 * non-blocking (EAGAIN), which the stream knows how to wait on.
 */
function directOutput(fd: 1 | 2, nodeStream: () => NodeJS.WriteStream): Stdout {
  let stream: NodeJS.WriteStream | undefined;
  const errorListeners: ((err: Error) => void)[] = [];
  const made = (): NodeJS.WriteStream => {
    if (!stream) {
      stream = nodeStream();
      for (const listener of errorListeners) stream.on('error', listener);
    }
    return stream;
  };
  const write = (chunk: string | Uint8Array, encoding?: BufferEncoding | WriteDone, callback?: WriteDone): boolean => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (stream) return stream.write(chunk, typeof encoding === 'string' ? encoding : 'utf8', done);
    let data: Uint8Array | undefined;
    let written = 0;
    try {
      if (typeof chunk === 'string') {
        // Text goes as it is: Node encodes it into a buffer it reuses, where a Buffer per write would be
        // fresh memory (a first touch of every page costs more than the copy; big outputs write MBs).
        const textEncoding = typeof encoding === 'string' ? encoding : 'utf8';
        written = writeSync(fd, chunk, null, textEncoding);
        if (written === Buffer.byteLength(chunk, textEncoding)) {
          if (done) process.nextTick(done);
          return true;
        }
        data = Buffer.from(chunk, textEncoding);
      } else data = chunk;
      while (written < data.length) written += writeSync(fd, data, written);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return data ? made().write(data.subarray(written), done) : made().write(chunk, typeof encoding === 'string' ? encoding : 'utf8', done);
      // As the stream reports a failed write (EPIPE when the reader went away): to its 'error' listeners.
      if (errorListeners.length === 0) throw err;
      for (const listener of errorListeners) listener(err as Error);
      return false;
    }
    if (done) process.nextTick(done);
    return true;
  };
  const direct: Stdout = new Proxy({} as Stdout, {
    get(_, key) {
      if (key === 'write') return write;
      if (key === 'isTTY' && !stream) return false;
      if (key === 'on' && !stream) {
        return (event: string, listener: (...args: unknown[]) => void) => {
          if (event === 'error') errorListeners.push(listener);
          else made().on(event, listener);
          return direct;
        };
      }
      const value: unknown = Reflect.get(made(), key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(stream) : value;
    },
    set: (_, key, value) => Reflect.set(made(), key, value),
    has: (_, key) => Reflect.has(made(), key),
  });
  return direct;
}

/**
 * Whether a descriptor is a file, a pipe, a socket or one of Linux's memory devices (`> /dev/null`, major
 * number 1, never a terminal); a terminal, or none, gets Node's stream.
 */
function writesDirectly(fd: 1 | 2): boolean {
  try {
    const kind = fstatSync(fd);
    return kind.isFile() || kind.isFIFO() || kind.isSocket() || (kind.isCharacterDevice() && (kind.rdev >> 8 & 0xfff) === 1);
  } catch {
    return false;
  }
}

let stdout: Stdout | undefined;
let stderr: Io['stderr'] | undefined;

/**
 * Node's process.stdout and process.stderr, once anything (kiln's Io, a runtime forwarding a container's
 * output) has made them: such a stream to a pipe may hold bytes the pipe could not take yet, which
 * process.exit would drop (see exitWhenWritten). Node makes each (and stdin) at its first read of the
 * property, which is watched here instead of made.
 */
const nodeStreams: NodeJS.WriteStream[] = [];
/** Whether Node has made process.stdin, stdout or stderr: as it ends it puts their descriptors back as it found them (see exitWhenWritten). */
let stdioMade = false;
for (const name of ['stdin', 'stdout', 'stderr'] as const) {
  const property = Object.getOwnPropertyDescriptor(process, name);
  const make = property?.get?.bind(process);
  if (!make || !property?.configurable) continue;
  Object.defineProperty(process, name, {
    ...property,
    get() {
      stdioMade = true;
      const stream = make() as NodeJS.WriteStream;
      if (name !== 'stdin' && !nodeStreams.includes(stream)) nodeStreams.push(stream);
      return stream;
    },
  });
}

/**
 * Ends the process with a command's exit code once what it wrote is written: at once unless a stream
 * still queues output, then as Node ends a process, when nothing is left to do. Ending at once spares
 * Node's tear-down of the heap (some ms after every command; more after a big one). What a command
 * started and awaited is done by then; what it left undone is what a kill at this moment would leave,
 * which the store survives (see the kill -9 tests). At once is native/sys's _exit after the 'exit'
 * event, which spares Node's own ending too (about a millisecond: it frees the environment and joins
 * its threads). Not when Node has made a stdio stream (stdin, a terminal's): as it ends it puts their
 * descriptors' modes back (raw, non-blocking), which the shell shares; nor when Node was asked to write
 * something as it ends (a CPU profile, coverage: flags or NODE_OPTIONS, NODE_V8_COVERAGE). Then
 * process.exit.
 */
export function exitWhenWritten(code: number): void {
  if (nodeStreams.some((stream) => stream.writableLength > 0)) {
    process.exitCode = code;
    return;
  }
  const exitNow = !stdioMade && process.execArgv.length === 0 && !process.env.NODE_OPTIONS && !process.env.NODE_V8_COVERAGE ? sys()?.exitnow : undefined;
  if (exitNow) {
    process.exitCode = code;
    process.emit('exit', code);
    exitNow(code);
  }
  process.exit(code);
}

/** The process's streams, each made when first used (standard input's costs a few ms, and few commands read it). */
export const processIo: Io = {
  get stdout() {
    if (!stdout) {
      stdout = writesDirectly(1) ? directOutput(1, () => process.stdout) : process.stdout;
    }
    return stdout;
  },
  get stderr() {
    stderr ??= writesDirectly(2) ? directOutput(2, () => process.stderr) : process.stderr;
    return stderr;
  },
  get stdin() {
    return process.stdin;
  },
};

/**
 * Writes a container's output to stdout and stderr in the order given, also where both are one file
 * (`2>&1`): each stream queues what the file cannot take yet on its own, so the other's next write could
 * pass it. A write to one stream first waits until what the other was given is written; writes to the
 * same stream go on without waiting.
 */
export function orderedOutput(io: Io): (stream: 'stdout' | 'stderr', data: Uint8Array) => Promise<void> {
  let last: 'stdout' | 'stderr' | undefined;
  let written = Promise.resolve();
  return async (stream, data) => {
    if (stream !== last) await written;
    last = stream;
    written = new Promise((resolve) => io[stream].write(data, () => resolve()));
  };
}

/** Prints a line (a newline is added unless the text ends with one). */
export function print(io: Io, text: string): void {
  io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Prints rendered rows as they are: nothing at all when there are none. */
export function printRows(io: Io, rendered: string): void {
  io.stdout.write(rendered);
}

/** Docker's `[y/N]` prompt; anything but y/yes declines. */
export async function confirm(io: Io, question: string): Promise<boolean> {
  io.stdout.write(`${question} [y/N] `);
  // Loaded here, as `pipeline` below: every command loads this module, few prompt or write a file.
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: io.stdin });
  try {
    for await (const line of rl) return /^y(es)?$/i.test(line.trim());
    return false;
  } finally {
    rl.close();
  }
}

/** A boolean flag value written as `--flag=false` or `-H=0`, as Go's flag package accepts. */
export function parseBool(value: string): boolean {
  const v = value.toLowerCase();
  if (['1', 't', 'true'].includes(v)) return true;
  if (['0', 'f', 'false'].includes(v)) return false;
  throw new KilnError('INVALID_ARGUMENT', `invalid boolean value ${JSON.stringify(value)}`);
}

/** An integer flag value (`-t 5`, `-t -1`), as Go's flag package accepts. */
export function parseInteger(value: string): number {
  if (!/^[+-]?\d+$/.test(value)) throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(value)}: an integer is needed`);
  return Number(value);
}

/** The help of --insecure-registry, for every command that reaches a registry. */
export const INSECURE_HELP = 'a registry reached over plain HTTP or unverified TLS (loopback ones always are; also $KILN_INSECURE_REGISTRIES)';

export interface RegistryFlags {
  insecureRegistry?: string[];
}

/** The registries --insecure-registry and $KILN_INSECURE_REGISTRIES name. */
export function insecure(flags: RegistryFlags): string[] {
  return [...(flags.insecureRegistry ?? []), ...(process.env.KILN_INSECURE_REGISTRIES ?? '').split(',').filter(Boolean)];
}

/** Collects a repeatable option (`-f a -f b`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Writes a stream to `path` through a temporary sibling renamed into place, so a failure never leaves a
 * half-written file under the name the user asked for.
 */
export async function writeFileAtomically(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
  const temp = `${path}.kiln-tmp-${process.pid}`;
  const { pipeline } = await import('node:stream/promises');
  try {
    await pipeline(source, createWriteStream(temp));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw fileWriteError(err, path);
  }
}
