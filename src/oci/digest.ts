import { createHash } from 'node:crypto';
import { KilnError } from '../errors.js';
import { sys } from '../sys.js';

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

/**
 * The digest of some bytes, or of a list of parts one after another. Through native/sys where it was
 * built: loading node:crypto costs a short command (a cached build) some 7 ms.
 */
export function sha256(data: Uint8Array | string | readonly (Uint8Array | string)[]): Digest {
  const native = sys()?.sha256;
  if (native) return `sha256:${native(data)}` as Digest;
  const hash = createHash('sha256');
  for (const part of typeof data === 'string' || data instanceof Uint8Array ? [data] : data) hash.update(part);
  return `sha256:${hash.digest('hex')}` as Digest;
}

/** A SHA-256 taken piece by piece (a blob as it is written). */
export interface Sha256 {
  update(data: Uint8Array | string): void;
  /** The digest of what was added so far; the hash goes on. */
  peek(): Digest;
  /** The digest; the hash is spent. */
  digest(): Digest;
}

/** Through native/sys where it was built (see {@link sha256}), else node:crypto. */
export function sha256Stream(): Sha256 {
  const native = sys();
  const { sha256Start: start, sha256Add: add, sha256End: end } = native ?? {};
  if (start && add && end) {
    const state = start();
    return {
      update: (data) => add(state, data),
      peek: () => `sha256:${end(Buffer.from(state))}` as Digest,
      digest: () => `sha256:${end(state)}` as Digest,
    };
  }
  const hash = createHash('sha256');
  return {
    update: (data) => void hash.update(data),
    peek: () => `sha256:${hash.copy().digest('hex')}` as Digest,
    digest: () => `sha256:${hash.digest('hex')}` as Digest,
  };
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function digestAlgorithm(digest: Digest): string {
  return digest.slice(0, digest.indexOf(':'));
}

/** Docker's 12-character short ID (`docker images`, `docker ps`) of a digest or of a bare hex ID (a container's), without the algorithm. */
export function shortId(id: Digest | string): string {
  const start = id.indexOf(':') + 1;
  return id.slice(start, start + 12);
}
