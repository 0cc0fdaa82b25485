/**
 * What a scan reports: the severities asked for (`--severity`), without unfixed findings when asked
 * (`--ignore-unfixed`), and without the IDs of an ignore file (`--ignore-file`: one ID a line, an optional
 * expiry date after it, `#` comments; an entry ignores an advisory by its ID or any alias until the end of
 * its expiry day, UTC).
 */
import { KilnError } from '../../errors.js';
import type { Finding } from './match.js';

export const SEVERITIES = ['unknown', 'none', 'low', 'medium', 'high', 'critical'] as const;
export type SeverityName = (typeof SEVERITIES)[number];

/** `--severity LIST`: comma-separated names, any case (trivy's UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL work). */
export function parseSeverities(list: string): SeverityName[] {
  const names = list.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  const bad = names.find((s) => !(SEVERITIES as readonly string[]).includes(s));
  if (bad !== undefined || names.length === 0) throw new KilnError('INVALID_ARGUMENT', `invalid --severity ${JSON.stringify(list)}: use a comma-separated list of ${SEVERITIES.join(', ')}`);
  return names as SeverityName[];
}

export interface IgnoreEntry {
  readonly id: string;
  /** The last day (UTC) the entry ignores, or null for always. */
  readonly until: string | null;
  readonly line: number;
}

/** The entries of an ignore file; `file` names it in errors. */
export function parseIgnoreFile(text: string, file: string): IgnoreEntry[] {
  const entries: IgnoreEntry[] = [];
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const words = line.split(/\s+/);
    const [id, until, extra] = words as [string, string | undefined, string | undefined];
    const date = until?.replace(/^(exp|expires?)[:=]/i, '');
    if (extra !== undefined || (date !== undefined && !validDate(date))) {
      throw new KilnError('INVALID_INPUT', `${file}:${n + 1}: ${JSON.stringify(raw.trim())}: write an advisory ID, optionally followed by the date it expires (YYYY-MM-DD)`);
    }
    entries.push({ id, until: date ?? null, line: n + 1 });
  }
  return entries;
}

function validDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const date = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(text);
}

export interface Policy {
  readonly severities?: readonly SeverityName[] | undefined;
  readonly ignoreUnfixed?: boolean | undefined;
  readonly ignore?: readonly IgnoreEntry[] | undefined;
  /** Today, for expiry dates. */
  readonly now: Date;
}

/** The findings the policy keeps, and how many each rule dropped. */
export function applyPolicy(findings: readonly Finding[], policy: Policy): { kept: Finding[]; ignored: number; unfixed: number; belowSeverity: number } {
  const today = policy.now.toISOString().slice(0, 10);
  const active = new Set((policy.ignore ?? []).filter((e) => e.until === null || e.until >= today).map((e) => e.id));
  let ignored = 0;
  let unfixed = 0;
  let belowSeverity = 0;
  const kept = findings.filter((f) => {
    if (active.has(f.id) || f.aliases.some((a) => active.has(a))) return (ignored++, false);
    if (policy.ignoreUnfixed && f.fixedVersion === null) return (unfixed++, false);
    if (policy.severities && !policy.severities.includes(f.severity)) return (belowSeverity++, false);
    return true;
  });
  return { kept, ignored, unfixed, belowSeverity };
}
