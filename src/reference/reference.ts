import { KilnError } from '../errors.js';
import type { Digest } from '../oci/digest.js';

/**
 * An image reference in Docker's grammar (distribution/reference), always normalized: the domain is
 * explicit (`docker.io` for Docker Hub) and official images carry `library/`. The tag is not defaulted
 * here; {@link withDefaultTag} does that where Docker does.
 */
export interface Reference {
  readonly domain: string;
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX = 255;

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const NAME_RE = new RegExp(`^${NAME}$`);
const HEX64_RE = /^[a-f0-9]{64}$/;
const DIGEST_LENGTHS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

function invalid(text: string, why: string): KilnError {
  return new KilnError('INVALID_REFERENCE', `invalid reference ${JSON.stringify(text)}: ${why}`);
}

/** Docker's splitDockerDomain: the first component is a domain only if it looks like one. */
function splitDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  const first = name.slice(0, slash);
  let domain: string;
  let remainder: string;
  if (slash === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(slash + 1);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_PREFIX + remainder;
  return { domain, remainder };
}

/** Parses and normalizes a reference as `docker` does (ParseNormalizedNamed), with Docker's error wording. */
export function parseReference(text: string): Reference {
  if (text === '') throw invalid(text, 'repository name must have at least one component');
  if (HEX64_RE.test(text)) throw invalid(text, 'cannot specify 64-byte hexadecimal strings as a repository name');
  // The name ends at the digest's `@` or at a `:` after the last `/` (a colon before it is a port).
  const at = text.indexOf('@');
  const beforeDigest = at === -1 ? text : text.slice(0, at);
  const colon = beforeDigest.indexOf(':', beforeDigest.lastIndexOf('/') + 1);
  const name = colon === -1 ? beforeDigest : beforeDigest.slice(0, colon);
  const { domain, remainder } = splitDomain(name);
  if (remainder.toLowerCase() !== remainder) {
    throw new KilnError('INVALID_REFERENCE', `invalid reference format: repository name (${remainder}) must be lowercase`);
  }
  const full = `${domain}/${remainder}${text.slice(name.length)}`;
  const match = REFERENCE_RE.exec(full);
  if (!match) {
    const tagPart = text.slice(name.length);
    if (!NAME_RE.test(`${domain}/${remainder}`)) throw invalid(text, 'invalid reference format');
    if (tagPart.startsWith(':') && !TAG_RE.test(tagPart.slice(1).split('@')[0] ?? '')) throw invalid(text, 'invalid tag format');
    if (tagPart.includes('@')) throw invalid(text, 'invalid digest format');
    throw invalid(text, 'invalid reference format');
  }
  const [, fullName = '', tag, digest] = match;
  if (fullName.length > NAME_MAX) throw invalid(text, `repository name must not be more than ${NAME_MAX} characters`);
  if (digest !== undefined) {
    const [algorithm = '', hex = ''] = digest.split(':');
    if (DIGEST_LENGTHS[algorithm] !== hex.length || hex !== hex.toLowerCase()) throw invalid(text, 'invalid digest format');
  }
  return { domain, path: remainder, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest: digest as Digest } : {}) };
}

/**
 * The name, tag and digest of a reference kiln wrote itself (a stored name in referenceString's form, or
 * familiarString's), split at the digest's `@` and at a `:` after the last `/`, without the grammar's
 * checks, which it passed when it was written: listing 500 images splits every name twice, where
 * matching the grammar costs tens of µs a name.
 */
export function splitWrittenReference(text: string): { readonly name: string; readonly tag?: string; readonly digest?: Digest } {
  const at = text.indexOf('@');
  const beforeDigest = at === -1 ? text : text.slice(0, at);
  const colon = beforeDigest.indexOf(':', beforeDigest.lastIndexOf('/') + 1);
  const name = colon === -1 ? beforeDigest : beforeDigest.slice(0, colon);
  // Built in place, not spread from parts: a listing splits every name of every image.
  const ref: { name: string; tag?: string; digest?: Digest } = { name };
  if (colon !== -1) ref.tag = beforeDigest.slice(colon + 1);
  if (at !== -1) ref.digest = text.slice(at + 1) as Digest;
  return ref;
}

/** A stored name (referenceString's form, as the metadata database keeps names) as a Reference; see splitWrittenReference. */
export function storedReference(text: string): Reference {
  const { name, tag, digest } = splitWrittenReference(text);
  const slash = name.indexOf('/');
  const ref: { domain: string; path: string; tag?: string; digest?: Digest } = { domain: name.slice(0, slash), path: name.slice(slash + 1) };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** Adds the `latest` tag when a reference has neither tag nor digest (Docker's TagNameOnly). */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** `docker.io/library/busybox`. */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

function suffix(ref: Reference): string {
  return `${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The full normalized form, `docker.io/library/busybox:latest`, as names are stored. */
export function referenceString(ref: Reference): string {
  return repositoryName(ref) + suffix(ref);
}

/** The short form people type: `busybox`, `user/repo`, `localhost:5000/a/b`. */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return repositoryName(ref);
  const path = ref.path.startsWith(OFFICIAL_PREFIX) && !ref.path.slice(OFFICIAL_PREFIX.length).includes('/') ? ref.path.slice(OFFICIAL_PREFIX.length) : ref.path;
  return path;
}

/** `busybox:latest`, `busybox@sha256:…`. */
export function familiarString(ref: Reference): string {
  return familiarName(ref) + suffix(ref);
}
