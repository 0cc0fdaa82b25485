/**
 * BuildKit's "did you mean" for an undefined name: the first name in scope at the smallest edit distance
 * under 3, compared case-sensitively as BuildKit does on Linux. Bounded, because every `kiln build` runs
 * these checks before it starts: a name is compared only with names whose length is within the bound,
 * the distance is computed in a band and given up once it exceeds the bound, a look-up reads at most
 * a thousand names, and one lint spends a limited amount of work on suggestions overall. A look-up past
 * either limit suggests nothing (a Dockerfile with thousands of names and thousands of undefined uses gets
 * its findings, without suggestions).
 */

/** BuildKit suggests a name less than 3 edits away. */
const MAX_DISTANCE = 2;
/** Names in scope one look-up reads (normal Dockerfiles have a few dozen). */
const NAMES_PER_LOOKUP = 1000;
/** Work (names read plus distance cells computed) one lint spends on suggestions. */
const WORK_PER_LINT = 2_000_000;

/**
 * The edit distance of a and b when it is at most `bound`, else `bound + 1`. Only the cells within
 * `bound` of the diagonal are computed, and the computation stops at a row whose band is all over the
 * bound: O(bound × length) work.
 */
export function distanceWithin(a: string, b: string, bound: number): number {
  const over = bound + 1;
  if (Math.abs(a.length - b.length) > bound) return over;
  // Two rows, reused; a cell outside the band reads as `over` (set below, or never written).
  let previous = new Array<number>(b.length + 1).fill(over);
  let current = new Array<number>(b.length + 1).fill(over);
  for (let j = 0; j <= Math.min(b.length, bound); j++) previous[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const lo = Math.max(1, i - bound);
    const hi = Math.min(b.length, i + bound);
    current[lo - 1] = lo === 1 && i <= bound ? i : over;
    let rowBest = current[lo - 1] ?? over;
    for (let j = lo; j <= hi; j++) {
      const substitute = (previous[j - 1] ?? over) + (a[i - 1] === b[j - 1] ? 0 : 1);
      const cell = Math.min((previous[j] ?? over) + 1, (current[j - 1] ?? over) + 1, substitute, over);
      current[j] = cell;
      if (cell < rowBest) rowBest = cell;
    }
    if (rowBest > bound) return over;
    [previous, current] = [current, previous];
  }
  return previous[b.length] ?? over;
}

/**
 * A suggester for one lint: `suggest(name, names)` gives the close name, or '' (none, or the lint's work
 * is spent). It holds what is left of the work, so a lint makes one and uses it for all its look-ups.
 */
export function suggester(work = WORK_PER_LINT): (name: string, names: Iterable<string>) => string {
  let left = work;
  return (name, names) => {
    let best = '';
    let bestDistance = MAX_DISTANCE + 1;
    let read = 0;
    for (const option of names) {
      // A look-up that cannot read every name says nothing rather than something BuildKit would not.
      if (++read > NAMES_PER_LOOKUP || --left < 0) return '';
      // As BuildKit: the name itself in scope means the fault lies elsewhere.
      if (option === name) return '';
      if (Math.abs(option.length - name.length) >= bestDistance) continue;
      left -= (2 * MAX_DISTANCE + 3) * name.length;
      if (left < 0) return '';
      const distance = distanceWithin(name, option, bestDistance - 1);
      if (distance < bestDistance) {
        best = option;
        bestDistance = distance;
      }
    }
    return best;
  };
}
