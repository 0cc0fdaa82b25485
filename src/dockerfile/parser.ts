/**
 * The Dockerfile parser: text → a flat list of instruction nodes, BuildKit's parser layer.
 *
 * It handles parser directives, comments, line continuations, heredoc bodies and the per-instruction
 * argument shapes (JSON vs shell form, ENV/LABEL pairs, ...). It does not expand variables, strip
 * quotes from values or check flags: `instructions.ts` does that on the nodes made here.
 */
import { KilnError } from '../errors.js';

export interface Heredoc {
  /** The delimiter word with quotes removed (`EOF` for `<<'EOF'`). */
  readonly name: string;
  /** The body, every line ending in '\n', without the terminator line. */
  readonly content: string;
  /** False when the delimiter was quoted: the body is taken literally. */
  readonly expand: boolean;
  /** `<<-EOF`: leading tabs are removed from the body and the terminator. */
  readonly chomp: boolean;
  /** The file descriptor for `3<<EOF` (0 when none was given). */
  readonly fileDescriptor: number;
}

export interface Node {
  /** The keyword, lowercased (`run`, `copy`, ...). */
  readonly keyword: string;
  /** `--name=value` words taken off the front, quotes removed. */
  readonly flags: readonly string[];
  /** The arguments in the shape the keyword defines (see parseArguments). */
  readonly args: readonly string[];
  /** RUN/CMD/ENTRYPOINT/SHELL/ADD/COPY/VOLUME/HEALTHCHECK written as a JSON array. */
  readonly json: boolean;
  /** For ONBUILD: the inner instruction. */
  readonly inner?: Node;
  readonly heredocs: readonly Heredoc[];
  /** The instruction as written, continuation lines joined. */
  readonly original: string;
  /** 1-based first and last source line (heredoc bodies included). */
  readonly startLine: number;
  readonly endLine: number;
}

export interface Directives {
  readonly escape: '\\' | '`';
  readonly syntax?: string;
  readonly check?: string;
}

export interface ParsedDockerfile {
  readonly directives: Directives;
  readonly nodes: readonly Node[];
  /** Non-fatal findings (empty continuation lines, ...), each with its line. */
  readonly warnings: readonly { line: number; message: string }[];
}

/** A parse error carries the 1-based line range it concerns. */
export class DockerfileSyntaxError extends KilnError {
  readonly startLine: number;
  readonly endLine: number;

  constructor(message: string, startLine: number, endLine = startLine) {
    super('INVALID_INPUT', message);
    this.startLine = startLine;
    this.endLine = endLine;
  }
}

// The value's trailing blanks are trimmed in code: `(.+?)\s*$` takes quadratic time on a long line of blanks.
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*)$/;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const WHITESPACE = /[\t\v\f\r ]+/;
const HEREDOC_WORD = /^(\d*)<<(-?)([^<]*)$/;
const HEREDOC_KEYWORDS = new Set(['run', 'copy', 'add']);

type ArgumentParser = (rest: string, escape: string) => { args: string[]; json: boolean; inner?: Node };

/** Splits text into lines, each keeping its '\n' (heredoc bodies need them). */
function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end < 0) {
      lines.push(text.slice(start));
      break;
    }
    lines.push(text.slice(start, end + 1));
    start = end + 1;
  }
  return lines;
}

function trimNewline(line: string): string {
  if (line.endsWith('\r\n')) return line.slice(0, -2);
  if (line.endsWith('\n')) return line.slice(0, -1);
  return line;
}

const trimLeft = (s: string): string => s.replace(/^\s+/u, '');
const isComment = (line: string): boolean => trimLeft(trimNewline(line)).startsWith('#');

/** A line that ends with the escape character (blanks after it aside); an escaped escape character (`\\` at the end) is text. */
const CONTINUATION = { '\\': /(^|[^\\])\\[ \t]*$/, '`': /(^|[^`])`[ \t]*$/ } as const;

class DirectiveReader {
  escape: '\\' | '`' = '\\';
  readonly values = new Map<string, string>();
  private done = false;

  /** Reads one line of the leading directive block; the first line that is not one ends the block. */
  read(line: string, lineNumber: number): void {
    if (this.done) return;
    const match = DIRECTIVE.exec(line);
    const name = match?.[1]?.toLowerCase();
    const value = match?.[2]?.trimEnd() ?? '';
    if (!match || name === undefined || value === '' || !KNOWN_DIRECTIVES.has(name)) {
      this.done = true;
      return;
    }
    if (this.values.has(name)) {
      throw new DockerfileSyntaxError(`only one ${name} parser directive can be used`, lineNumber);
    }
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw new DockerfileSyntaxError(`invalid escape token '${value}' does not match \` or \\`, lineNumber);
      }
      this.escape = value;
    }
    this.values.set(name, value);
  }

  continuation(line: string): { text: string; continues: boolean } {
    const pattern = CONTINUATION[this.escape];
    return pattern.test(line) ? { text: line.replace(pattern, '$1'), continues: true } : { text: line, continues: false };
  }
}

/** Parses Dockerfile text. Throws DockerfileSyntaxError with the line for what BuildKit rejects. */
export function parseDockerfile(source: string): ParsedDockerfile {
  const lines = splitLines(source.startsWith('\uFEFF') ? source.slice(1) : source);
  const directives = new DirectiveReader();
  const nodes: Node[] = [];
  const warnings: { line: number; message: string }[] = [];
  let index = 0;
  const next = (): string | undefined => lines[index++];

  for (let raw = next(); raw !== undefined; raw = next()) {
    const lineNumber = index;
    let line = trimLeft(trimNewline(raw));
    directives.read(line, lineNumber);
    if (line.startsWith('#')) line = '';
    const startLine = lineNumber;
    let { text, continues } = directives.continuation(line);
    if (!continues && text === '') continue;

    let emptyContinuation = false;
    while (continues) {
      const more = next();
      if (more === undefined) break;
      directives.read(trimNewline(more), index);
      if (isComment(more)) continue;
      const body = trimNewline(more);
      if (trimLeft(body) === '') {
        emptyContinuation = true;
        continue;
      }
      const piece = directives.continuation(body);
      text += piece.text;
      continues = piece.continues;
    }
    if (emptyContinuation) warnings.push({ line: startLine, message: 'Empty continuation line found in: ' + text });

    const partial = nodeFromLine(text, directives.escape, startLine);
    const heredocs: Heredoc[] = [];
    if (HEREDOC_KEYWORDS.has(partial.keyword) && !partial.json && text.includes('<<')) {
      for (const heredoc of heredocsIn(text)) {
        let content = '';
        let terminated = false;
        for (let body = next(); body !== undefined; body = next()) {
          let candidate = trimNewline(body);
          if (heredoc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === heredoc.name) {
            terminated = true;
            break;
          }
          content += body;
        }
        if (!terminated) throw new DockerfileSyntaxError(`unterminated heredoc ${heredoc.name}`, startLine, index);
        heredocs.push({ ...heredoc, content });
      }
    }
    nodes.push({ ...partial, heredocs, startLine, endLine: index });
  }
  if (nodes.length === 0) throw new DockerfileSyntaxError('file with no instructions', Math.max(1, index));
  const values = directives.values;
  return {
    directives: {
      escape: directives.escape,
      ...(values.has('syntax') ? { syntax: values.get('syntax') } : {}),
      ...(values.has('check') ? { check: values.get('check') } : {}),
    },
    nodes,
    warnings,
  };
}

type PartialNode = Omit<Node, 'heredocs' | 'startLine' | 'endLine'>;

function nodeFromLine(line: string, escape: string, lineNumber: number): PartialNode {
  const trimmed = line.trim();
  const split = WHITESPACE.exec(trimmed);
  const keyword = (split ? trimmed.slice(0, split.index) : trimmed).toLowerCase();
  let rest = '';
  let flags: string[] = [];
  if (split) {
    const extracted = extractFlags(trimmed.slice(split.index + split[0].length), escape);
    rest = extracted.rest.trim();
    flags = extracted.flags;
  }
  const parse: ArgumentParser = ARGUMENT_PARSERS[keyword] ?? (() => ({ args: [''], json: false }));
  try {
    const parsed = parse(rest, escape);
    return {
      keyword,
      flags,
      args: parsed.args,
      json: parsed.json,
      ...(parsed.inner ? { inner: parsed.inner } : {}),
      original: trimmed,
    };
  } catch (err) {
    if (err instanceof DockerfileSyntaxError) throw err;
    if (err instanceof KilnError) throw new DockerfileSyntaxError(err.message, lineNumber);
    throw err;
  }
}

/** Takes the leading `--flag` words off an instruction's arguments (BuildKit's extractBuilderFlags). */
function extractFlags(line: string, escape: string): { rest: string; flags: string[] } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && /\s/u.test(line[pos] ?? '')) pos++;
    if (pos >= line.length) return { rest: '', flags };
    if (!line.startsWith('--', pos)) return { rest: line.slice(pos), flags };
    let word = '';
    let quote = '';
    let quoted = false;
    for (; pos < line.length; pos++) {
      let ch = line[pos] ?? '';
      if (quote === '' && /\s/u.test(ch)) break;
      if (quote !== '' && ch === quote) {
        quote = '';
        continue;
      }
      if (quote === '' && (ch === "'" || ch === '"')) {
        quote = ch;
        quoted = true;
        continue;
      }
      if (ch === escape) {
        if (pos + 1 === line.length) continue;
        ch = line[++pos] ?? '';
      }
      word += ch;
    }
    if (word === '--' && !quoted) return { rest: line.slice(pos), flags };
    if (quoted || word !== '') flags.push(word);
  }
}

/** Unicode white space (Go's unicode.IsSpace), quick for ASCII. */
function isWhitespace(code: number, ch: string): boolean {
  if (code < 0x80) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  return /\s/u.test(ch);
}

/**
 * Whitespace-separated words keeping quotes and escapes verbatim (BuildKit's parseWords). A word is a
 * slice of the text, so a long one costs no more than copying it (an escape at the very end is dropped).
 */
function wordsKeepingQuotes(rest: string, escape: string): string[] {
  const words: string[] = [];
  let start = -1;
  let quote = '';
  let blankOk = false;
  const end = (at: number): void => {
    if (blankOk || at > start) words.push(rest.slice(start, at));
    start = -1;
    blankOk = false;
  };
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i] as string;
    if (start < 0) {
      if (isWhitespace(rest.charCodeAt(i), ch)) continue;
      start = i;
    }
    if (quote === '') {
      if (isWhitespace(rest.charCodeAt(i), ch)) {
        end(i);
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
      } else if (ch === escape) {
        if (i + 1 === rest.length) {
          end(i);
          return words;
        }
        i++;
      }
      continue;
    }
    if (ch === quote) quote = '';
    else if (ch === escape && quote !== "'") {
      if (i + 1 === rest.length) {
        end(i);
        return words;
      }
      i++;
    }
  }
  if (start >= 0) end(rest.length);
  return words;
}

/** A JSON array of strings, undefined when the text is not valid JSON array syntax. */
function jsonArray(rest: string): string[] | undefined {
  const text = trimLeft(rest);
  if (!text.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  return parsed.map((item) => {
    if (typeof item !== 'string') throw new KilnError('INVALID_INPUT', 'a JSON array in a Dockerfile may hold only strings');
    return item;
  });
}

const splitWhitespace = (rest: string): string[] => (rest === '' ? [] : rest.split(WHITESPACE));

const maybeJson: ArgumentParser = (rest) => {
  if (rest === '') return { args: [], json: false };
  const json = jsonArray(rest);
  return json ? { args: json, json: true } : { args: [rest], json: false };
};

const maybeJsonList: ArgumentParser = (rest) => {
  const json = jsonArray(rest);
  return json ? { args: json, json: true } : { args: splitWhitespace(rest), json: false };
};

function nameValuePairs(keyword: string): ArgumentParser {
  return (rest, escape) => {
    const words = wordsKeepingQuotes(rest, escape);
    const first = words[0];
    if (first === undefined) return { args: [], json: false };
    if (!first.includes('=')) {
      const parts = rest.split(WHITESPACE);
      const name = parts[0] ?? '';
      const value = rest.slice(name.length).replace(WHITESPACE, '');
      if (parts.length < 2 || value === '') throw new KilnError('INVALID_INPUT', `${keyword} must have two arguments`);
      return { args: [name, value, ''], json: false };
    }
    const args: string[] = [];
    for (const word of words) {
      const eq = word.indexOf('=');
      if (eq < 0) {
        throw new KilnError('INVALID_INPUT', `Syntax error - can't find = in "${word}". Must be of the form: name=value`);
      }
      args.push(word.slice(0, eq), word.slice(eq + 1), '=');
    }
    return { args, json: false };
  };
}

const ARGUMENT_PARSERS: Record<string, ArgumentParser> = {
  add: maybeJsonList,
  copy: maybeJsonList,
  volume: maybeJsonList,
  run: maybeJson,
  cmd: maybeJson,
  entrypoint: maybeJson,
  shell: maybeJson,
  env: nameValuePairs('ENV'),
  label: nameValuePairs('LABEL'),
  arg: (rest, escape) => ({ args: wordsKeepingQuotes(rest, escape), json: false }),
  from: (rest) => ({ args: splitWhitespace(rest), json: false }),
  expose: (rest) => ({ args: splitWhitespace(rest), json: false }),
  maintainer: (rest) => ({ args: rest === '' ? [] : [rest], json: false }),
  user: (rest) => ({ args: rest === '' ? [] : [rest], json: false }),
  workdir: (rest) => ({ args: rest === '' ? [] : [rest], json: false }),
  stopsignal: (rest) => ({ args: rest === '' ? [] : [rest], json: false }),
  healthcheck: (rest, escape) => {
    const match = /^(\S+)\s*/u.exec(rest);
    if (!match) return { args: [], json: false };
    const command = maybeJson(rest.slice(match[0].length), escape);
    return { args: [match[1] ?? '', ...command.args], json: command.json };
  },
  onbuild: (rest, escape) => {
    if (rest === '') return { args: [], json: false };
    const inner = nodeFromLine(rest, escape, 0);
    return { args: [], json: false, inner: { ...inner, heredocs: [], startLine: 0, endLine: 0 } };
  },
};

/** The heredoc delimiters on an instruction line, in order (bodies filled in by the caller). */
function heredocsIn(line: string): Omit<Heredoc, 'content'>[] {
  const found: Omit<Heredoc, 'content'>[] = [];
  for (const word of wordsKeepingQuotes(line, '\\')) {
    const match = HEREDOC_WORD.exec(word);
    const rest = match?.[3];
    if (!match || !rest) continue;
    const name = rest.replace(/\\(.)|["']/g, (_all, escaped: string | undefined) => escaped ?? '');
    if (name === '' || /\s/u.test(name)) continue;
    found.push({
      name,
      expand: !/["']/.test(rest),
      chomp: match[2] === '-',
      fileDescriptor: match[1] ? Number(match[1]) : 0,
    });
  }
  return found;
}

/** A heredoc body with `<<-` semantics applied: leading tabs off every line. */
export function chompHeredoc(content: string): string {
  return content.replace(/^\t+/gm, '');
}

/** Go's %q quoting of one string (the conformance dump format). */
function goQuote(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    const simple: Record<string, string> = {
      '"': '\\"',
      '\\': '\\\\',
      '\x07': '\\a',
      '\b': '\\b',
      '\f': '\\f',
      '\n': '\\n',
      '\r': '\\r',
      '\t': '\\t',
      '\v': '\\v',
    };
    const mapped = simple[ch];
    if (mapped !== undefined) out += mapped;
    else if (code < 0x20 || code === 0x7f) out += '\\x' + code.toString(16).padStart(2, '0');
    else if (code >= 0xd800 && code <= 0xdfff) out += '\\ufffd';
    else if (/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u.test(ch) || (code > 0x7f && /\s/u.test(ch) && ch !== ' ')) {
      out += code > 0xffff ? '\\U' + code.toString(16).padStart(8, '0') : '\\u' + code.toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + '"';
}

/** BuildKit's Node.Dump form: `(keyword ["--flag"] "arg" ...)`, used by the conformance corpus. */
export function dumpNode(node: Omit<Node, 'heredocs' | 'startLine' | 'endLine'>): string {
  let text = node.keyword;
  if (node.flags.length > 0) text += ' [' + node.flags.map(goQuote).join(' ') + ']';
  for (const arg of node.args) text += ' ' + goQuote(arg);
  if (node.inner) text += ' ' + dumpNode(node.inner);
  return '(' + text + ')';
}
