import { KilnError } from '../errors.js';

/**
 * Dockerfile word expansion, as BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`) does it for
 * ENV, ARG, COPY, WORKDIR and the other instructions that expand variables. It is not a shell: there is
 * no command substitution, arithmetic or globbing of file names, only quotes, the escape character and
 * parameter expansion (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR%pattern}`, `${VAR/pat/repl}`, ...).
 */

export interface ShellLexOptions {
  /** The Dockerfile escape character (`# escape=` directive); `\` unless set. */
  escape?: '\\' | '`';
}

/** Lookup returns undefined for an unset variable. */
export type VariableLookup = (name: string) => string | undefined;

/**
 * The longest word an expansion may produce, in characters. Words that kiln expands become paths, user
 * names, image references, `--mount` options, ENV and LABEL values and COPY heredoc bodies: a process
 * takes at most 128 KiB in one argument or environment variable (Linux's MAX_ARG_STRLEN), an image config
 * holds at most 8 MiB in all, and a file bigger than this belongs in the build context, not the
 * Dockerfile. So no real Dockerfile comes near 1 MiB, while a few self-doubling ARGs would reach
 * gigabytes (2^28 characters after 28 `ARG A=${A}${A}`).
 */
export const MAX_EXPANDED_WORD = 1 << 20;

/**
 * The most work one `${VAR#pattern}`, `${VAR%pattern}` or `${VAR/pattern/...}` may take: the pattern's
 * length times the value's. Matching is linear in each, so this is about a second's work at worst; real
 * patterns (`.*`, `:`, a version prefix) are a few characters long.
 */
export const MAX_PATTERN_WORK = 1 << 26;

/** Expands one word: quotes removed, escapes processed, variables substituted; no word splitting. Also returns the names of variables that were referenced (set or not), in first-seen order. */
export function expandWord(
  word: string,
  lookup: VariableLookup,
  options?: ShellLexOptions,
): { value: string; used: string[] } {
  const lexer = new Lexer(word, lookup, options?.escape ?? '\\');
  const { value } = lexer.processStopOn(STOP_AT_END, false);
  return { value, used: lexer.usedNames() };
}

/** Expands a line into words: unquoted expansions split on whitespace, quoted ones stay one word. */
export function expandWords(
  line: string,
  lookup: VariableLookup,
  options?: ShellLexOptions,
): { words: string[]; used: string[] } {
  const lexer = new Lexer(line, lookup, options?.escape ?? '\\');
  const words = new Words();
  lexer.processStopOn(STOP_AT_END, false, words);
  return { words: words.result(), used: lexer.usedNames() };
}

const STOP_AT_END: readonly string[] = [];

/** Text for an error message: a long word is cut, so that the message stays readable. */
function shortened(text: string): string {
  return text.length <= 200 ? text : `${text.slice(0, 200)}… (${text.length} characters)`;
}

// ASCII is told apart without the Unicode property regexps, whose tables take some ms to compile; a
// Dockerfile's words are nearly always ASCII.

/** Go's unicode.IsSpace: the White_Space property (which covers U+0085 and U+00A0 too). */
function isSpace(ch: string): boolean {
  return ch < '\x80' ? ch === ' ' || (ch >= '\t' && ch <= '\r') : /^\p{White_Space}$/u.test(ch);
}

function isLetter(ch: string): boolean {
  return ch < '\x80' ? (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') : /^\p{L}$/u.test(ch);
}

function isDigit(ch: string): boolean {
  return ch < '\x80' ? ch >= '0' && ch <= '9' : /^\p{Nd}$/u.test(ch);
}

/** POSIX special parameters; never set in a Dockerfile. */
function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch);
}

/** Positional (`1`, `001`) and special (`@`, `#`, ...) parameters: always unset, never looked up. */
function isParameterName(name: string): boolean {
  const first = name[0];
  return first !== undefined && (isDigit(first) || (name.length === 1 && isSpecialParam(first)));
}

/** Accumulates the words of a line, splitting unquoted text on whitespace (BuildKit's wordsStruct). */
class Words {
  private word = '';
  private inWord = false;
  private readonly words: string[] = [];

  /** An unquoted character: whitespace ends the current word. */
  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length > 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }

  /** A quoted or escaped character: always part of the word. */
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }

  /** The result of an unquoted expansion: split like unquoted text. */
  addString(text: string): void {
    for (const ch of text) this.addChar(ch);
  }

  /** The content of a quoted string: one piece of the current word. */
  addRawString(text: string): void {
    this.word += text;
    this.inWord = true;
  }

  result(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class Lexer {
  /** The input split into code points, so that names and patterns work on characters, not UTF-16 units. */
  private readonly chars: readonly string[];
  private pos = 0;
  private readonly used: string[] = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly input: string,
    private readonly lookup: VariableLookup,
    private readonly escape: string,
  ) {
    this.chars = Array.from(input);
  }

  usedNames(): string[] {
    return [...this.used];
  }

  private peek(offset = 0): string | undefined {
    return this.chars[this.pos + offset];
  }

  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  private fail(message: string): never {
    throw new KilnError('INVALID_INPUT', `${message} in ${JSON.stringify(shortened(this.input))}`);
  }

  private tooLong(): never {
    this.fail(`the word expands to more than ${MAX_EXPANDED_WORD} characters (1 MiB, the most kiln expands a word to)`);
  }

  /** Refuses an expansion that grew past MAX_EXPANDED_WORD; returns the text otherwise. */
  private bounded(text: string): string {
    return text.length > MAX_EXPANDED_WORD ? this.tooLong() : text;
  }

  /** Refuses a pattern operation that would take more than MAX_PATTERN_WORK steps. */
  private checkPatternWork(value: string, pattern: string): void {
    if ((value.length + 1) * (pattern.length + 1) > MAX_PATTERN_WORK) {
      this.fail(`matching a pattern of ${pattern.length} characters against a value of ${value.length} is more than kiln does for one substitution (${MAX_PATTERN_WORK} steps)`);
    }
  }

  private reference(name: string): void {
    if (name === '' || isParameterName(name) || this.seen.has(name)) return;
    this.seen.add(name);
    this.used.push(name);
  }

  private getVariable(name: string): string | undefined {
    if (name === '' || isParameterName(name)) return undefined;
    return this.lookup(name);
  }

  /**
   * Processes text up to one of `stops` (consumed) or, with no stops, to the end of the input.
   * `rawEscapes` keeps escape characters (and escapes quoted glob characters) so that the result can be
   * read as a pattern. `words`, when given, also gets the text split into words.
   */
  processStopOn(stops: readonly string[], rawEscapes: boolean, words?: Words): { value: string; stoppedAt: string | undefined } {
    let result = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (stops.includes(ch)) {
        this.next();
        return { value: result, stoppedAt: ch };
      }
      if (ch === "'" || ch === '"') {
        let text = ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
        if (rawEscapes) text = this.escapeGlob(text);
        result = this.bounded(result + text);
        words?.addRawString(text);
      } else if (ch === '$') {
        const text = this.processDollar();
        result = this.bounded(result + text);
        words?.addString(text);
      } else {
        this.next();
        if (ch === this.escape) {
          if (rawEscapes) result += ch;
          const escaped = this.next();
          // An escape character at the very end is dropped.
          if (escaped === undefined) break;
          if (rawEscapes) words?.addRawChar(ch);
          words?.addRawChar(escaped);
          result = this.bounded(result + escaped);
        } else {
          // A run of plain characters in one piece: a long word is one copy, not one per character.
          const start = this.pos - 1;
          while (this.pos < this.chars.length && !this.special(this.chars[this.pos] as string, stops)) this.pos++;
          const text = this.pos - start === 1 ? ch : this.chars.slice(start, this.pos).join('');
          if (words) words.addString(text);
          result = this.bounded(result + text);
        }
      }
    }
    if (stops.length > 0) {
      this.fail(`missing '${stops[stops.length - 1]}'`);
    }
    return { value: result, stoppedAt: undefined };
  }

  /** A character that ends a run of plain text. */
  private special(ch: string, stops: readonly string[]): boolean {
    return ch === "'" || ch === '"' || ch === '$' || ch === this.escape || stops.includes(ch);
  }

  /** Protects the glob characters of quoted text inside a pattern: quoted text matches literally. */
  private escapeGlob(text: string): string {
    let out = '';
    for (const ch of text) {
      if ('*?['.includes(ch) || ch === this.escape) out += this.escape;
      out += ch;
    }
    return out;
  }

  /** Everything between single quotes is literal; a single quote cannot be escaped inside them. */
  private processSingleQuote(): string {
    this.next();
    let result = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) this.fail('unterminated quote');
      if (ch === "'") return result;
      result += ch;
    }
  }

  /** Variables expand in double quotes; the escape character escapes only `"`, `$` and itself. */
  private processDoubleQuote(): string {
    this.next();
    let result = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) this.fail('unterminated quote');
      if (ch === '"') {
        this.next();
        return result;
      }
      if (ch === '$') {
        result = this.bounded(result + this.processDollar());
        continue;
      }
      this.next();
      if (ch === this.escape) {
        const following = this.peek();
        if (following === undefined) continue;
        if (following === '"' || following === '$' || following === this.escape) {
          result += following;
          this.next();
          continue;
        }
      }
      result += ch;
    }
  }

  /** A name: letters, digits and `_`; or a run of digits (positional); or one special parameter. */
  private processName(): string {
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (name.length === 0 && isDigit(ch)) {
        for (let d = this.peek(); d !== undefined && isDigit(d); d = this.peek()) name += this.next();
        return name;
      }
      if (name.length === 0 && isSpecialParam(ch)) {
        this.next();
        return ch;
      }
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += ch;
      this.next();
    }
    return name;
  }

  private processDollar(): string {
    this.next(); // $
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      this.reference(name);
      return this.getVariable(name) ?? '';
    }
    this.next(); // {
    const first = this.peek();
    if (first === undefined) this.fail("missing '}'");
    if (first === '{' || first === '}' || first === ':') this.fail('bad substitution');

    // ${#VAR}: the length of the value, in characters.
    const afterHash = this.peek(1);
    if (first === '#' && afterHash !== undefined && (isLetter(afterHash) || isDigit(afterHash) || afterHash === '_')) {
      this.next();
      const name = this.processName();
      if (this.next() !== '}') this.fail('bad substitution');
      this.reference(name);
      return String(Array.from(this.getVariable(name) ?? '').length);
    }

    const name = this.processName();
    if (name === '') this.fail('bad substitution');
    this.reference(name);
    let op = this.next();
    if (op === undefined) this.fail("missing '}'");
    if (op === '}') return this.getVariable(name) ?? '';

    if (op === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      const pattern = this.processStopOn(['/', '}'], true);
      // The replacement is plain text: escapes are processed, not kept.
      const replacement = pattern.stoppedAt === '/' ? this.processStopOn(['}'], false).value : '';
      const value = this.getVariable(name) ?? '';
      this.checkPatternWork(value, pattern.value);
      const replaced = replacePattern(value, pattern.value, replacement, replaceAll, this.escape, MAX_EXPANDED_WORD);
      return replaced ?? this.tooLong();
    }

    let modifier = op;
    const nullIsUnset = op === ':';
    if (nullIsUnset) {
      const after = this.next();
      if (after === undefined) this.fail("missing '}'");
      op = after;
      modifier += after;
    }
    if (!['-', '+', '?', '#', '%'].includes(op)) {
      this.fail(`unsupported modifier (${modifier}) in substitution`);
    }
    const isPattern = op === '#' || op === '%';
    if (nullIsUnset && isPattern) this.fail(`unsupported modifier (${modifier}) in substitution`);

    const word = this.processStopOn(['}'], isPattern).value;
    const value = this.getVariable(name);
    const unset = value === undefined || (nullIsUnset && value === '');
    switch (op) {
      case '-':
        return unset ? word : value;
      case '+':
        return unset ? '' : word;
      case '?':
        if (value === undefined) {
          throw new KilnError('INVALID_INPUT', `${name}: ${word || 'is not allowed to be unset'}`);
        }
        if (unset) throw new KilnError('INVALID_INPUT', `${name}: ${word || 'is not allowed to be empty'}`);
        return value;
      default: {
        // `%`/`#` remove the shortest matching suffix/prefix, `%%`/`##` the longest.
        let pattern = word;
        const greedy = pattern.startsWith(op);
        if (greedy) pattern = pattern.slice(op.length);
        this.checkPatternWork(value ?? '', pattern);
        return trimPattern(value ?? '', pattern, op === '#' ? 'prefix' : 'suffix', greedy, this.escape);
      }
    }
  }
}

type GlobToken =
  | { readonly kind: 'literal'; readonly ch: string }
  | { readonly kind: 'any' }
  | { readonly kind: 'star' }
  | { readonly kind: 'class'; readonly negate: boolean; readonly ranges: readonly (readonly [string, string])[] };

/** Parses a shell pattern: `*`, `?`, `[...]` (with `!`/`^` negation and ranges), escape makes literal. */
function parseGlob(pattern: string, escape: string): GlobToken[] {
  const chars = Array.from(pattern);
  const tokens: GlobToken[] = [];
  let unclosed = false;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === escape && i + 1 < chars.length) {
      tokens.push({ kind: 'literal', ch: chars[++i] as string });
    } else if (ch === '*') {
      tokens.push({ kind: 'star' });
    } else if (ch === '?') {
      tokens.push({ kind: 'any' });
    } else if (ch === '[') {
      // A bracket that found no closing `]` scanned to the end: the ones after it would too (and a pattern
      // of many would take quadratic time), so they are literal without a scan.
      const parsed: ReturnType<typeof parseClass> = unclosed ? undefined : parseClass(chars, i + 1, escape);
      unclosed = parsed === undefined;
      if (parsed) {
        tokens.push(parsed.token);
        i = parsed.end;
      } else {
        tokens.push({ kind: 'literal', ch });
      }
    } else {
      tokens.push({ kind: 'literal', ch });
    }
  }
  return tokens;
}

/** Parses a bracket expression starting after `[`; undefined when it has no closing `]`. */
function parseClass(
  chars: readonly string[],
  start: number,
  escape: string,
): { token: GlobToken; end: number } | undefined {
  let i = start;
  let negate = false;
  if (chars[i] === '!' || chars[i] === '^') {
    negate = true;
    i++;
  }
  const ranges: [string, string][] = [];
  let first = true;
  for (; i < chars.length; i++) {
    let ch = chars[i] as string;
    if (ch === ']' && !first) return { token: { kind: 'class', negate, ranges }, end: i };
    first = false;
    if (ch === escape && i + 1 < chars.length) ch = chars[++i] as string;
    let high = ch;
    if (chars[i + 1] === '-' && i + 2 < chars.length && chars[i + 2] !== ']') {
      i += 2;
      high = chars[i] as string;
      if (high === escape && i + 1 < chars.length) high = chars[++i] as string;
    }
    ranges.push([ch, high]);
  }
  return undefined;
}

function matchesClass(token: Extract<GlobToken, { kind: 'class' }>, ch: string): boolean {
  const cp = ch.codePointAt(0) ?? 0;
  const inside = token.ranges.some(([lo, hi]) => cp >= (lo.codePointAt(0) ?? 0) && cp <= (hi.codePointAt(0) ?? 0));
  return inside !== token.negate;
}

function tokenMatches(token: GlobToken, ch: string): boolean {
  return token.kind === 'any' || (token.kind === 'literal' && token.ch === ch) || (token.kind === 'class' && matchesClass(token, ch));
}

/**
 * Which prefixes of `text` (code points) the whole pattern matches: result[j] is 1 when it matches
 * text[0..j). One pass per token over the text, so the work is tokens × text, never more.
 */
function matchingPrefixes(tokens: readonly GlobToken[], text: readonly string[]): Uint8Array {
  // reachable[j]: the tokens so far can match text[0..j).
  let reachable = new Uint8Array(text.length + 1);
  reachable[0] = 1;
  let next = new Uint8Array(text.length + 1);
  for (const token of tokens) {
    next.fill(0);
    if (token.kind === 'star') {
      let any = 0;
      for (let j = 0; j <= text.length; j++) {
        any |= reachable[j] ?? 0;
        next[j] = any;
      }
    } else {
      for (let j = 0; j < text.length; j++) if (reachable[j] && tokenMatches(token, text[j] as string)) next[j + 1] = 1;
    }
    [reachable, next] = [next, reachable];
  }
  return reachable;
}

/**
 * For each start i, the end of the longest match there: ends[i] = j for the largest j such that the
 * pattern matches text[i..j), -1 when none does. Filled from the end of the text backwards, keeping per
 * token the furthest end reachable from it, so the work is tokens × text, never more.
 */
function longestMatchEnds(tokens: readonly GlobToken[], text: readonly string[]): Int32Array {
  const ends = new Int32Array(text.length + 1);
  // after[s]: the furthest end for tokens s.. matched from i + 1; here[s]: the same from i.
  let after = new Int32Array(tokens.length + 1).fill(-1);
  let here = new Int32Array(tokens.length + 1);
  for (let i = text.length; i >= 0; i--) {
    here[tokens.length] = i;
    for (let s = tokens.length - 1; s >= 0; s--) {
      const token = tokens[s] as GlobToken;
      if (token.kind === 'star') here[s] = Math.max(here[s + 1] ?? -1, after[s] ?? -1);
      else here[s] = i < text.length && tokenMatches(token, text[i] as string) ? (after[s + 1] ?? -1) : -1;
    }
    ends[i] = here[0] ?? -1;
    [after, here] = [here, after];
  }
  return ends;
}

/** `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`. */
function trimPattern(value: string, pattern: string, side: 'prefix' | 'suffix', greedy: boolean, escape: string): string {
  const tokens = parseGlob(pattern, escape);
  const chars = Array.from(value);
  const n = chars.length;
  // A suffix of the value matches the pattern when its reverse matches the reversed pattern.
  const matches = side === 'prefix' ? matchingPrefixes(tokens, chars) : matchingPrefixes([...tokens].reverse(), [...chars].reverse());
  for (let k = 0; k <= n; k++) {
    const len = greedy ? n - k : k;
    if (matches[len]) return (side === 'prefix' ? chars.slice(len) : chars.slice(0, n - len)).join('');
  }
  return value;
}

/**
 * `${VAR/pat/repl}` (first, leftmost-longest match) and `${VAR//pat/repl}` (every match). Undefined when
 * the result would be longer than `limit` characters.
 */
function replacePattern(value: string, pattern: string, replacement: string, replaceAll: boolean, escape: string, limit: number): string | undefined {
  const tokens = parseGlob(pattern, escape);
  if (tokens.length === 0) return value;
  const chars = Array.from(value);
  const ends = longestMatchEnds(tokens, chars);
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const end = ends[i] ?? -1;
    if (end > i) {
      out += replacement;
      i = end;
      if (!replaceAll) {
        out += chars.slice(i).join('');
        break;
      }
    } else {
      out += chars[i] as string;
      i++;
    }
    if (out.length > limit) return undefined;
  }
  return out.length > limit ? undefined : out;
}
