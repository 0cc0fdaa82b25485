/**
 * Alpine's version order, as apk-tools defines it: `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`.
 * The string is read as tokens of kinds that may only follow one another in that order; two versions
 * compare token by token while their kinds agree. A number with a leading zero compares as a string (the
 * Gentoo rule apk follows, so 1.01 < 1.1); suffixes rank alpha < beta < pre < rc < (none) < cvs < svn <
 * git < hg < p. When one version runs out or changes kind first, a pre-release suffix makes it the lower;
 * otherwise the one whose next token kind comes earlier is the greater (1.0 < 1.0a < 1.0.1; 1.0 < 1.0-r1 < 1.0~hash),
 * and an invalid tail sorts lowest.
 */
import { compareDigits, sign } from './numeric.js';

/** Token kinds in the order they may follow one another; END and INVALID sort after all. */
const enum Kind {
  InitialDigit,
  Digit,
  Letter,
  Suffix,
  SuffixNumber,
  CommitHash,
  Revision,
  End,
  Invalid,
}

const SUFFIXES = ['alpha', 'beta', 'pre', 'rc', '', 'cvs', 'svn', 'git', 'hg', 'p'];
const NO_SUFFIX = SUFFIXES.indexOf('');

interface Token {
  readonly kind: Kind;
  /** The token's text: its digits, letter, suffix word or hash. */
  readonly text: string;
}

/** The tokens of a version, ending in END or INVALID. */
function tokens(version: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const digits = (kind: Kind): Token => {
    const start = i;
    while (i < version.length && /[0-9]/.test(version[i] as string)) i++;
    return { kind: i > start ? kind : Kind.Invalid, text: version.slice(start, i) };
  };
  let token = digits(Kind.InitialDigit);
  out.push(token);
  while (token.kind < Kind.End) {
    const c = version[i];
    const kind = token.kind;
    if (c === undefined) token = { kind: Kind.End, text: '' };
    else if (c >= 'a' && c <= 'z') {
      token = kind > Kind.Digit ? { kind: Kind.Invalid, text: '' } : { kind: Kind.Letter, text: c };
      i++;
    } else if (c === '.' || (c >= '0' && c <= '9')) {
      if (c === '.') {
        if (kind > Kind.Digit) {
          token = { kind: Kind.Invalid, text: '' };
          out.push(token);
          break;
        }
        i++;
      }
      token = kind === Kind.InitialDigit || kind === Kind.Digit ? digits(Kind.Digit) : kind === Kind.Suffix ? digits(Kind.SuffixNumber) : { kind: Kind.Invalid, text: '' };
    } else if (c === '_' && kind <= Kind.SuffixNumber) {
      const word = /^[a-z]*/.exec(version.slice(i + 1))?.[0] ?? '';
      i += 1 + word.length;
      token = word !== '' && SUFFIXES.includes(word) ? { kind: Kind.Suffix, text: word } : { kind: Kind.Invalid, text: '' };
    } else if (c === '~' && kind < Kind.CommitHash) {
      const hash = /^[0-9a-fA-F]*/.exec(version.slice(i + 1))?.[0] ?? '';
      i += 1 + hash.length;
      token = hash !== '' ? { kind: Kind.CommitHash, text: hash } : { kind: Kind.Invalid, text: '' };
    } else if (c === '-' && kind < Kind.Revision && version[i + 1] === 'r') {
      i += 2;
      token = digits(Kind.Revision);
    } else token = { kind: Kind.Invalid, text: '' };
    out.push(token);
  }
  return out;
}

function compareTokens(a: Token, b: Token): number {
  switch (a.kind) {
    case Kind.Digit:
      if (a.text.startsWith('0') || b.text.startsWith('0')) return sign(a.text, b.text);
      return compareDigits(a.text, b.text);
    case Kind.InitialDigit:
    case Kind.SuffixNumber:
    case Kind.Revision:
      return compareDigits(a.text, b.text);
    case Kind.Suffix:
      return sign(SUFFIXES.indexOf(a.text), SUFFIXES.indexOf(b.text));
    default:
      return sign(a.text, b.text);
  }
}

const isPreRelease = (token: Token): boolean => token.kind === Kind.Suffix && SUFFIXES.indexOf(token.text) < NO_SUFFIX;

/** True when apk would accept the version. */
export function isApkVersion(version: string): boolean {
  return tokens(version).at(-1)?.kind === Kind.End;
}

/** -1, 0 or 1 as `apk version -t a b` answers <, = or >. */
export function compareApk(a: string, b: string): number {
  const ta = tokens(a);
  const tb = tokens(b);
  let n = 0;
  for (; ; n++) {
    const x = ta[n] as Token;
    const y = tb[n] as Token;
    if (x.kind !== y.kind || x.kind >= Kind.End) break;
    const diff = compareTokens(x, y);
    if (diff !== 0) return diff;
  }
  const x = ta[n] as Token;
  const y = tb[n] as Token;
  if (x.kind === y.kind) return 0;
  if (isPreRelease(x)) return -1;
  if (isPreRelease(y)) return 1;
  return x.kind > y.kind ? -1 : 1;
}
