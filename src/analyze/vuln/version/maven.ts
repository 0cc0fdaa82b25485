/**
 * Maven's version order (its ComparableVersion, as the POM reference's "Version Order Specification" states
 * it): the version, lowercased, splits into numbers and qualifiers at `.`, at `-` and where digits meet
 * letters (which counts as a `-`); each `-` opens a sub-list, and so does a qualifier that would not begin its
 * list (1.foo = 1-foo). Trailing null items (0, "", final, ga,
 * release) are dropped from each list. Numbers compare by value; qualifiers rank alpha < beta < milestone <
 * rc = cr < snapshot < "" = final = ga = release < sp, any other after those in ASCII order (a, b and m
 * directly followed by a number stand for alpha, beta and milestone). A number is above a qualifier and a
 * sub-list; a sub-list is above a qualifier; a missing item compares as a null item.
 */
import { compareDigits, sign } from './numeric.js';

type Item = { readonly kind: 'number'; readonly digits: string } | { readonly kind: 'qualifier'; readonly rank: string } | { readonly kind: 'list'; readonly items: Item[] };

const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
const ALIASES: Record<string, string> = { ga: '', final: '', release: '', cr: 'rc' };
const RELEASE_RANK = String(QUALIFIERS.indexOf(''));

/** A qualifier's sort key: its place among the known ones, or after them all by its text. */
function qualifierRank(text: string, followedByDigit: boolean): string {
  let word = text;
  if (followedByDigit && word.length === 1) word = ({ a: 'alpha', b: 'beta', m: 'milestone' } as Record<string, string>)[word] ?? word;
  word = ALIASES[word] ?? word;
  const known = QUALIFIERS.indexOf(word);
  return known >= 0 ? String(known) : `${QUALIFIERS.length}-${word}`;
}

function isNull(item: Item): boolean {
  if (item.kind === 'number') return /^0*$/.test(item.digits);
  if (item.kind === 'qualifier') return item.rank === RELEASE_RANK;
  return item.items.length === 0;
}

/** Drops a list's trailing null items, looking past sub-lists as Maven does. */
function normalize(list: Item[]): void {
  for (let i = list.length - 1; i >= 0; i--) {
    const item = list[i] as Item;
    if (isNull(item)) list.splice(i, 1);
    else if (item.kind !== 'list') break;
  }
}

function parseMaven(version: string): Item[] {
  const text = version.trim().toLowerCase();
  const root: Item[] = [];
  const lists: Item[][] = [root];
  let list = root;
  let start = 0;
  let digits = false;
  const item = (token: string, followedByDigit: boolean): Item => (digits ? { kind: 'number', digits: token } : { kind: 'qualifier', rank: qualifierRank(token, followedByDigit) });
  const openList = (): void => {
    const sub: Item[] = [];
    list.push({ kind: 'list', items: sub });
    lists.push(sub);
    list = sub;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '.' || c === '-') {
      list.push(i === start ? { kind: 'number', digits: '0' } : item(text.slice(start, i), false));
      start = i + 1;
      if (c === '-') openList();
      digits = false;
    } else if (c >= '0' && c <= '9') {
      if (!digits && i > start) {
        // A qualifier that does not begin its list gets one of its own (1.foo1 as 1-foo-1).
        if (list.length > 0) openList();
        list.push(item(text.slice(start, i), true));
        start = i;
        openList();
      }
      digits = true;
    } else {
      if (digits && i > start) {
        list.push(item(text.slice(start, i), false));
        start = i;
        openList();
      }
      digits = false;
    }
  }
  if (text.length > start) {
    if (!digits && list.length > 0) openList(); // so 1.foo = 1-foo
    list.push(item(text.slice(start), false));
  }
  for (const each of lists.reverse()) normalize(each);
  return root;
}

/** An item against another, or against a missing one (null). */
function compareItem(a: Item, b: Item | null): number {
  if (a.kind === 'number') {
    if (b === null) return isNull(a) ? 0 : 1;
    return b.kind === 'number' ? compareDigits(a.digits, b.digits) : 1;
  }
  if (a.kind === 'qualifier') {
    if (b === null) return sign(a.rank, RELEASE_RANK);
    return b.kind === 'qualifier' ? sign(a.rank, b.rank) : -1;
  }
  if (b === null) {
    for (const each of a.items) {
      const diff = compareItem(each, null);
      if (diff !== 0) return diff;
    }
    return 0;
  }
  if (b.kind === 'number') return -1;
  if (b.kind === 'qualifier') return 1;
  return compareLists(a.items, b.items);
}

function compareLists(a: readonly Item[], b: readonly Item[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    const diff = x === undefined ? (y === undefined ? 0 : -compareItem(y, null)) : compareItem(x, y ?? null);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** -1, 0 or 1 as Maven's ComparableVersion orders the two. */
export function compareMaven(a: string, b: string): number {
  return compareLists(parseMaven(a), parseMaven(b));
}
