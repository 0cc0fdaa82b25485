import { createHash } from 'node:crypto';
import { KilnError } from '../errors.js';

/** A content digest `algorithm:hex`. Only sha256 is produced; sha512 is accepted when parsing. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

/** Parses a digest from outside; `what` names where it came from for the error message. */
export function parseDigest(value: string, what = 'digest'): Digest {
  if (!isDigest(value)) {
    throw new KilnError('INVALID_INPUT', `${what} ${JSON.stringify(value.slice(0, 80))} is not a valid digest (expected sha256: followed by 64 lowercase hex digits)`);
  }
  return value;
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function digestAlgorithm(digest: Digest): string {
  return digest.slice(0, digest.indexOf(':'));
}

/** Docker's 12-character short id (`docker images`), without the algorithm. */
export function shortId(digest: Digest): string {
  return digestHex(digest).slice(0, 12);
}
