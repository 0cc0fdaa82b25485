/**
 * A container's log: one file in its bundle holding what its process wrote to stdout and stderr, in the
 * order it came, each piece with the time it came (Docker's json-file driver keeps the same: one stream,
 * a stream name and a time per message). A record is a line (ending in a newline), or the last piece of
 * what one read brought without a newline (a prompt): followers see a piece at once, not when its line
 * ends, and the bytes are kept as they were (a binary output too).
 *
 * A record: its payload's length (u32, big endian), the stream (u8: 1 stdout, 2 stderr), the time
 * (u64, nanoseconds since the epoch), the payload, and the length again, so that `--tail` can read the
 * file backwards. Records are only appended, by the one process that runs the container at a time.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';

export type LogStream = 'stdout' | 'stderr';

/** One piece of output as the log keeps it. */
export interface LogRecord {
  readonly stream: LogStream;
  /** Nanoseconds since the epoch. */
  readonly time: bigint;
  readonly data: Buffer;
  /** Where the record after this one starts. */
  readonly next: number;
}

const HEAD = 13;
const TAIL = 4;
const MAX_RECORD = 1 << 20;

/** The log file in a container's bundle. */
export function logFile(bundle: string): string {
  return join(bundle, 'container.log');
}

/** Now in nanoseconds since the epoch: the wall clock's milliseconds, with the monotonic clock's finer part. */
const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
export function nowNanos(): bigint {
  return origin + process.hrtime.bigint();
}

/** Appends what a process writes to a log, as records (see above). */
export class LogWriter {
  private readonly out: WriteStream;

  constructor(path: string) {
    this.out = createWriteStream(path, { flags: 'a' });
    this.out.on('error', () => undefined); // a full disk loses log lines, never the container
  }

  write(stream: LogStream, chunk: Buffer, time = nowNanos()): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = Math.min(newline < 0 ? chunk.length : newline + 1, start + MAX_RECORD);
      this.out.write(encodeRecord(stream, time, chunk.subarray(start, end)));
      start = end;
    }
  }

  /** Resolves once everything written is in the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}

function encodeRecord(stream: LogStream, time: bigint, data: Buffer): Buffer {
  const record = Buffer.alloc(HEAD + data.length + TAIL);
  record.writeUInt32BE(data.length, 0);
  record[4] = stream === 'stdout' ? 1 : 2;
  record.writeBigUInt64BE(time, 5);
  data.copy(record, HEAD);
  record.writeUInt32BE(data.length, HEAD + data.length);
  return record;
}

/** How long the log is now: a follower from here sees only what comes next. */
export async function logSize(path: string): Promise<number> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return 0;
  try {
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

/**
 * Reads a log's records from an offset on, as they are appended. The file is opened once it exists and
 * kept open, so that a follower reads to the end even when the container's bundle is removed meanwhile
 * (`--rm`).
 */
export class LogReader {
  private handle: FileHandle | undefined;
  private position: number;

  constructor(
    private readonly path: string,
    offset: number,
  ) {
    this.position = offset;
  }

  /** The whole records written since the last call (a record still being written waits for the next). */
  async *records(): AsyncGenerator<LogRecord> {
    this.handle ??= await open(this.path, 'r').catch(() => undefined);
    const { handle } = this;
    if (!handle) return;
    const head = Buffer.alloc(HEAD);
    for (;;) {
      if ((await handle.read(head, 0, HEAD, this.position)).bytesRead < HEAD) return;
      const length = head.readUInt32BE(0);
      if (length > MAX_RECORD) return; // not a record: a damaged log ends here
      const data = Buffer.alloc(length);
      if ((await handle.read(data, 0, length, this.position + HEAD)).bytesRead < length) return;
      this.position += HEAD + length + TAIL;
      yield { stream: head[4] === 2 ? 'stderr' : 'stdout', time: head.readBigUInt64BE(5), data, next: this.position };
    }
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/**
 * Where the last `lines` lines of the chosen streams start (`--tail`), reading the log backwards: a
 * record that ends in a newline ends a line, and so does the log's last record.
 */
export async function tailOffset(path: string, lines: number, streams: ReadonlySet<LogStream>): Promise<number> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return 0;
  try {
    let position = (await handle.stat()).size;
    if (lines <= 0) return position;
    let seen = 0;
    let last = true;
    const word = Buffer.alloc(HEAD);
    while (position >= HEAD + TAIL) {
      if ((await handle.read(word, 0, TAIL, position - TAIL)).bytesRead < TAIL) break;
      const length = word.readUInt32BE(0);
      const start = position - TAIL - length - HEAD;
      if (length > MAX_RECORD || start < 0) break;
      await handle.read(word, 0, HEAD, start);
      const stream: LogStream = word[4] === 2 ? 'stderr' : 'stdout';
      if (streams.has(stream)) {
        const end = Buffer.alloc(1);
        if (length > 0) await handle.read(end, 0, 1, start + HEAD + length - 1);
        const endsLine = last || (length > 0 && end[0] === 0x0a);
        last = false;
        if (endsLine && ++seen > lines) return position;
      }
      position = start;
    }
    return 0;
  } finally {
    await handle.close();
  }
}

/** Docker's RFC 3339 time with nanoseconds (time.RFC3339Nano: trailing zeros of the fraction dropped). */
export function rfc3339Nano(nanos: bigint): string {
  const seconds = nanos / 1_000_000_000n;
  const fraction = String(nanos % 1_000_000_000n).padStart(9, '0').replace(/0+$/, '');
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
}
