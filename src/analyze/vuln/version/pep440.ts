/**
 * Python's version order, PEP 440 (as `packaging.version.Version` sorts): an epoch (`N!`), the release
 * numbers (trailing zeros do not count: 1.0 == 1.0.0), then a pre-release (a < b < rc, spelt also alpha,
 * beta, c, pre, preview, with or without separators and number), a post-release (`.postN`, `-N`, `rev`, `r`),
 * a development release (`.devN`), and a local label (`+ubuntu.1`). A version with only `.devN` sorts
 * before its pre-releases; no pre-release sorts after them; no post before any post; no dev after any dev;
 * local labels add to the version they follow, numeric segments above alphanumeric ones.
 */
import { compareDigits, sign } from './numeric.js';

export interface Pep440Version {
  readonly epoch: string;
  readonly release: readonly string[];
  readonly pre: { readonly letter: 'a' | 'b' | 'rc'; readonly number: string } | null;
  readonly post: string | null;
  readonly dev: string | null;
  readonly local: readonly string[] | null;
}

const PEP440 =
  /^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(alpha|beta|preview|pre|a|b|c|rc)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

const PRE_LETTER: Record<string, 'a' | 'b' | 'rc'> = { a: 'a', alpha: 'a', b: 'b', beta: 'b', c: 'rc', rc: 'rc', pre: 'rc', preview: 'rc' };

/** A PEP 440 version, or undefined for a string `packaging` would reject. */
export function parsePep440(text: string): Pep440Version | undefined {
  const m = PEP440.exec(text);
  if (!m) return undefined;
  const [, epoch, release, preLetter, preNumber, postImplicit, postWord, postNumber, devWord, devNumber, local] = m;
  return {
    epoch: epoch ?? '0',
    release: (release as string).split('.'),
    pre: preLetter !== undefined ? { letter: PRE_LETTER[preLetter.toLowerCase()] as 'a' | 'b' | 'rc', number: preNumber ?? '0' } : null,
    post: postImplicit ?? (postWord !== undefined ? (postNumber ?? '0') : null),
    dev: devWord !== undefined ? (devNumber ?? '0') : null,
    local: local !== undefined ? local.toLowerCase().split(/[-_.]/) : null,
  };
}

/** The release without its trailing zeros. */
function significant(release: readonly string[]): string[] {
  const out = [...release];
  while (out.length > 0 && /^0+$/.test(out.at(-1) as string)) out.pop();
  return out;
}

function compareRelease(a: readonly string[], b: readonly string[]): number {
  const x = significant(a);
  const y = significant(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const diff = compareDigits(x[i] as string, y[i] as string);
    if (diff !== 0) return diff;
  }
  return sign(x.length, y.length);
}

/** Where a version's pre-release part ranks: a dev-only release lowest, then a < b < rc, then none. */
function preRank(v: Pep440Version): number {
  if (v.pre) return ['a', 'b', 'rc'].indexOf(v.pre.letter) + 1;
  return v.post === null && v.dev !== null ? 0 : 4;
}

/** Compares optional numbers, where absent is below every number (`low`) or above it. */
function compareOptional(a: string | null, b: string | null, absent: 'low' | 'high'): number {
  if (a === null || b === null) return a === b ? 0 : (a === null) === (absent === 'low') ? -1 : 1;
  return compareDigits(a, b);
}

function compareLocal(a: readonly string[] | null, b: readonly string[] | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    const diff = nx && ny ? compareDigits(x, y) : nx !== ny ? (nx ? 1 : -1) : sign(x, y);
    if (diff !== 0) return diff;
  }
  return sign(a.length, b.length);
}

export function comparePep440Values(a: Pep440Version, b: Pep440Version): number {
  return (
    compareDigits(a.epoch, b.epoch) ||
    compareRelease(a.release, b.release) ||
    sign(preRank(a), preRank(b)) ||
    (a.pre && b.pre ? compareDigits(a.pre.number, b.pre.number) : 0) ||
    compareOptional(a.post, b.post, 'low') ||
    compareOptional(a.dev, b.dev, 'high') ||
    compareLocal(a.local, b.local)
  );
}
