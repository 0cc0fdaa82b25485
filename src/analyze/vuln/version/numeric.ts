/** Compares two strings of decimal digits by their value, however long (versions carry dates and hashes as numbers). */
export function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** -1, 0 or 1 for plain values. */
export function sign(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
