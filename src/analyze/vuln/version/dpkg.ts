/**
 * Debian's version order (deb-version(7), as dpkg implements it): `[epoch:]upstream[-revision]`, the epoch
 * compared as a number, then upstream and revision each by dpkg's string order: alternating runs of
 * non-digits (letters sort before other characters, `~` before everything, even the end) and digits
 * (by value).
 */
import { KilnError } from '../../../errors.js';
import { compareDigitRuns, compareDigits } from './numeric.js';

export interface DpkgVersion {
  readonly epoch: string;
  readonly upstream: string;
  readonly revision: string;
}

/** The parts of a Debian version; throws for a version dpkg would not accept at all. */
export function parseDpkgVersion(text: string): DpkgVersion {
  const version = text.trim();
  const colon = version.indexOf(':');
  const epoch = colon >= 0 ? version.slice(0, colon) : '0';
  if (!/^\d+$/.test(epoch)) throw new KilnError('INVALID_INPUT', `Debian version ${JSON.stringify(text)}: the epoch is not a number`);
  const rest = version.slice(colon + 1);
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen >= 0 ? rest.slice(0, hyphen) : rest;
  const revision = hyphen >= 0 ? rest.slice(hyphen + 1) : '';
  if (upstream === '' || /[^A-Za-z0-9.+~:-]/.test(upstream) || /[^A-Za-z0-9.+~]/.test(revision)) {
    throw new KilnError('INVALID_INPUT', `Debian version ${JSON.stringify(text)}: not a version dpkg accepts`);
  }
  return { epoch, upstream, revision };
}

const isDigit = (text: string, i: number): boolean => i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39;

/** The weight of one character in dpkg's order of non-digit runs; 0 for the end of the string and for a digit (where the other run goes on). */
function weight(text: string, i: number): number {
  if (i >= text.length || isDigit(text, i)) return 0;
  const c = text.charCodeAt(i);
  if (c === 0x7e) return -1; // ~
  if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return c;
  return c + 256;
}

/** dpkg's comparison of one part (upstream or revision). */
function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a, i)) || (j < b.length && !isDigit(b, j))) {
      const diff = weight(a, i) - weight(b, j);
      if (diff !== 0) return diff < 0 ? -1 : 1;
      i++;
      j++;
    }
    const startA = i;
    const startB = j;
    while (isDigit(a, i)) i++;
    while (isDigit(b, j)) j++;
    const diff = compareDigitRuns(a, startA, i, b, startB, j);
    if (diff !== 0) return diff;
  }
  return 0;
}

export function compareDpkgVersions(a: DpkgVersion, b: DpkgVersion): number {
  return compareDigits(a.epoch, b.epoch) || comparePart(a.upstream, b.upstream) || comparePart(a.revision, b.revision);
}

/** -1, 0 or 1 as `dpkg --compare-versions a lt|eq|gt b` would answer. */
export function compareDpkg(a: string, b: string): number {
  return compareDpkgVersions(parseDpkgVersion(a), parseDpkgVersion(b));
}
