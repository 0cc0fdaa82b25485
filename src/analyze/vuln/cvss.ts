/**
 * CVSS v3.0 and v3.1 base scores from a vector string, by the specification's formulas (FIRST, CVSS v3.1
 * Specification §7.1 and Appendix A's Roundup), and the qualitative levels of its §5.
 */

export type SeverityLevel = 'none' | 'low' | 'medium' | 'high' | 'critical';

const WEIGHTS = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
} as const;

/** Privileges Required weighs more when the scope changes. */
const PRIVILEGES = { U: { N: 0.85, L: 0.62, H: 0.27 }, C: { N: 0.85, L: 0.68, H: 0.5 } } as const;

const BASE_METRICS = ['AV', 'AC', 'PR', 'UI', 'S', 'C', 'I', 'A'] as const;

/** v3.1's Roundup: the smallest one-decimal number not below the input, free of floating-point error. */
function roundUp31(value: number): number {
  const scaled = Math.round(value * 100000);
  return scaled % 10000 === 0 ? scaled / 100000 : (Math.floor(scaled / 10000) + 1) / 10;
}

/** v3.0's round up to one decimal. */
const roundUp30 = (value: number): number => Math.ceil(value * 10) / 10;

/** The base score of a CVSS v3 vector (`CVSS:3.1/AV:N/AC:L/…`), or undefined when it is not one. */
export function cvss3BaseScore(vector: string): number | undefined {
  const parts = vector.trim().split('/');
  const version = /^CVSS:3\.([01])$/.exec(parts[0] ?? '')?.[1];
  if (version === undefined) return undefined;
  const metrics = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const [name, value, extra] = part.split(':');
    if (name === undefined || value === undefined || extra !== undefined || metrics.has(name)) return undefined;
    metrics.set(name, value);
  }
  if (BASE_METRICS.some((m) => !metrics.has(m))) return undefined;
  const get = <T extends Record<string, number>>(table: T, metric: string): number | undefined => table[metrics.get(metric) as keyof T];
  const scope = metrics.get('S');
  if (scope !== 'U' && scope !== 'C') return undefined;
  const av = get(WEIGHTS.AV, 'AV');
  const ac = get(WEIGHTS.AC, 'AC');
  const pr = get(PRIVILEGES[scope], 'PR');
  const ui = get(WEIGHTS.UI, 'UI');
  const c = get(WEIGHTS.CIA, 'C');
  const i = get(WEIGHTS.CIA, 'I');
  const a = get(WEIGHTS.CIA, 'A');
  if (av === undefined || ac === undefined || pr === undefined || ui === undefined || c === undefined || i === undefined || a === undefined) return undefined;
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = scope === 'U' ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15);
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  const roundUp = version === '1' ? roundUp31 : roundUp30;
  return roundUp(Math.min((scope === 'U' ? 1 : 1.08) * (impact + exploitability), 10));
}

/** The specification's qualitative rating of a score. */
export function cvssLevel(score: number): SeverityLevel {
  if (score === 0) return 'none';
  if (score < 4) return 'low';
  if (score < 7) return 'medium';
  if (score < 9) return 'high';
  return 'critical';
}
