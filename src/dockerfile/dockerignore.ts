/**
 * `.dockerignore` reading and pattern matching with the semantics of moby/patternmatcher (the matcher
 * Docker and BuildKit use): Go `filepath.Clean` on patterns, Go `filepath.Match` syntax validation,
 * `**` for any number of segments, `*`/`?` never crossing '/', and order-sensitive '!' exceptions.
 * Paths and patterns are '/'-separated (the Unix view).
 */
import { KilnError } from '../errors.js';

const SEP = '/';

/** Go's unicode.IsSpace (strings.TrimSpace); unlike String.prototype.trim it keeps U+FEFF and trims U+0085. */
function isGoSpace(code: number): boolean {
  if (code <= 0xff) return (code >= 0x09 && code <= 0x0d) || code === 0x20 || code === 0x85 || code === 0xa0;
  return code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000;
}

/** A scan from both ends (a regular expression for trailing space takes time quadratic in a run of inner spaces). */
function trimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isGoSpace(s.charCodeAt(start))) start++;
  while (end > start && isGoSpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function badPattern(pattern: string): KilnError {
  return new KilnError('INVALID_INPUT', `syntax error in pattern ${JSON.stringify(pattern)}`);
}

/** Go's path/filepath.Clean for '/'-separated paths. */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  // Most paths are clean already: no empty, '.' or '..' segment and no final '/'.
  if (!path.endsWith(SEP) && !path.includes('//') && !/(?:^|\/)\.\.?(?:\/|$)/.test(path)) return path;
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
 * leading '/' removal, path cleaning, '!' exclusions), one at a time.
 */
export function* dockerignorePatterns(text: string): Generator<string> {
  const lines = text.split('\n');
  // bufio.ScanLines yields no empty token after a final newline.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const [index, raw] of lines.entries()) {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (index === 0 && line.startsWith('\ufeff')) line = line.slice(1);
    // A comment is a '#' in column 0, checked before trimming.
    if (line.startsWith('#')) continue;
    let pattern = trimSpace(line);
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = trimSpace(pattern.slice(1));
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith(SEP)) pattern = pattern.slice(1);
    }
    yield invert ? '!' + pattern : pattern;
  }
}

/** All the patterns of .dockerignore text (dockerignorePatterns). */
export function parseDockerignore(text: string): string[] {
  return [...dockerignorePatterns(text)];
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
// Pattern compilation. patternmatcher sorts each pattern into a fast path (exact, prefix, suffix) or
// turns it into an anchored regular expression, which Go's regexp engine matches in time linear in
// the pattern and the text. JavaScript's engine backtracks instead: `*`×60+`b` against a long name,
// or `**/`×30+`zz` against a deep path, would take hours. So the regular expression is only described
// here (compilePattern); the same language is matched by running its automaton (Automaton): the set
// of live pattern positions advances one character at a time, never more than O(|pattern|) work per
// character of the path, and never a backtrack.

export type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

// The automaton of a 'regexp' pattern is a list of states, one per element of the pattern (two for a
// `**` inside it: its entry and its loop), ending in ACCEPT. A state is a number: a code point (≥ 0)
// matches that code point; the constants below are the others. A state's successor is the next one,
// so every move that reads nothing goes forward.
/** `?`: one code point other than '/'. */
const ANY = -1;
/** `*`: any number of code points other than '/'. */
const STAR = -2;
/** A trailing `**` after a wildcard: anything at all. */
const REST = -3;
/** `**` (or `**` + '/') before more pattern: nothing, or (through its loop) anything that ends in '/'. */
const DIRS = -4;
const DIRS_LOOP = -5;
const ACCEPT = -6;
/** `[...]`: CLASS - k is the class classes[k]. */
const CLASS = -16;
const SLASH = 0x2f;

/** A `[...]` class: one code point inside (or, negated, outside) the ranges, given as lo, hi pairs. */
interface CharClass {
  readonly negated: boolean;
  readonly ranges: readonly number[];
}

interface Program {
  readonly states: readonly number[];
  readonly classes: readonly CharClass[];
}

const REGEX_SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|']);
const CLASS_SYNTAX = new Set(['\\', ']', '[', '^', '-']);

function escapeLiteral(ch: string): string {
  return REGEX_SYNTAX.has(ch) ? '\\' + ch : ch;
}

function escapeClassChar(ch: string): string {
  return CLASS_SYNTAX.has(ch) ? '\\' + ch : ch;
}

/**
 * A cleaned pattern's fast-path class and its automaton's program; with `describe`, also the
 * regular expression it stands for (for 'regexp').
 */
function translate(pattern: string, describe: boolean): { matchType: MatchType; regexp: string | null; program: Program } {
  const cs = Array.from(pattern);
  const states: number[] = [];
  const classes: CharClass[] = [];
  let re = '^';
  const say = describe ? (text: string): void => void (re += text) : (): void => undefined;
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
            say('.*');
            states.push(REST);
            type = 'regexp';
          }
        } else {
          // Any number of whole segments, including none.
          say(`(.*${SEP})?`);
          states.push(DIRS, DIRS_LOOP);
          type = 'regexp';
        }
        if (iter === 0) type = 'suffix';
      } else {
        say(`[^${SEP}]*`);
        states.push(STAR);
        type = 'regexp';
      }
    } else if (ch === '?') {
      say(`[^${SEP}]`);
      states.push(ANY);
      type = 'regexp';
    } else if (ch === '\\') {
      const next = cs[k];
      if (next !== undefined) {
        k++;
        say(escapeLiteral(next));
        states.push(codePoint(next));
        type = 'regexp';
      } else {
        say('\\\\');
        states.push(codePoint('\\'));
      }
    } else if (ch === '[') {
      let body = '';
      const negated = cs[k] === '^';
      if (negated) {
        body += '^';
        k++;
      }
      const ranges: number[] = [];
      for (;;) {
        if (cs[k] === ']' && ranges.length > 0) {
          k++;
          break;
        }
        const lo = getEsc(cs, k);
        if (lo === undefined) throw badPattern(pattern);
        k = lo.next;
        let hi = lo;
        if (cs[k] === '-') {
          const h = getEsc(cs, k + 1);
          if (h === undefined) throw badPattern(pattern);
          k = h.next;
          if (codePoint(h.ch) < codePoint(lo.ch)) throw badPattern(pattern);
          hi = h;
        }
        if (describe) body += hi === lo ? escapeClassChar(lo.ch) : `${escapeClassChar(lo.ch)}-${escapeClassChar(hi.ch)}`;
        ranges.push(codePoint(lo.ch), codePoint(hi.ch));
      }
      say(`[${body}]`);
      states.push(CLASS - classes.length);
      classes.push({ negated, ranges });
      type = 'regexp';
    } else if (ch === ']') {
      say('\\]');
      states.push(codePoint(']'));
      type = 'regexp';
    } else {
      say(escapeLiteral(ch));
      states.push(codePoint(ch));
    }
  }
  states.push(ACCEPT);
  return { matchType: type, regexp: type === 'regexp' && describe ? re + '$' : null, program: { states, classes } };
}

/**
 * How a cleaned pattern (without its '!') is matched: the fast-path class and, for 'regexp', the
 * anchored regular expression it stands for (as a JavaScript source, flags 'us'; kiln matches it with
 * an automaton, never with RegExp). Throws a bad-pattern KilnError when the pattern cannot be
 * compiled (for example an inverted class range such as `[l-O]`).
 */
export function compilePattern(pattern: string): { matchType: MatchType; regexp: string | null } {
  const { matchType, regexp } = translate(pattern, true);
  return { matchType, regexp };
}

/** Work space of the simulation, grown on demand and shared: a match never starts inside another. */
const scratch = { marks: new Uint32Array(64), current: new Int32Array(64), next: new Int32Array(64), stamp: 0 };

function freshStamp(): number {
  scratch.stamp = (scratch.stamp + 1) >>> 0;
  if (scratch.stamp === 0) {
    scratch.marks.fill(0);
    scratch.stamp = 1;
  }
  return scratch.stamp;
}

function inClass(cls: CharClass, c: number): boolean {
  const { ranges, negated } = cls;
  for (let i = 0; i < ranges.length; i += 2) {
    if ((ranges[i] as number) <= c && c <= (ranges[i + 1] as number)) return !negated;
  }
  return negated;
}

/**
 * The automaton of a 'regexp' pattern, simulated without backtracking: the set of live states
 * advances one code point at a time.
 */
class Automaton {
  readonly #states: readonly number[];
  readonly #classes: readonly CharClass[];
  readonly #accept: number;

  constructor(program: Program) {
    this.#states = program.states;
    this.#classes = program.classes;
    this.#accept = program.states.length - 1;
  }

  /** True when the pattern matches all of `text`. */
  matches(text: string): boolean {
    return this.#run(text, 'whole');
  }

  /** True when the pattern matches `text` up to one of its '/' or to its end (a directory above a path). */
  matchesAPrefix(text: string): boolean {
    return this.#run(text, 'prefixes');
  }

  /** True when some text that starts with `text` could still match. */
  mayMatchAfter(text: string): boolean {
    return this.#run(text, 'live');
  }

  #run(text: string, mode: 'whole' | 'prefixes' | 'live'): boolean {
    const states = this.#states;
    if (scratch.marks.length < states.length) {
      const size = Math.max(states.length, scratch.marks.length * 2);
      scratch.marks = new Uint32Array(size);
      scratch.current = new Int32Array(size);
      scratch.next = new Int32Array(size);
      scratch.stamp = 0;
    }
    const marks = scratch.marks;
    let current = scratch.current;
    let next = scratch.next;
    let stamp = freshStamp();
    let live = this.#enter(0, current, 0, stamp);
    for (let i = 0; i < text.length; ) {
      const c = text.codePointAt(i) as number;
      if (mode === 'prefixes' && c === SLASH && marks[this.#accept] === stamp) return true;
      stamp = freshStamp();
      let reached = 0;
      for (let k = 0; k < live; k++) {
        const s = current[k] as number;
        const state = states[s] as number;
        if (state >= 0) {
          if (state === c) reached = this.#enter(s + 1, next, reached, stamp);
        } else if (state <= CLASS) {
          if (inClass(this.#classes[CLASS - state] as CharClass, c)) reached = this.#enter(s + 1, next, reached, stamp);
        } else if (state === ANY) {
          if (c !== SLASH) reached = this.#enter(s + 1, next, reached, stamp);
        } else if (state === STAR) {
          if (c !== SLASH) reached = this.#enter(s, next, reached, stamp);
        } else if (state === REST) {
          reached = this.#enter(s, next, reached, stamp);
        } else if (state === DIRS_LOOP) {
          reached = this.#enter(s, next, reached, stamp);
          if (c === SLASH) reached = this.#enter(s + 1, next, reached, stamp);
        }
      }
      // Nothing left alive: no longer text (and no longer prefix) can match.
      if (reached === 0) return false;
      [current, next] = [next, current];
      live = reached;
      i += c > 0xffff ? 2 : 1;
    }
    return mode === 'live' || marks[this.#accept] === stamp;
  }

  /** Puts a state in `list` (once per stamp) with every state it reaches without reading. */
  #enter(state: number, list: Int32Array, length: number, stamp: number): number {
    const marks = scratch.marks;
    let s = state;
    let n = length;
    for (;;) {
      if (marks[s] === stamp) return n;
      marks[s] = stamp;
      list[n++] = s;
      const kind = this.#states[s];
      if (kind === STAR || kind === REST) {
        s++;
      } else if (kind === DIRS) {
        // Either into the loop over "anything that ends in '/'", or past it.
        if (marks[s + 1] !== stamp) {
          marks[s + 1] = stamp;
          list[n++] = s + 1;
        }
        s += 2;
      } else {
        return n;
      }
    }
  }
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
  /** The literal text every match starts with ('exact': all of it; 'prefix': all but the `**`). */
  readonly head: string;
  /** The literal text every match ends with ('suffix': all but the leading `**`). */
  readonly tail: string;
  /** 'regexp': the longest literal text every match contains. */
  readonly inner: string;
  readonly automaton: Automaton | undefined;
  /** Set when the pattern passed validation but could not be compiled; raised on every use. */
  readonly error: KilnError | undefined;
}

/** The literal text at the start (or, from the end, at the end) of a program, up to MAX_KEY code points: what every match has there. */
function literalRun(states: readonly number[], fromEnd: boolean): string {
  const last = states.length - 2;
  let n = 0;
  while (n <= last && (states[fromEnd ? last - n : n] as number) >= 0) n++;
  const run = fromEnd ? states.slice(last + 1 - Math.min(n, MAX_KEY), last + 1) : states.slice(0, Math.min(n, MAX_KEY));
  return String.fromCodePoint(...run);
}

/** The longest literal text anywhere in a program (its first MAX_KEY code points): every match contains it. */
function longestRun(states: readonly number[]): string {
  let best: readonly number[] = [];
  for (let start = 0; start < states.length; start++) {
    let end = start;
    while ((states[end] as number) >= 0) end++;
    if (end - start > best.length) best = states.slice(start, end);
    start = end;
  }
  return String.fromCodePoint(...best.slice(0, MAX_KEY));
}

function compileOne(text: string): CompiledPattern {
  let p = cleanPath(text);
  let exclusion = false;
  if (p.startsWith('!')) {
    if (p.length === 1) throw new KilnError('INVALID_INPUT', 'illegal exclusion pattern: "!"');
    exclusion = true;
    p = p.slice(1);
  }
  // Syntax check with Go's filepath.Match rules (throws on a malformed pattern).
  filepathMatch(p, '.');
  let depth = 1;
  for (let i = p.indexOf(SEP); i !== -1; i = p.indexOf(SEP, i + 1)) depth++;
  const compiled = (matchType: MatchType, head: string, tail: string, inner = '', automaton?: Automaton, error?: KilnError): CompiledPattern => ({ text, cleaned: p, exclusion, depth, matchType, head, tail, inner, automaton, error });
  let translated: ReturnType<typeof translate>;
  try {
    translated = translate(p, false);
  } catch {
    return compiled('regexp', '', '', '', undefined, badPattern(text));
  }
  const { matchType, program } = translated;
  switch (matchType) {
    case 'exact':
      return compiled(matchType, p, '');
    case 'prefix':
      return compiled(matchType, p.slice(0, -2), '');
    case 'suffix':
      return compiled(matchType, '', p.slice(2));
    case 'regexp':
      return compiled(matchType, literalRun(program.states, false), literalRun(program.states, true), longestRun(program.states), new Automaton(program));
  }
}

/** True when `prefix` is all of `path` or the part before one of its '/'. */
function isDirectoryOf(path: string, prefix: string): boolean {
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === SLASH);
}

/** Whether the pattern matches `path` itself. */
function matchOne(p: CompiledPattern, path: string): boolean {
  if (p.error !== undefined) throw p.error;
  switch (p.matchType) {
    case 'exact':
      return path === p.cleaned;
    case 'prefix':
      return path.startsWith(p.head);
    case 'suffix':
      // "**/foo" matches "foo".
      return path.endsWith(p.tail) || (p.tail.startsWith(SEP) && path === p.tail.slice(1));
    case 'regexp':
      return path.startsWith(p.head) && path.endsWith(p.tail) && (p.automaton as Automaton).matches(path);
  }
}

/** Whether the pattern matches `dir` or one of the directories above it (its parts before a '/'). */
function matchesDirectoryAbove(p: CompiledPattern, dir: string): boolean {
  if (p.error !== undefined) throw p.error;
  switch (p.matchType) {
    case 'exact':
      return isDirectoryOf(dir, p.cleaned);
    case 'prefix':
      return dir.startsWith(p.head);
    case 'suffix': {
      if (p.tail.startsWith(SEP) && isDirectoryOf(dir, p.tail.slice(1))) return true;
      for (let end = dir.indexOf(SEP); ; end = dir.indexOf(SEP, end + 1)) {
        const stop = end === -1 ? dir.length : end;
        if (stop >= p.tail.length && dir.startsWith(p.tail, stop - p.tail.length)) return true;
        if (end === -1) return false;
      }
    }
    case 'regexp':
      return dir.startsWith(p.head) && (p.automaton as Automaton).matchesAPrefix(dir);
  }
}

/** Whether the pattern could match something below the directory whose path (with a final '/') is `below`. */
function mayMatchBelow(p: CompiledPattern, below: string): boolean {
  switch (p.matchType) {
    case 'exact':
      return p.cleaned.startsWith(below);
    case 'prefix':
      return p.head.startsWith(below) || below.startsWith(p.head);
    case 'suffix':
      return true;
    case 'regexp':
      return p.error !== undefined || ((p.head.startsWith(below) || below.startsWith(p.head)) && (p.automaton as Automaton).mayMatchAfter(below));
  }
}

function reversed(text: string): string {
  return text.split('').reverse().join('');
}

/**
 * Work on a long pattern list, as a generator that yields wherever it may stop for a while: run at once
 * (finish) or with the event loop taking turns (finishInSteps). One code path for both.
 */
type Steps<T> = Generator<void, T, void>;

/** How many elements a step handles between yields. */
const STEP = 4096;

function finish<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

async function finishInSteps<T>(steps: Steps<T>, pause: () => Promise<void>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    await pause();
  }
}

/** A stable merge sort that yields every STEP elements. */
function* sortInSteps<T>(items: readonly T[], before: (a: T, b: T) => boolean): Steps<T[]> {
  let runs: T[][] = [];
  for (let i = 0; i < items.length; i += STEP) {
    runs.push(items.slice(i, i + STEP).sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0)));
    yield;
  }
  while (runs.length > 1) {
    const merged: T[][] = [];
    for (let r = 0; r < runs.length; r += 2) {
      const left = runs[r] as T[];
      const right = runs[r + 1] ?? [];
      const out: T[] = [];
      let a = 0;
      let b = 0;
      while (a < left.length || b < right.length) {
        out.push(b >= right.length || (a < left.length && !before(right[b] as T, left[a] as T)) ? (left[a++] as T) : (right[b++] as T));
        if (out.length % STEP === 0) yield;
      }
      merged.push(out);
    }
    runs = merged;
  }
  return runs[0] ?? [];
}

/**
 * How much of a literal a table key keeps (a prefix of a required literal is required too): bounds the
 * cost of comparing a key with a path, so a lookup stays linear in the path however long the patterns.
 */
const MAX_KEY = 64;

/**
 * Pattern numbers filed under literal keys, for finding the few patterns that can match a path among
 * many. Keys are kept sorted, each linked to the longest other key that is its prefix: the keys that
 * are prefixes of a text are then the chain from the greatest key not above the text, so a lookup
 * costs one binary search and that chain, however many keys there are.
 */
class PrefixTable {
  readonly #keys: readonly string[];
  readonly #members: readonly (readonly number[])[];
  /** For each key, the index of the longest other key that is a prefix of it, or -1. */
  readonly #shorter: Int32Array;

  private constructor(keys: readonly string[], members: readonly (readonly number[])[], shorter: Int32Array) {
    this.#keys = keys;
    this.#members = members;
    this.#shorter = shorter;
  }

  static *build(entries: readonly (readonly [string, number])[]): Steps<PrefixTable> {
    // `<` compares UTF-16 code units, as startsWith does.
    const sorted = yield* sortInSteps(entries, ([a], [b]) => a < b);
    const keys: string[] = [];
    const members: number[][] = [];
    for (const [key, member] of sorted) {
      if (keys[keys.length - 1] === key) (members[members.length - 1] as number[]).push(member);
      else {
        keys.push(key);
        members.push([member]);
      }
    }
    yield;
    const shorter = new Int32Array(keys.length);
    const open: number[] = [];
    for (const [i, key] of keys.entries()) {
      while (open.length > 0 && !key.startsWith(keys[open[open.length - 1] as number] as string)) open.pop();
      shorter[i] = open.length > 0 ? (open[open.length - 1] as number) : -1;
      open.push(i);
      if (i % STEP === 0) yield;
    }
    return new PrefixTable(keys, members, shorter);
  }

  /** Calls `visit` with every member whose key occurs in `text`. */
  eachInside(text: string, visit: (member: number) => void): void {
    if (this.#keys.length === 0) return;
    const seen = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      this.#chain(text.slice(i), (k) => {
        if (seen.has(k)) return;
        seen.add(k);
        for (const member of this.#members[k] as number[]) visit(member);
      });
    }
  }

  /** Calls `visit` with every member whose key is a prefix of `text`. */
  each(text: string, visit: (member: number) => void): void {
    this.#chain(text, (k) => {
      for (const member of this.#members[k] as number[]) visit(member);
    });
  }

  /** Calls `visit` with the index of every key that is a prefix of `text`. */
  #chain(text: string, visit: (key: number) => void): void {
    const keys = this.#keys;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((keys[mid] as string) <= text) lo = mid + 1;
      else hi = mid;
    }
    let k = lo - 1;
    if (k < 0) return;
    // Every key that is a prefix of `text` is a prefix of keys[k]: those no longer than what they share.
    const nearest = keys[k] as string;
    let shared = 0;
    while (shared < nearest.length && shared < text.length && nearest.charCodeAt(shared) === text.charCodeAt(shared)) shared++;
    for (; k >= 0; k = this.#shorter[k] as number) {
      if ((keys[k] as string).length <= shared) visit(k);
    }
  }
}

/** A compiled pattern list with its tables. */
class Compiled {
  constructor(
    readonly list: readonly CompiledPattern[],
    /** Patterns by the literal text their matches start with. */
    readonly heads: PrefixTable,
    /** Patterns by the literal text their matches end with, reversed. */
    readonly tails: PrefixTable,
    /** Patterns by a literal text their matches contain. */
    readonly inners: PrefixTable,
    /** The indices of '!' patterns, ascending. */
    readonly exclusions: readonly number[],
    /** The indices of patterns that fail when used, ascending. */
    readonly failing: readonly number[],
  ) {}
}

/** Compiles the non-empty patterns (trimmed), in order, and files each under its longest literal. */
function* compileAll(patterns: Iterable<string>): Steps<Compiled> {
  const list: CompiledPattern[] = [];
  const heads: [string, number][] = [];
  const tails: [string, number][] = [];
  const inners: [string, number][] = [];
  const exclusions: number[] = [];
  const failing: number[] = [];
  let read = 0;
  for (const original of patterns) {
    if (++read % 256 === 0) yield;
    const text = trimSpace(original);
    if (text === '') continue;
    const p = compileOne(text);
    const i = list.push(p) - 1;
    if (p.exclusion) exclusions.push(i);
    // A match must start with, end with or contain the literal; with none at all, the pattern is
    // filed under '' and tried on every path.
    if (p.error !== undefined) failing.push(i);
    else if (p.matchType === 'suffix') {
      tails.push([reversed(p.tail.slice(-MAX_KEY)), i]);
      // "**/foo" also matches "foo" itself.
      if (p.tail.startsWith(SEP)) heads.push([p.tail.slice(1, MAX_KEY + 1), i]);
    } else if (p.inner.length > Math.max(p.head.length, p.tail.length)) inners.push([p.inner, i]);
    else if (p.tail.length > p.head.length) tails.push([reversed(p.tail.slice(-MAX_KEY)), i]);
    else heads.push([p.head.slice(0, MAX_KEY), i]);
  }
  return new Compiled(list, yield* PrefixTable.build(heads), yield* PrefixTable.build(tails), yield* PrefixTable.build(inners), exclusions, failing);
}

/** What the patterns say about one path of a walk; the walk hands a directory's state to its entries. */
export interface IgnoreState {
  readonly excluded: boolean;
  /** The index of the last pattern that matched the path or a directory above it (-1: none). */
  readonly lastHit: number;
}

/** How many '!' patterns a walk examines before it gives up skipping an excluded directory wholesale. */
const SKIP_CHECK_LIMIT = 256;

/**
 * A compiled pattern list; patterns validated up front (bad pattern → KilnError('INVALID_INPUT',
 * message naming the pattern)).
 *
 * The answer for a path is decided by the last pattern that matches the path or a directory above it
 * (moby's skipping of patterns that cannot change the answer never changes it). So the patterns are
 * filed by the longest literal text their matches must start with, end with or contain, and a path is
 * checked only against the patterns whose literal text it has: 100,000 patterns cost little more than
 * ten, unless they have no literal text at all.
 */
export class PatternMatcher {
  /** True when some pattern is an exclusion ('!'); with none, an excluded directory is excluded whole. */
  readonly hasExclusions: boolean;
  /** The active patterns (trimmed, empty ones dropped), in order, including any leading '!'. */
  readonly patterns: readonly string[];
  readonly #compiled: readonly CompiledPattern[];
  readonly #heads: PrefixTable;
  readonly #tails: PrefixTable;
  readonly #inners: PrefixTable;
  readonly #exclusions: readonly number[];
  readonly #failing: readonly number[];

  /** Compiles the patterns (or takes what PatternMatcher.compile made). */
  constructor(patterns: readonly string[] | Compiled) {
    const compiled = patterns instanceof Compiled ? patterns : finish(compileAll(patterns));
    this.#compiled = compiled.list;
    this.#heads = compiled.heads;
    this.#tails = compiled.tails;
    this.#inners = compiled.inners;
    this.#exclusions = compiled.exclusions;
    this.#failing = compiled.failing;
    this.patterns = compiled.list.map((p) => p.text);
    this.hasExclusions = compiled.exclusions.length > 0;
  }

  /**
   * The same matcher, made with `pause` awaited every few thousand steps: 100,000 patterns take a
   * second to compile, and inside `kiln serve` the event loop must get its turns meanwhile.
   */
  static async compile(patterns: Iterable<string>, pause: () => Promise<void>): Promise<PatternMatcher> {
    return new PatternMatcher(await finishInSteps(compileAll(patterns), pause));
  }

  /** moby's MatchesOrParentMatches: true if the path (relative, '/'-separated) or any parent dir is excluded, with '!' exceptions applied in order. */
  matches(path: string): boolean {
    return this.#evaluate(path).matched;
  }

  /** The pattern (as written, including a leading '!') that decided the result for this path, or undefined when none matched. Used for error messages ("excluded by .dockerignore rule X"). */
  decidingPattern(path: string): string | undefined {
    return this.#evaluate(path).decider?.text;
  }

  /**
   * The answer for a path met in a walk, from its directory's state (undefined for the walk's top
   * level): only the path itself is matched, as BuildKit's walker does with MatchesUsingParentResults.
   */
  stateOf(path: string, parent: IgnoreState | undefined): IgnoreState {
    if (this.#failing.length > 0) return { excluded: this.#evaluate(path).matched, lastHit: -1 };
    let last = parent?.lastHit ?? -1;
    const consider = (i: number): void => {
      if (i > last && matchOne(this.#compiled[i] as CompiledPattern, path)) last = i;
    };
    this.#heads.each(path, consider);
    this.#tails.each(reversed(path), consider);
    this.#inners.eachInside(path, consider);
    return { excluded: last >= 0 && !(this.#compiled[last] as CompiledPattern).exclusion, lastHit: last };
  }

  /**
   * True when a walk may leave out everything below an excluded directory: no '!' pattern after the
   * one that excluded it can match anything below it (BuildKit skips only when its exceptions have no
   * wildcards; this asks each exception, and walks on when there are too many to ask).
   */
  skipsBelow(dir: string, state: IgnoreState): boolean {
    if (!state.excluded) return false;
    if (this.#failing.length > 0) return !this.hasExclusions;
    const below = dir + SEP;
    let asked = 0;
    for (const i of this.#exclusions) {
      if (i <= state.lastHit) continue;
      if (++asked > SKIP_CHECK_LIMIT || mayMatchBelow(this.#compiled[i] as CompiledPattern, below)) return false;
    }
    return true;
  }

  /**
   * Runs the patterns in order over a path and the directories above it, as MatchesOrParentMatches:
   * the patterns that match are found through the tables, then replayed in order with the ones that
   * fail when used, so a failing pattern fails exactly when moby would evaluate it.
   */
  #evaluate(file: string): { matched: boolean; decider: CompiledPattern | undefined } {
    const parent = dirName(file);
    const hasParent = parent !== '.';
    const seen = new Set<number>();
    const hits: number[] = [];
    const consider = (i: number): void => {
      if (seen.has(i)) return;
      seen.add(i);
      const p = this.#compiled[i] as CompiledPattern;
      if (matchOne(p, file) || (hasParent && matchesDirectoryAbove(p, parent))) hits.push(i);
    };
    this.#heads.each(file, consider);
    this.#tails.each(reversed(file), consider);
    this.#inners.eachInside(file, consider);
    if (hasParent) {
      this.#heads.each(parent, consider);
      this.#inners.eachInside(parent, consider);
      const backwards = reversed(parent);
      for (let end = parent.indexOf(SEP); ; end = parent.indexOf(SEP, end + 1)) {
        this.#tails.each(end === -1 ? backwards : backwards.slice(parent.length - end), consider);
        if (end === -1) break;
      }
    }
    const order = [...hits, ...this.#failing].sort((a, b) => a - b);
    let matched = false;
    let decider: CompiledPattern | undefined;
    for (const i of order) {
      const p = this.#compiled[i] as CompiledPattern;
      // An inclusion only matters while unmatched, an exclusion only while matched.
      if (p.exclusion !== matched) continue;
      if (p.error !== undefined) throw p.error;
      matched = !p.exclusion;
      decider = p;
    }
    return { matched, decider };
  }
}

/**
 * moby's deprecated package-level Matches(file, patterns): the path is cleaned, '.' never matches,
 * and only the parent directory at each pattern's own depth is considered.
 */
export function legacyMatches(file: string, patterns: readonly string[]): boolean {
  const compiled = finish(compileAll(patterns)).list;
  const cleaned = cleanPath(file);
  if (cleaned === '.') return false;
  const parentDirs = dirName(cleaned).split(SEP);
  const hasParent = dirName(cleaned) !== '.';
  let matched = false;
  for (const p of compiled) {
    if (p.exclusion !== matched) continue;
    let hit = matchOne(p, cleaned);
    if (!hit && hasParent && p.depth <= parentDirs.length) hit = matchOne(p, parentDirs.slice(0, p.depth).join(SEP));
    if (hit) matched = !p.exclusion;
  }
  return matched;
}
