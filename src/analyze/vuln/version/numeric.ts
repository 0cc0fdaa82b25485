/**
 * Compares the decimal digits a[aStart, aEnd) and b[bStart, bEnd) by their value, however long (versions
 * carry dates and hashes as numbers), without copying them: version orders run this in their inner loops.
 */
export function compareDigitRuns(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): number {
  let i = aStart;
  let j = bStart;
  while (i < aEnd && a.charCodeAt(i) === 0x30) i++;
  while (j < bEnd && b.charCodeAt(j) === 0x30) j++;
  if (aEnd - i !== bEnd - j) return aEnd - i < bEnd - j ? -1 : 1;
  for (; i < aEnd; i++, j++) {
    const diff = a.charCodeAt(i) - b.charCodeAt(j);
    if (diff !== 0) return diff < 0 ? -1 : 1;
  }
  return 0;
}

/** Compares two strings of decimal digits by their value. */
export function compareDigits(a: string, b: string): number {
  return compareDigitRuns(a, 0, a.length, b, 0, b.length);
}

/** -1, 0 or 1 for plain values. */
export function sign(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
