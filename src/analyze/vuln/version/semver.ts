/**
 * Semantic Versioning 2.0.0's precedence (npm's order), and Go's module versions on top of it: MAJOR.MINOR.PATCH
 * by value; a pre-release is lower than its release; pre-release identifiers compare one by one, numeric ones by
 * value and below alphanumeric ones, which compare as ASCII, and a shorter list that is a prefix is lower; build
 * metadata is ignored. Go writes a `v` and may shorten (v1 = v1.0.0, v1.2 = v1.2.0); its pseudo-versions
 * (v0.0.0-20240101120000-abcdef123456, v1.2.4-0.2024…, v1.2.3-pre.0.2024…) are pre-releases that this order
 * already places between the releases they follow and precede; `+incompatible` is build metadata.
 */
import { compareDigits, sign } from './numeric.js';

export interface Semver {
  readonly release: readonly [string, string, string];
  readonly prerelease: readonly string[];
}

const NUMBER = '(0|[1-9]\\d*)';
const IDENT = '[0-9A-Za-z-]+';
const SEMVER = new RegExp(`^${NUMBER}\\.${NUMBER}\\.${NUMBER}(?:-(${IDENT}(?:\\.${IDENT})*))?(?:\\+${IDENT}(?:\\.${IDENT})*)?$`);
const GO_SHORT = new RegExp(`^${NUMBER}(?:\\.${NUMBER})?$`);

/** A SemVer 2.0.0 version (npm also tolerates a leading `v` or `=`), or undefined. */
export function parseSemver(text: string): Semver | undefined {
  const m = SEMVER.exec(text.trim().replace(/^[=v]/, ''));
  if (!m) return undefined;
  const prerelease = m[4] !== undefined ? m[4].split('.') : [];
  // A numeric identifier must not have leading zeros.
  if (prerelease.some((id) => /^0\d+$/.test(id))) return undefined;
  return { release: [m[1] as string, m[2] as string, m[3] as string], prerelease };
}

/** A Go module version (`v1.2.3`, `v1.2`, `v1`, pseudo-versions; the `v` optional as OSV writes them), or undefined. */
export function parseGoVersion(text: string): Semver | undefined {
  const bare = text.trim().replace(/^v/, '');
  const short = GO_SHORT.exec(bare);
  if (short) return { release: [short[1] as string, short[2] ?? '0', '0'], prerelease: [] };
  return parseSemver(bare);
}

const isNumeric = (id: string): boolean => /^\d+$/.test(id);

function compareIdentifiers(a: string, b: string): number {
  const na = isNumeric(a);
  const nb = isNumeric(b);
  if (na && nb) return compareDigits(a, b);
  if (na !== nb) return na ? -1 : 1;
  return sign(a, b);
}

export function compareSemverValues(a: Semver, b: Semver): number {
  for (let i = 0; i < 3; i++) {
    const diff = compareDigits(a.release[i] as string, b.release[i] as string);
    if (diff !== 0) return diff;
  }
  // A release is above its pre-releases.
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return a.prerelease.length === b.prerelease.length ? 0 : a.prerelease.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(a.prerelease.length, b.prerelease.length); i++) {
    const diff = compareIdentifiers(a.prerelease[i] as string, b.prerelease[i] as string);
    if (diff !== 0) return diff;
  }
  return sign(a.prerelease.length, b.prerelease.length);
}
