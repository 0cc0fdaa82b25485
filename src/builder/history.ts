/**
 * History lines as BuildKit's Dockerfile frontend writes them. BuildKit formats several with Go's fmt
 * verbs (`CMD %q` of the argument list, `VOLUME %v`, `EXPOSE %v` of a port set, `HEALTHCHECK %q` of the config), so the
 * lines `docker history` shows depend on Go's quoting and duration formats, which these reproduce.
 */
import type { HealthConfig } from '../oci/types.js';

/**
 * Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. Made at the
 * first character past ASCII: making it reads Unicode's tables (about 0.4 ms on an idle machine, several
 * on a busy one), and most builds quote only ASCII.
 */
let printable: RegExp | undefined;
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };

/** Go's strconv.Quote: a double-quoted string with Go escapes for quotes, backslashes and unprintable characters. */
export function goQuote(value: string): string {
  let out = '"';
  for (const char of value) {
    const code = char.codePointAt(0) as number;
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if ((code >= 0x20 && code < 0x7f) || (code > 0x7f && (printable ??= /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u).test(char))) out += char;
    else if (SHORT_ESCAPES[code] !== undefined) out += SHORT_ESCAPES[code];
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return `${out}"`;
}

/** A list of strings as Go's `%q` prints it: `["a" "b"]`. */
export function goQuotedList(values: readonly string[]): string {
  return `[${values.map(goQuote).join(' ')}]`;
}

/** A list of strings as Go's `%v` prints it: `[a b]`. */
export function goList(values: readonly string[]): string {
  return `[${values.join(' ')}]`;
}

/** `units` of a unit worth `scale` nanoseconds, with the fraction's trailing zeros dropped (Go's fmtFrac). */
function withFraction(nanoseconds: bigint, scale: bigint): string {
  const whole = nanoseconds / scale;
  const fraction = (nanoseconds % scale).toString().padStart(scale.toString().length - 1, '0').replace(/0+$/, '');
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`;
}

/** Go's time.Duration.String: `0s`, `1.5ms`, `5s`, `1m0s`, `1h2m3.5s`. */
export function goDuration(nanoseconds: number): string {
  let n = BigInt(Math.trunc(nanoseconds));
  const sign = n < 0n ? '-' : '';
  if (n < 0n) n = -n;
  if (n === 0n) return '0s';
  if (n < 1_000n) return `${sign}${n}ns`;
  if (n < 1_000_000n) return `${sign}${withFraction(n, 1_000n)}µs`;
  if (n < 1_000_000_000n) return `${sign}${withFraction(n, 1_000_000n)}ms`;
  const hours = n / 3_600_000_000_000n;
  const minutes = (n / 60_000_000_000n) % 60n;
  const seconds = withFraction(n % 60_000_000_000n, 1_000_000_000n);
  return `${sign}${hours > 0n ? `${hours}h` : ''}${hours > 0n || minutes > 0n ? `${minutes}m` : ''}${seconds}s`;
}

/** Go's `%q` of an int: a quoted character (strconv.QuoteRune), as `%q` prints HEALTHCHECK's retries. */
function goQuoteRune(value: number): string {
  const valid = Number.isInteger(value) && value >= 0 && value <= 0x10ffff && (value < 0xd800 || value > 0xdfff);
  const quoted = goQuote(valid ? String.fromCodePoint(value) : '\ufffd').slice(1, -1).replace(/\\"/g, '"');
  return `'${quoted === "'" ? "\\'" : quoted}'`;
}

/** HEALTHCHECK's line: Go's `%q` of the config struct (`&{["CMD" "x"] "5s" "3s" "0s" "0s" '\x03'}`). */
export function healthcheckLine(health: HealthConfig): string {
  const d = (value: number | undefined): string => goQuote(goDuration(value ?? 0));
  return `HEALTHCHECK &{${goQuotedList(health.Test ?? [])} ${d(health.Interval)} ${d(health.Timeout)} ${d(health.StartPeriod)} ${d(health.StartInterval)} ${goQuoteRune(health.Retries ?? 0)}}`;
}

/** A set of ports as Go's `%v` prints a map of them: `map[80/tcp:{} 53/udp:{}]`, keys sorted. */
export function goPortSet(ports: readonly string[]): string {
  return `map[${[...new Set(ports)].sort().map((p) => `${p}:{}`).join(' ')}]`;
}
