/**
 * `docker logs` and the output side of attach: what a container wrote, in the order it came, read from
 * the log its supervisor keeps (runtime/logs.ts); with `follow`, until it has exited and all is read.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError } from '../../errors.js';
import { LogReader, type LogStream, logFile, logSize, nowNanos, rfc3339Nano, tailOffset } from '../../runtime/logs.js';
import type { Engine } from '../engine.js';
import { parseTimestamp } from '../filters.js';
import { FOLLOW_MS, containerBundle, containerStatus, currentRow } from './records.js';

export interface FollowOptions {
  /** Go on until the container has exited (`logs -f`, attach), or stop at what is there now. */
  readonly follow: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  /** Only what is written from now on (an attach to a running container). */
  readonly onlyNew?: boolean;
  /** Only what is written after this offset of the log (taken with logOffset before a start). */
  readonly from?: number;
  /** Only the last lines of the chosen streams, and what comes after (`--tail N`). */
  readonly tail?: number;
  /** Only what was written from `since` and up to `until` (nanoseconds since the epoch). */
  readonly since?: bigint;
  readonly until?: bigint;
  /** A container not started yet is waited for (an attach before start), not taken as done. */
  readonly waitForStart?: boolean;
  /** Stops following (a detach, a client gone): the promise then resolves. */
  readonly signal?: AbortSignal;
}

/** A piece of output as a follower gets it; the next is read once what it returns has settled (a promise: a writer that keeps two outputs in order). */
export type LogWrite = (stream: LogStream, data: Buffer, time: bigint) => unknown;

/** Where a container's log ends now: `start -a` follows from there, so that it misses nothing the start writes. */
export function logOffset(engine: Engine, id: string): Promise<number> {
  return logSize(logFile(containerBundle(engine, id)));
}

/** `logs --tail` (the API's `tail`): a number of lines, or undefined for all (`all`, or a negative number, as docker takes them). */
export function tailLines(value: string): number | undefined {
  if (value === 'all') return undefined;
  if (!/^-?\d+$/.test(value)) throw new KilnError('INVALID_ARGUMENT', `invalid value for "tail": ${JSON.stringify(value)} is not a number of lines or "all"`);
  return Number(value) < 0 ? undefined : Number(value);
}

/** `--since` and `--until` as Docker reads them (a time, Unix seconds, or a duration ago), in nanoseconds; '' and 0 are none. */
export function logTime(value: string | undefined | null): bigint | undefined {
  if (!value || value === '0') return undefined;
  return BigInt(Math.round(parseTimestamp(value))) * 1_000_000n;
}

/**
 * `logs -t`: each line the writer gets starts with the time it was written (RFC 3339 with nanoseconds),
 * as Docker prints it; a line that came in pieces gets the first piece's time.
 */
export function timestamped(write: LogWrite): LogWrite {
  const atLineStart: Record<LogStream, boolean> = { stdout: true, stderr: true };
  return (stream, data, time) => {
    const text = atLineStart[stream] ? Buffer.concat([Buffer.from(`${rfc3339Nano(time)} `), data]) : data;
    atLineStart[stream] = data.at(-1) === 0x0a;
    return write(stream, text, time);
  };
}

/** Reads a container's log to `write` (see FollowOptions). */
export async function followLogs(engine: Engine, id: string, write: LogWrite, options: FollowOptions): Promise<void> {
  const path = logFile(containerBundle(engine, id));
  const streams = new Set<LogStream>([...(options.stdout ? ['stdout' as const] : []), ...(options.stderr ? ['stderr' as const] : [])]);
  const start = options.tail !== undefined ? await tailOffset(path, options.tail, streams) : (options.from ?? (options.onlyNew ? await logSize(path) : 0));
  const reader = new LogReader(path, start);
  try {
    for (;;) {
      // Looked at before reading: what the container wrote before it exited is all read below.
      const row = currentRow(engine, id);
      const status = row && containerStatus(row);
      const done = !row || status === 'exited' || (status === 'created' && !options.waitForStart);
      for await (const record of reader.records()) {
        if (options.until !== undefined && record.time > options.until) return;
        if (streams.has(record.stream) && (options.since === undefined || record.time >= options.since)) await write(record.stream, record.data, record.time);
      }
      if (done || !options.follow || options.signal?.aborted || (options.until !== undefined && nowNanos() > options.until)) return;
      await delay(FOLLOW_MS, undefined, { signal: options.signal }).catch(() => undefined);
    }
  } finally {
    await reader.close();
  }
}
