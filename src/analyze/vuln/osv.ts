/**
 * OSV records (the Open Source Vulnerability format, ossf.github.io/osv-schema): the part kiln matches on,
 * checked as it is read so that a bad record is named with the field that is wrong, and reduced to what a
 * scan needs for one package.
 */
import { KilnError } from '../../errors.js';
import { type SeverityLevel, cvss3BaseScore, cvssLevel } from './cvss.js';
import type { Ecosystem } from './version/order.js';

export type OsvEventKind = 'introduced' | 'fixed' | 'last_affected' | 'limit';

export interface OsvEvent {
  readonly kind: OsvEventKind;
  readonly version: string;
}

export interface OsvRange {
  readonly type: string;
  readonly events: readonly OsvEvent[];
}

export interface Severity {
  readonly level: SeverityLevel | 'unknown';
  /** The CVSS v3 base score, when the record has a vector. */
  readonly score: number | null;
  readonly vector: string | null;
}

/** One record's advice for one package: what the index keeps and a scan reads. */
export interface Advisory {
  readonly id: string;
  readonly aliases: readonly string[];
  readonly summary: string;
  readonly severity: Severity;
  /** The ecosystem as the record writes it (`Debian:12`, `Ubuntu:22.04:LTS`). */
  readonly ecosystem: string;
  readonly name: string;
  readonly versions: readonly string[];
  readonly ranges: readonly OsvRange[];
}

/** What the index is keyed by: an ecosystem kiln matches and a package name as that ecosystem compares names. */
export interface PackageKey {
  readonly ecosystem: Ecosystem;
  /** The release for distributions (`Debian:12`, `Ubuntu:22.04`, `Alpine:v3.19`), else the ecosystem. */
  readonly release: string;
  readonly name: string;
}

/** PyPI compares names case-blind with runs of -, _ and . as one (PEP 503). */
export function normalizeName(ecosystem: Ecosystem, name: string): string {
  return ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name;
}

/** The key of an OSV package, or undefined for an ecosystem kiln does not match (crates.io, Ubuntu:Pro…). */
export function osvPackageKey(ecosystem: string, name: string): PackageKey | undefined {
  const plain = (['npm', 'PyPI', 'Go', 'Maven'] as const).find((e) => e === ecosystem);
  if (plain) return { ecosystem: plain, release: plain, name: normalizeName(plain, name) };
  let m = /^Debian:(\d+)$/.exec(ecosystem);
  if (m) return { ecosystem: 'Debian', release: `Debian:${m[1]}`, name };
  m = /^Ubuntu:(\d+\.\d+)(?::LTS)?$/.exec(ecosystem);
  if (m) return { ecosystem: 'Ubuntu', release: `Ubuntu:${m[1]}`, name };
  m = /^Alpine:v(\d+\.\d+)$/.exec(ecosystem);
  if (m) return { ecosystem: 'Alpine', release: `Alpine:v${m[1]}`, name };
  return undefined;
}

export const keyString = (key: PackageKey): string => `${key.release}\u0000${key.name}`;

type Json = unknown;
const isObject = (value: Json): value is Record<string, Json> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The level a record's word names (GitHub's MODERATE, Debian's unimportant), if any. */
function levelOfWord(word: Json): SeverityLevel | undefined {
  if (typeof word !== 'string') return undefined;
  const w = word.trim().toLowerCase();
  if (w === 'critical' || w === 'high' || w === 'low' || w === 'medium' || w === 'none') return w;
  if (w === 'moderate') return 'medium';
  if (w === 'negligible' || w === 'unimportant') return 'low';
  return undefined;
}

/** A severity array's best answer: a CVSS v3 vector's score, else a word (Ubuntu's type). */
function severityOf(list: Json): Severity | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const entry of list) {
    if (!isObject(entry) || typeof entry.score !== 'string') continue;
    if (entry.type === 'CVSS_V3') {
      const score = cvss3BaseScore(entry.score);
      if (score !== undefined) return { level: cvssLevel(score), score, vector: entry.score.trim() };
    }
  }
  for (const entry of list) {
    const level = isObject(entry) ? levelOfWord(entry.score) : undefined;
    if (level) return { level, score: null, vector: null };
  }
  return undefined;
}

/**
 * The advisories of one OSV record, one per affected package kiln matches; none for a withdrawn record.
 * Throws INVALID_INPUT naming `file` and the field for a record that is not OSV.
 */
export function advisoriesOf(record: Json, file: string): Advisory[] {
  const bad = (path: string, what: string): never => {
    throw new KilnError('INVALID_INPUT', `${file}: ${path}: ${what} (not an OSV record: see ossf.github.io/osv-schema)`);
  };
  if (!isObject(record)) return bad('the record', 'is not a JSON object');
  const { id, aliases, summary, details, withdrawn, affected } = record;
  if (typeof id !== 'string' || id.trim() === '') return bad('id', 'missing or not a string');
  if (aliases !== undefined && (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string'))) return bad('aliases', 'not a list of strings');
  if (withdrawn !== undefined && typeof withdrawn !== 'string') return bad('withdrawn', 'not a time string');
  if (affected !== undefined && !Array.isArray(affected)) return bad('affected', 'not a list');
  if (withdrawn !== undefined) return [];
  const text = typeof summary === 'string' && summary.trim() !== '' ? summary : typeof details === 'string' ? details : '';
  const recordSeverity = severityOf(record.severity);
  const databaseLevel = isObject(record.database_specific) ? levelOfWord(record.database_specific.severity) : undefined;
  const out: Advisory[] = [];
  for (const [n, entry] of (affected ?? []).entries()) {
    const at = `affected[${n}]`;
    if (!isObject(entry)) return bad(at, 'not an object');
    if (entry.package === undefined) continue; // a GIT-only entry names a repository, not a package
    const pkg = entry.package;
    if (!isObject(pkg) || typeof pkg.ecosystem !== 'string' || typeof pkg.name !== 'string') return bad(`${at}.package`, 'needs ecosystem and name strings');
    const versions = entry.versions ?? [];
    if (!Array.isArray(versions) || versions.some((v) => typeof v !== 'string')) return bad(`${at}.versions`, 'not a list of strings');
    const rangesJson = entry.ranges ?? [];
    if (!Array.isArray(rangesJson)) return bad(`${at}.ranges`, 'not a list');
    const ranges: OsvRange[] = [];
    for (const [r, range] of rangesJson.entries()) {
      if (!isObject(range) || typeof range.type !== 'string' || !Array.isArray(range.events)) return bad(`${at}.ranges[${r}]`, 'needs a type and a list of events');
      const events = range.events.map((event: Json, e): OsvEvent => {
        const keys = isObject(event) ? Object.keys(event) : [];
        const kind = keys[0];
        const version = isObject(event) && kind !== undefined ? event[kind] : undefined;
        if (keys.length !== 1 || !['introduced', 'fixed', 'last_affected', 'limit'].includes(kind as string) || typeof version !== 'string') {
          return bad(`${at}.ranges[${r}].events[${e}]`, 'an event has one of introduced, fixed, last_affected or limit, with a version string');
        }
        return { kind: kind as OsvEventKind, version };
      });
      if (range.type !== 'GIT') ranges.push({ type: range.type, events });
    }
    if (!osvPackageKey(pkg.ecosystem, pkg.name)) continue;
    const level = severityOf(entry.severity) ?? recordSeverity;
    out.push({
      id,
      aliases: (aliases as string[] | undefined) ?? [],
      summary: text.split('\n')[0]?.trim() ?? '',
      severity: level ?? { level: databaseLevel ?? (isObject(entry.database_specific) ? levelOfWord(entry.database_specific.severity) : undefined) ?? 'unknown', score: null, vector: null },
      ecosystem: pkg.ecosystem,
      name: pkg.name,
      versions: versions as string[],
      ranges,
    });
  }
  return out;
}
