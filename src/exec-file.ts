import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Runs a host program (mount, cp, ip, the runtime's verbs) to its end: resolves with its stdout and
 * stderr, rejects with them on the error when it fails. Node's execFile, as a promise, in one place.
 */
export const execFileAsync = promisify(execFile);
