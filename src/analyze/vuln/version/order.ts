/** Each ecosystem's version order behind one interface, so that matching knows no ecosystem's rules. */
import { compareApk, isApkVersion } from './apk.js';
import { compareDpkgVersions, parseDpkgVersion } from './dpkg.js';
import { compareMaven } from './maven.js';
import { comparePep440Values, parsePep440 } from './pep440.js';
import { compareSemverValues, parseGoVersion, parseSemver } from './semver.js';

export interface VersionOrder {
  /** The scheme's name, for messages. */
  readonly scheme: string;
  /** True when the text is a version this order can place. */
  valid(version: string): boolean;
  /** -1, 0 or 1; both must be valid. */
  compare(a: string, b: string): number;
}

/** An order over parsed values, parsing each text once however many times it is compared. */
function parsedOrder<T>(scheme: string, parse: (text: string) => T | undefined, compare: (a: T, b: T) => number): VersionOrder {
  const cache = new Map<string, T | undefined>();
  const parsed = (text: string): T | undefined => {
    if (!cache.has(text)) cache.set(text, parse(text));
    return cache.get(text);
  };
  return {
    scheme,
    valid: (version) => parsed(version) !== undefined,
    compare: (a, b) => compare(parsed(a) as T, parsed(b) as T),
  };
}

const tryParse = <T>(parse: (text: string) => T) => (text: string): T | undefined => {
  try {
    return parse(text);
  } catch {
    return undefined;
  }
};

export type Ecosystem = 'Debian' | 'Ubuntu' | 'Alpine' | 'npm' | 'PyPI' | 'Go' | 'Maven';

/** The version order of an OSV ecosystem (its name before any `:release`). */
export function versionOrder(ecosystem: Ecosystem): VersionOrder {
  switch (ecosystem) {
    case 'Debian':
    case 'Ubuntu':
      return parsedOrder('dpkg', tryParse(parseDpkgVersion), compareDpkgVersions);
    case 'Alpine':
      return { scheme: 'apk', valid: isApkVersion, compare: compareApk };
    case 'npm':
      return parsedOrder('semver', parseSemver, compareSemverValues);
    case 'Go':
      return parsedOrder('Go', parseGoVersion, compareSemverValues);
    case 'PyPI':
      return parsedOrder('PEP 440', parsePep440, comparePep440Values);
    case 'Maven':
      return { scheme: 'Maven', valid: (version) => version.trim() !== '', compare: compareMaven };
  }
}
