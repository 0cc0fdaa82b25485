import { KilnError } from '../errors.js';

/**
 * Docker's filter arguments (`-f key=value`, repeatable; the API's `filters` JSON). Values per key are
 * kept in order; each command says which keys it accepts.
 */
export type Filters = ReadonlyMap<string, readonly string[]>;

/** Parses `key=value` flags into filters, rejecting keys the command does not know, as Docker does. */
export function parseFilterFlags(flags: readonly string[], accepted: readonly string[]): Filters {
  const filters = new Map<string, string[]>();
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new KilnError('INVALID_ARGUMENT', `bad format of filter (expected name=value): ${flag}`);
    const key = flag.slice(0, eq).trim().toLowerCase();
    const value = flag.slice(eq + 1);
    filters.set(key, [...(filters.get(key) ?? []), value]);
  }
  checkFilterKeys(filters, accepted);
  return filters;
}

export function checkFilterKeys(filters: Filters, accepted: readonly string[]): void {
  for (const key of filters.keys()) {
    if (!accepted.includes(key)) throw new KilnError('INVALID_ARGUMENT', `invalid filter '${key}'`);
  }
}

/** The single boolean a filter such as `dangling=true` holds; Docker accepts true/false/1/0. */
export function booleanFilter(filters: Filters, key: string): boolean | undefined {
  const values = filters.get(key);
  if (!values || values.length === 0) return undefined;
  const normalized = new Set(values.map((v) => v.toLowerCase()));
  if (normalized.size > 1) throw new KilnError('INVALID_ARGUMENT', `conflicting values for filter '${key}': ${values.join(', ')}`);
  const [value] = normalized;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new KilnError('INVALID_ARGUMENT', `invalid filter '${key}=${values[0]}': expected true or false`);
}

/**
 * `label=key`, `label=key=value` (and `label!=...` for prune): true when the labels satisfy every
 * condition.
 */
export function matchLabels(labels: Readonly<Record<string, string>>, conditions: readonly string[], negate = false): boolean {
  return conditions.every((condition) => {
    const eq = condition.indexOf('=');
    const key = eq < 0 ? condition : condition.slice(0, eq);
    const hit = eq < 0 ? key in labels : labels[key] === condition.slice(eq + 1);
    return negate ? !hit : hit;
  });
}

/**
 * Docker's `until` and `since` timestamps: RFC 3339 dates, Unix seconds (with fractions), or durations
 * relative to now such as `24h`, `10m`, `1h30m`.
 */
export function parseTimestamp(value: string, now = Date.now()): number {
  const duration = /^((?:\d+(?:\.\d+)?(?:ns|us|\u00b5s|ms|s|m|h))+)$/.exec(value);
  if (duration) {
    const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    let total = 0;
    for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/g)) total += Number(amount) * (unitMs[unit ?? 's'] ?? 0);
    return now - total;
  }
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) throw new KilnError('INVALID_ARGUMENT', `invalid timestamp '${value}': use an RFC 3339 date, Unix seconds, or a duration such as 24h`);
  return parsed;
}
