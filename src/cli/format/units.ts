import { humanDuration } from '../../engine/time.js';

/** Go's %.{p}g for a positive number: `p` significant digits, trailing zeros dropped. */
function goG(value: number, precision: number): string {
  if (value === 0) return '0';
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= precision) {
    const [mantissa = '0', exp = '0'] = value.toExponential(precision - 1).split('e');
    const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
    const e = Number(exp);
    return `${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, precision - 1 - exponent));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSizeWithPrecision: decimal units, `precision` significant digits ("2.13MB"). */
export function humanSizeWithPrecision(bytes: number, precision: number): string {
  let size = bytes;
  let unit = 0;
  while (size >= 1000 && unit < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    unit++;
  }
  return `${goG(size, precision)}${DECIMAL_UNITS[unit]}`;
}

/** What `docker images` and `docker history` print for a size. */
export function humanSize(bytes: number): string {
  return humanSizeWithPrecision(bytes, 3);
}

export { humanDuration } from '../../engine/time.js';

/** "2 days ago", as the CREATED columns print it. */
export function sinceNow(ms: number, now = Date.now()): string {
  return `${humanDuration(Math.max(0, now - ms))} ago`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

function localParts(ms: number): { date: string; time: string; offset: number } {
  const d = new Date(ms);
  return {
    date: `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`,
    time: `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`,
    offset: -d.getTimezoneOffset(),
  };
}

function zoneName(ms: number, offset: number): string {
  if (offset === 0) return 'UTC';
  const name = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName')?.value;
  return name && /^[A-Z]{2,5}$/.test(name) ? name : `${offset < 0 ? '-' : '+'}${pad2(Math.trunc(Math.abs(offset) / 60))}${pad2(Math.abs(offset) % 60)}`;
}

/** Go's time.Time.String() for a whole-second time: "2026-11-22 10:53:39 +0000 UTC". */
export function goTimeString(ms: number): string {
  const { date, time, offset } = localParts(ms);
  const sign = offset < 0 ? '-' : '+';
  return `${date} ${time} ${sign}${pad2(Math.trunc(Math.abs(offset) / 60))}${pad2(Math.abs(offset) % 60)} ${zoneName(ms, offset)}`;
}

/** Go's time.RFC3339 in the local zone: "2026-11-22T10:53:39Z" or "…+01:00". */
export function rfc3339Local(ms: number): string {
  const { date, time, offset } = localParts(ms);
  const zone = offset === 0 ? 'Z' : `${offset < 0 ? '-' : '+'}${pad2(Math.trunc(Math.abs(offset) / 60))}:${pad2(Math.abs(offset) % 60)}`;
  return `${date}T${time}${zone}`;
}

/** Docker's jsonmessage.RFC3339NanoFixed in the local zone: "2026-11-22T10:53:39.000000123Z" or "…+01:00". */
export function rfc3339NanoLocal(ms: number, nanos: number): string {
  const whole = rfc3339Local(ms);
  const at = whole.search(/(Z|[+-]\d\d:\d\d)$/);
  return `${whole.slice(0, at)}.${String(nanos).padStart(9, '0')}${whole.slice(at)}`;
}

/** Docker's stringutils.Ellipsis: at most `width` characters, the last one "…" when cut. */
export function truncateDisplay(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}
