import { readFileSync } from 'node:fs';

/**
 * KilnError is the one error type that reaches a user. Its code is stable (tests and the Engine API
 * map on it); its message says what went wrong and what to do, in one line, without a stack trace.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT' // a flag, option or argument a person typed is wrong
  | 'INVALID_REFERENCE' // an image reference does not follow Docker's grammar
  | 'INVALID_INPUT' // a file or stream from outside (tar, manifest, JSON) is malformed or hostile
  | 'DIGEST_MISMATCH' // bytes do not hash to the digest they claim
  | 'NOT_FOUND' // no such image, blob, layer or file
  | 'CONFLICT' // the operation would break something that is in use
  | 'UNSUPPORTED' // valid, but kiln does not do it (yet)
  | 'CORRUPT' // the store itself is damaged
  | 'FAILED' // something the user asked to run ran and failed (a RUN step's command)
  | 'UNAUTHORIZED' // a registry needs a login, or refused the credentials
  | 'NETWORK' // a registry or the network failed: a timeout, a dropped connection, a redirect loop
  | 'NO_SPACE' // the disk that holds the store (or another target) is full
  | 'BUSY' // another kiln process held what this one needs (the store's write lock) for too long
  | 'INTERNAL'; // a bug in kiln

export class KilnError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KilnError';
    this.code = code;
  }
}

export function isKilnError(err: unknown, code?: ErrorCode): err is KilnError {
  return err instanceof KilnError && (code === undefined || err.code === code);
}

/** True for a Node system error with the given errno code (ENOENT, EEXIST, ...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/**
 * The text of a small optional file (a .dockerignore, a Dockerfile the build reports on itself), read at
 * once: an asynchronous read is several thread-pool round trips, which a fully cached build, made of little
 * else, feels. Undefined when it cannot be read (missing, a directory, not readable).
 */
export function readTextIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * True for a full disk: Node's ENOSPC; SQLite's SQLITE_FULL ("database or disk is full") or
 * SQLITE_IOERR_SHMSIZE (its shared-memory file could not grow, which a full disk causes); or a command
 * kiln ran (cp) that failed saying so, in the C locale's words.
 */
export function isNoSpace(err: unknown): boolean {
  if (['ENOSPC', 'SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE'].some((code) => isErrno(err, code))) return true;
  const stderr = typeof err === 'object' && err !== null ? (err as { stderr?: unknown }).stderr : undefined;
  return typeof stderr === 'string' && stderr.includes('No space left on device');
}

/**
 * The error for a write into the store at `root` that found its disk full: one line naming the store and
 * what was being written. Anything else passes unchanged, so that this can wrap every write's failure.
 */
export function storeWriteError(err: unknown, root: string, target: string): unknown {
  if (!isNoSpace(err)) return err;
  return new KilnError('NO_SPACE', `no space left on device: the store at ${root} is full (write to ${target}); free space or use another --root`, { cause: err });
}

/** The error for a write to a file outside the store (`save -o`) that found its disk full; anything else passes unchanged. */
export function fileWriteError(err: unknown, path: string): unknown {
  if (!isNoSpace(err)) return err;
  return new KilnError('NO_SPACE', `no space left on device: cannot write ${path}; free space on its disk or write it elsewhere`, { cause: err });
}
