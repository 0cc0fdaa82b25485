/**
 * `.dockerignore` reading and pattern matching with the semantics of moby/patternmatcher (the matcher
 * Docker and BuildKit use): Go `filepath.Clean` on patterns, Go `filepath.Match` syntax validation,
 * `**` for any number of segments, `*`/`?` never crossing '/', and order-sensitive '!' exceptions.
 * Paths and patterns are '/'-separated (the Unix view).
 */
import { KilnError } from '../errors.js';

const SEP = '/';

// Go's unicode.IsSpace set (strings.TrimSpace); unlike String.prototype.trim it keeps U+FEFF and
// trims U+0085.
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM_RE = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'gu');

function trimSpace(s: string): string {
  return s.replace(TRIM_RE, '');
}

function badPattern(pattern: string): KilnError {
  return new KilnError('INVALID_INPUT', `syntax error in pattern ${JSON.stringify(pattern)}`);
}

/** Go's path/filepath.Clean for '/'-separated paths. */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  const rooted = path.startsWith(SEP);
  const out: string[] = [];
  for (const seg of path.split(SEP)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join(SEP);
  if (rooted) return SEP + joined;
  return joined === '' ? '.' : joined;
}

/** Go's path/filepath.Dir for '/'-separated paths. */
function dirName(path: string): string {
  return cleanPath(path.slice(0, path.lastIndexOf(SEP) + 1));
}

/**
 * Reads .dockerignore text into patterns like moby's ignorefile.ReadAll (comments, trimming,
 * leading '/' removal, path cleaning, '!' exclusions).
 */
export function parseDockerignore(text: string): string[] {
  const lines = text.split('\n');
  // bufio.ScanLines yields no empty token after a final newline.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const patterns: string[] = [];
  lines.forEach((raw, index) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (index === 0 && line.startsWith('\ufeff')) line = line.slice(1);
    // A comment is a '#' in column 0, checked before trimming.
    if (line.startsWith('#')) return;
    let pattern = trimSpace(line);
    if (pattern === '') return;
    const invert = pattern.startsWith('!');
    if (invert) pattern = trimSpace(pattern.slice(1));
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith(SEP)) pattern = pattern.slice(1);
    }
    patterns.push(invert ? '!' + pattern : pattern);
  });
  return patterns;
}

// ---------------------------------------------------------------------------------------------
// Go filepath.Match, over code points.

/** Reads one (possibly escaped) class character; undefined means ErrBadPattern. */
function getEsc(chunk: readonly string[], at: number): { ch: string; next: number } | undefined {
  let i = at;
  let c = chunk[i];
  if (c === undefined || c === '-' || c === ']') return undefined;
  if (c === '\\') {
    i++;
    c = chunk[i];
    if (c === undefined) return undefined;
  }
  i++;
  if (i >= chunk.length) return undefined;
  return { ch: c, next: i };
}

function codePoint(ch: string): number {
  return ch.codePointAt(0) ?? 0;
}

/** Splits off the next chunk: leading stars, then up to the next '*' outside a class. */
function scanChunk(pattern: readonly string[], at: number): { star: boolean; start: number; end: number } {
  let i = at;
  let star = false;
  while (i < pattern.length && pattern[i] === '*') {
    i++;
    star = true;
  }
  const start = i;
  let inRange = false;
  for (; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i + 1 < pattern.length) i++;
    } else if (c === '[') {
      inRange = true;
    } else if (c === ']') {
      inRange = false;
    } else if (c === '*' && !inRange) {
      break;
    }
  }
  return { star, start, end: i };
}

/**
 * Matches one chunk against the start of s. Returns the rest of s on success, null on no match;
 * throws on a malformed chunk (the whole chunk is always checked).
 */
function matchChunk(chunk: readonly string[], s: readonly string[], pattern: string): readonly string[] | null {
  let failed = false;
  let ci = 0;
  let si = 0;
  while (ci < chunk.length) {
    if (!failed && si >= s.length) failed = true;
    const c = chunk[ci] as string;
    if (c === '[') {
      let r = -1;
      if (!failed) r = codePoint(s[si++] as string);
      ci++;
      let negated = false;
      if (chunk[ci] === '^') {
        negated = true;
        ci++;
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (chunk[ci] === ']' && nrange > 0) {
          ci++;
          break;
        }
        const lo = getEsc(chunk, ci);
        if (lo === undefined) throw badPattern(pattern);
        ci = lo.next;
        let hi = lo;
        if (chunk[ci] === '-') {
          const h = getEsc(chunk, ci + 1);
          if (h === undefined) throw badPattern(pattern);
          hi = h;
          ci = h.next;
        }
        if (codePoint(lo.ch) <= r && r <= codePoint(hi.ch)) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === '?') {
      if (!failed) {
        if (s[si] === SEP) failed = true;
        si++;
      }
      ci++;
    } else {
      if (c === '\\') {
        ci++;
        if (ci >= chunk.length) throw badPattern(pattern);
      }
      if (!failed) {
        if (chunk[ci] !== s[si]) failed = true;
        si++;
      }
      ci++;
    }
  }
  return failed ? null : s.slice(si);
}

/**
 * Go's filepath.Match semantics (for the filepathMatchCompat group), throwing
 * KilnError('INVALID_INPUT', 'syntax error in pattern ...') for ErrBadPattern.
 */
export function filepathMatch(pattern: string, name: string): boolean {
  const pat = Array.from(pattern);
  let rest: readonly string[] = Array.from(name);
  let pi = 0;
  patternLoop: while (pi < pat.length) {
    const { star, start, end } = scanChunk(pat, pi);
    pi = end;
    const chunk = pat.slice(start, end);
    if (star && chunk.length === 0) {
      // A trailing '*' matches the rest of the name unless it has a separator.
      return !rest.includes(SEP);
    }
    const t = matchChunk(chunk, rest, pattern);
    // The last chunk must consume the whole name.
    if (t !== null && (t.length === 0 || pi < pat.length)) {
      rest = t;
      continue;
    }
    if (star) {
      // Try the chunk at each later position; '*' cannot skip a separator.
      for (let i = 0; i < rest.length && rest[i] !== SEP; i++) {
        const t2 = matchChunk(chunk, rest.slice(i + 1), pattern);
        if (t2 !== null) {
          if (pi >= pat.length && t2.length > 0) continue;
          rest = t2;
          continue patternLoop;
        }
      }
    }
    // No match: still report a malformed remainder of the pattern.
    while (pi < pat.length) {
      const next = scanChunk(pat, pi);
      pi = next.end;
      matchChunk(pat.slice(next.start, next.end), [], pattern);
    }
    return false;
  }
  return rest.length === 0;
}

// ---------------------------------------------------------------------------------------------
// Pattern compilation (patternmatcher's compile: exact / prefix / suffix fast paths, else RegExp).

export type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

const REGEX_SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|']);
const CLASS_SYNTAX = new Set(['\\', ']', '[', '^', '-']);

function escapeLiteral(ch: string): string {
  return REGEX_SYNTAX.has(ch) ? '\\' + ch : ch;
}

function escapeClassChar(ch: string): string {
  return CLASS_SYNTAX.has(ch) ? '\\' + ch : ch;
}

/**
 * How a cleaned pattern (without its '!') is matched: the fast-path class and, for 'regexp', the
 * anchored JavaScript regular expression source (flags 'us'). Throws a bad-pattern KilnError when
 * the pattern cannot be compiled (for example an inverted class range such as `[l-O]`).
 */
export function compilePattern(pattern: string): { matchType: MatchType; regexp: string | null } {
  const cs = Array.from(pattern);
  let re = '^';
  let type: MatchType = 'exact';
  let k = 0;
  for (let iter = 0; k < cs.length; iter++) {
    const ch = cs[k++] as string;
    if (ch === '*') {
      if (cs[k] === '*') {
        k++;
        // "**/" is treated as "**".
        if (cs[k] === SEP) k++;
        if (k >= cs.length) {
          // A trailing "**" matches everything below (like .gitignore).
          if (type === 'exact') {
            type = 'prefix';
          } else {
            re += '.*';
            type = 'regexp';
          }
        } else {
          // Any number of whole segments, including none.
          re += `(.*${SEP})?`;
          type = 'regexp';
        }
        if (iter === 0) type = 'suffix';
      } else {
        re += `[^${SEP}]*`;
        type = 'regexp';
      }
    } else if (ch === '?') {
      re += `[^${SEP}]`;
      type = 'regexp';
    } else if (ch === '\\') {
      const next = cs[k];
      if (next !== undefined) {
        k++;
        re += escapeLiteral(next);
        type = 'regexp';
      } else {
        re += '\\\\';
      }
    } else if (ch === '[') {
      let body = '';
      if (cs[k] === '^') {
        body += '^';
        k++;
      }
      let nrange = 0;
      for (;;) {
        if (cs[k] === ']' && nrange > 0) {
          k++;
          break;
        }
        const lo = getEsc(cs, k);
        if (lo === undefined) throw badPattern(pattern);
        k = lo.next;
        body += escapeClassChar(lo.ch);
        if (cs[k] === '-') {
          const hi = getEsc(cs, k + 1);
          if (hi === undefined) throw badPattern(pattern);
          k = hi.next;
          if (codePoint(hi.ch) < codePoint(lo.ch)) throw badPattern(pattern);
          body += '-' + escapeClassChar(hi.ch);
        }
        nrange++;
      }
      re += `[${body}]`;
      type = 'regexp';
    } else if (ch === ']') {
      re += '\\]';
      type = 'regexp';
    } else {
      re += escapeLiteral(ch);
    }
  }
  if (type !== 'regexp') return { matchType: type, regexp: null };
  return { matchType: 'regexp', regexp: re + '$' };
}

interface CompiledPattern {
  /** The pattern as given (trimmed), including a leading '!'. */
  readonly text: string;
  /** The cleaned pattern without '!'. */
  readonly cleaned: string;
  readonly exclusion: boolean;
  /** Number of path segments in the cleaned pattern (for the legacy one-level parent check). */
  readonly depth: number;
  readonly matchType: MatchType;
  readonly regexp: RegExp | undefined;
  /** Set when the pattern passed validation but could not be compiled; raised on every use. */
  readonly error: KilnError | undefined;
}

function compileAll(patterns: readonly string[]): { compiled: CompiledPattern[]; hasExclusions: boolean } {
  const compiled: CompiledPattern[] = [];
  let hasExclusions = false;
  for (const original of patterns) {
    const text = trimSpace(original);
    if (text === '') continue;
    let p = cleanPath(text);
    let exclusion = false;
    if (p.startsWith('!')) {
      if (p.length === 1) throw new KilnError('INVALID_INPUT', 'illegal exclusion pattern: "!"');
      exclusion = true;
      hasExclusions = true;
      p = p.slice(1);
    }
    // Syntax check with Go's filepath.Match rules (throws on a malformed pattern).
    filepathMatch(p, '.');
    let matchType: MatchType = 'regexp';
    let regexp: RegExp | undefined;
    let error: KilnError | undefined;
    try {
      const c = compilePattern(p);
      matchType = c.matchType;
      if (c.regexp !== null) regexp = new RegExp(c.regexp, 'us');
    } catch {
      error = badPattern(text);
    }
    compiled.push({ text, cleaned: p, exclusion, depth: p.split(SEP).length, matchType, regexp, error });
  }
  return { compiled, hasExclusions };
}

function matchOne(p: CompiledPattern, path: string): boolean {
  if (p.error !== undefined) throw p.error;
  switch (p.matchType) {
    case 'exact':
      return path === p.cleaned;
    case 'prefix':
      return path.startsWith(p.cleaned.slice(0, -2));
    case 'suffix': {
      const suffix = p.cleaned.slice(2);
      if (path.endsWith(suffix)) return true;
      // "**/foo" matches "foo".
      return suffix.startsWith(SEP) && path === suffix.slice(1);
    }
    case 'regexp':
      return p.regexp !== undefined && p.regexp.test(path);
  }
}

/**
 * Runs the patterns in order over a path. `parents` 'all' checks every ancestor directory
 * (MatchesOrParentMatches); 'depth' checks only the ancestor at the pattern's own depth (the
 * deprecated Matches). Returns the final answer and the pattern that decided it.
 */
function evaluate(
  compiled: readonly CompiledPattern[],
  file: string,
  parents: 'all' | 'depth',
): { matched: boolean; decider: CompiledPattern | undefined } {
  let matched = false;
  let decider: CompiledPattern | undefined;
  const parentPath = dirName(file);
  const parentDirs = parentPath.split(SEP);
  for (const p of compiled) {
    // An inclusion only matters while unmatched, an exclusion only while matched.
    if (p.exclusion !== matched) continue;
    let hit = matchOne(p, file);
    if (!hit && parentPath !== '.') {
      if (parents === 'all') {
        for (let i = 0; i < parentDirs.length && !hit; i++) {
          hit = matchOne(p, parentDirs.slice(0, i + 1).join(SEP));
        }
      } else if (p.depth <= parentDirs.length) {
        hit = matchOne(p, parentDirs.slice(0, p.depth).join(SEP));
      }
    }
    if (hit) {
      matched = !p.exclusion;
      decider = p;
    }
  }
  return { matched, decider };
}

/**
 * A compiled pattern list; patterns validated up front (bad pattern → KilnError('INVALID_INPUT',
 * message naming the pattern)).
 */
export class PatternMatcher {
  /** True when some exclusion pattern could re-include something below this directory, so a walker must not skip an excluded directory wholesale. */
  readonly hasExclusions: boolean;
  /** The active patterns (trimmed, empty ones dropped), in order, including any leading '!'. */
  readonly patterns: readonly string[];
  readonly #compiled: readonly CompiledPattern[];

  constructor(patterns: readonly string[]) {
    const { compiled, hasExclusions } = compileAll(patterns);
    this.#compiled = compiled;
    this.hasExclusions = hasExclusions;
    this.patterns = compiled.map((p) => p.text);
  }

  /** moby's MatchesOrParentMatches: true if the path (relative, '/'-separated) or any parent dir is excluded, with '!' exceptions applied in order. */
  matches(path: string): boolean {
    return evaluate(this.#compiled, path, 'all').matched;
  }

  /** The pattern (as written, including a leading '!') that decided the result for this path, or undefined when none matched. Used for error messages ("excluded by .dockerignore rule X"). */
  decidingPattern(path: string): string | undefined {
    return evaluate(this.#compiled, path, 'all').decider?.text;
  }
}

/**
 * moby's deprecated package-level Matches(file, patterns): the path is cleaned, '.' never matches,
 * and only the parent directory at each pattern's own depth is considered.
 */
export function legacyMatches(file: string, patterns: readonly string[]): boolean {
  const { compiled } = compileAll(patterns);
  const cleaned = cleanPath(file);
  if (cleaned === '.') return false;
  return evaluate(compiled, cleaned, 'depth').matched;
}
