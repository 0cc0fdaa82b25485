/**
 * Typed Dockerfile instructions: the parser's nodes checked (known keyword, allowed flags, argument
 * count) and grouped into stages. Values stay unexpanded here: expansion needs the environment at that
 * point of the stage (the base image's ENV, ARGs, earlier ENVs), which only the build plan knows.
 */
import { KilnError } from '../errors.js';
import { DockerfileSyntaxError, type Heredoc, type Node, parseDockerfile } from './parser.js';

/** Where an instruction came from, for errors that show the line. */
export interface Location {
  readonly file: string;
  readonly startLine: number;
  readonly endLine: number;
  /** The instruction as written (continuations joined). */
  readonly original: string;
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

export interface ArgDeclaration {
  readonly name: string;
  /** The default, unexpanded; undefined for `ARG NAME`. */
  readonly defaultValue?: string;
}

/** A command in exec form (JSON array, taken as is) or shell form (run by the stage's SHELL). */
export type Command = { readonly form: 'exec'; readonly args: readonly string[] } | { readonly form: 'shell'; readonly line: string };

export interface RunMount {
  readonly type: 'bind' | 'cache' | 'secret' | 'ssh' | 'tmpfs';
  readonly target?: string;
  readonly source?: string;
  readonly from?: string;
  readonly id?: string;
  readonly sharing?: 'shared' | 'private' | 'locked';
  readonly readonly?: boolean;
  readonly required?: boolean;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly env?: string;
}

export type Instruction = Location &
  (
    | { readonly kind: 'arg'; readonly args: readonly ArgDeclaration[] }
    | { readonly kind: 'env' | 'label'; readonly pairs: readonly KeyValue[] }
    | { readonly kind: 'run'; readonly command: Command; readonly mounts: readonly RunMount[]; readonly network?: 'none' | 'host' | 'default'; readonly security?: 'insecure'; readonly heredocs: readonly Heredoc[] }
    | { readonly kind: 'cmd' | 'entrypoint'; readonly command: Command }
    | { readonly kind: 'shell'; readonly args: readonly string[] }
    | {
        readonly kind: 'copy' | 'add';
        readonly sources: readonly string[];
        readonly destination: string;
        readonly from?: string;
        readonly chown?: string;
        readonly chmod?: string;
        readonly link: boolean;
        readonly checksum?: string;
        readonly excludes: readonly string[];
        /** COPY --parents: each source keeps its path (below a `/./` in it, if any) under the destination. */
        readonly parents?: boolean;
        /** ADD --keep-git-dir: a git source keeps its `.git` directory. */
        readonly keepGitDir?: boolean;
        readonly heredocs: readonly Heredoc[];
      }
    | { readonly kind: 'workdir' | 'user' | 'stopsignal' | 'maintainer'; readonly value: string }
    | { readonly kind: 'expose' | 'volume'; readonly values: readonly string[] }
    | {
        readonly kind: 'healthcheck';
        readonly none: boolean;
        readonly command?: Command;
        readonly interval?: number;
        readonly timeout?: number;
        readonly startPeriod?: number;
        readonly startInterval?: number;
        readonly retries?: number;
      }
    | { readonly kind: 'onbuild'; readonly trigger: string }
  );

export interface Stage {
  /** The stage's position, counted from 0 (for `COPY --from=0`). */
  readonly index: number;
  /** `AS name`, lowercased as Docker compares it. */
  readonly name?: string;
  /** The base as written (may hold ARG variables). */
  readonly base: string;
  readonly platform?: string;
  readonly location: Location;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  readonly file: string;
  readonly escape: '\\' | '`';
  /** ARGs before the first FROM: usable in FROM lines, and in stages that declare them again. */
  readonly globalArgs: readonly ArgDeclaration[];
  readonly stages: readonly Stage[];
  readonly warnings: readonly string[];
}

const KEYWORDS = ['add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label', 'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir'];

const ALLOWED_FLAGS: Record<string, readonly string[]> = {
  from: ['platform'],
  run: ['mount', 'network', 'security'],
  copy: ['from', 'chown', 'chmod', 'link', 'exclude', 'parents'],
  add: ['chown', 'chmod', 'link', 'checksum', 'exclude', 'keep-git-dir'],
  healthcheck: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

const SHOWN_WIDTH = 160;
const SHOWN_INSTRUCTION = 4000;
const SHOWN_MESSAGE = 600;

/** Control characters made visible, one character for one, so that a Dockerfile cannot drive the terminal. */
function visible(text: string): string {
  return text.replace(/\p{Cc}/gu, (ch) => {
    const code = ch.charCodeAt(0);
    if (ch === '\t') return ch;
    return code < 0x20 ? String.fromCharCode(0x2400 + code) : code === 0x7f ? '\u2421' : '\ufffd';
  });
}

/**
 * A source line as kiln shows it under an error: control characters made visible (a caret under it still
 * lines up) and a long one cut to a window of `width` characters around `at`.
 */
export function shownLine(line: string, at = 0, width = SHOWN_WIDTH): { text: string; at: number } {
  const text = visible(line);
  if (text.length <= width) return { text, at };
  const start = Math.max(0, Math.min(at - Math.floor(width / 4), text.length - width));
  const end = start + width;
  return { text: `${start > 0 ? '…' : ''}${text.slice(start, end)}${end < text.length ? `… (${text.length} characters)` : ''}`, at: at - start + (start > 0 ? 1 : 0) };
}

/**
 * An instruction as progress and step messages show it: whole, up to a length no real one reaches (an
 * apt-get line is a few hundred characters), with control characters visible.
 */
export function shownInstruction(original: string): string {
  return shownLine(original, 0, SHOWN_INSTRUCTION).text;
}

/** An error message that quotes the Dockerfile: made visible, and its middle cut when it is long. */
export function shownMessage(message: string): string {
  const text = visible(message);
  return text.length <= SHOWN_MESSAGE ? text : `${text.slice(0, SHOWN_MESSAGE / 2)}…${text.slice(-SHOWN_MESSAGE / 4)}`;
}

/**
 * An error about one instruction: `file:line:column`, the instruction with a caret under the part the
 * message names (a `--flag` or a quoted word found in it; else its start), and what to do.
 */
export function instructionError(location: Location, message: string, hint?: string): KilnError {
  const named = [...message.matchAll(/"([^"]+)"|(--[a-z][a-z-]*)/g)].map((m) => m[1] ?? m[2] ?? '');
  // Short needles only: a search for a long one can take time quadratic in the line.
  const at = named.map((needle) => (needle.length <= SHOWN_WIDTH ? location.original.indexOf(needle) : -1)).find((index) => index >= 0) ?? 0;
  const shown = shownLine(location.original, at);
  const gutter = `  ${location.startLine} | `;
  const caret = `${' '.repeat(gutter.length - 2)}| ${' '.repeat(shown.at)}^`;
  return new KilnError('INVALID_INPUT', `${location.file}:${location.startLine}:${at + 1}: ${shownMessage(message)}\n${gutter}${shown.text}\n${caret}${hint ? `\n${hint}` : ''}`);
}

/** Edit distance, for suggesting a close name (a keyword here, a variable in lint). */
export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The closest known instruction to a misspelt one, when it is close enough to be a likely typo. */
function closestKeyword(word: string): string | undefined {
  let best: { keyword: string; distance: number } | undefined;
  for (const keyword of KEYWORDS) {
    const distance = levenshtein(word.toLowerCase(), keyword);
    if (!best || distance < best.distance) best = { keyword, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(best.keyword.length / 3)) ? best.keyword.toUpperCase() : undefined;
}

/** `--name=value` flags of an instruction, checked against what the instruction takes. */
function readFlags(node: Node, location: Location): Map<string, string[]> {
  const flags = new Map<string, string[]>();
  const allowed = ALLOWED_FLAGS[node.keyword] ?? [];
  for (const flag of node.flags) {
    const match = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(flag);
    const name = match?.[1];
    if (!match || name === undefined || !allowed.includes(name)) {
      const known = allowed.length > 0 ? ` (${node.keyword.toUpperCase()} takes ${allowed.map((f) => '--' + f).join(', ')})` : ` (${node.keyword.toUpperCase()} takes no flags)`;
      throw instructionError(location, `unknown flag: ${flag.split('=')[0] ?? flag}${known}`);
    }
    flags.set(name, [...(flags.get(name) ?? []), match[2] ?? 'true']);
  }
  return flags;
}

function single(flags: Map<string, string[]>, name: string, location: Location): string | undefined {
  const values = flags.get(name);
  if (values && values.length > 1) throw instructionError(location, `--${name} given more than once`);
  return values?.[0];
}

/** Go's time.ParseDuration subset Docker accepts for health checks (`30s`, `1m30s`, `500ms`), in nanoseconds; undefined for other text. */
export function goDuration(text: string): number | undefined {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (text === '0') return 0;
  let total = 0;
  let rest = text;
  while (rest !== '') {
    const match = /^(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * (units[match[2] ?? 's'] ?? 1);
    rest = rest.slice(match[0].length);
  }
  return Math.round(total);
}

/** A HEALTHCHECK flag's duration, in nanoseconds. */
function parseDuration(text: string, flag: string, location: Location): number {
  const nanoseconds = goDuration(text);
  if (nanoseconds === undefined) throw instructionError(location, `invalid duration for --${flag}: ${JSON.stringify(text)} (use a Go duration such as 30s or 1m30s)`);
  return nanoseconds;
}

/** `type=cache,target=/x,id=y` → a RunMount, checked. */
export function parseRunMount(spec: string, location: Location): RunMount {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    fields.set(key, eq < 0 ? 'true' : part.slice(eq + 1));
  }
  const type = fields.get('type') ?? 'bind';
  if (type !== 'bind' && type !== 'cache' && type !== 'secret' && type !== 'ssh' && type !== 'tmpfs') {
    throw instructionError(location, `unsupported mount type ${JSON.stringify(type)} in --mount=${spec} (kiln supports bind, cache, secret, ssh, tmpfs)`);
  }
  const known = ['type', 'target', 'dst', 'destination', 'source', 'src', 'from', 'id', 'sharing', 'readonly', 'ro', 'rw', 'readwrite', 'required', 'mode', 'uid', 'gid', 'env', 'size'];
  for (const key of fields.keys()) if (!known.includes(key)) throw instructionError(location, `unknown option ${JSON.stringify(key)} in --mount=${spec}`);
  const target = fields.get('target') ?? fields.get('dst') ?? fields.get('destination');
  const sharing = fields.get('sharing');
  if (sharing !== undefined && sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') throw instructionError(location, `invalid sharing ${JSON.stringify(sharing)} in --mount (use shared, private or locked)`);
  // A mode has 12 bits (permissions, setuid, setgid, sticky); an ID fits a uid_t, whose all-ones means "no change".
  const numeric = (key: string, radix: number, max: number): number | undefined => {
    const raw = fields.get(key);
    if (raw === undefined) return undefined;
    const value = Number.parseInt(raw, radix);
    if (!Number.isInteger(value) || value < 0) throw instructionError(location, `invalid ${key} ${JSON.stringify(raw)} in --mount`);
    if (value > max) throw instructionError(location, `invalid ${key} ${JSON.stringify(raw)} in --mount: it is at most ${max.toString(radix)}`);
    return value;
  };
  const bool = (key: string): boolean | undefined => {
    const raw = fields.get(key);
    return raw === undefined ? undefined : raw === 'true' || raw === '1';
  };
  if (type !== 'secret' && type !== 'ssh' && target === undefined) throw instructionError(location, `--mount=${spec} needs a target (target=/path)`);
  const source = fields.get('source') ?? fields.get('src');
  if (type === 'ssh' && source !== undefined) throw instructionError(location, `ssh does not support source in --mount=${spec} (an ssh mount is an agent's socket, given to the build with --ssh)`);
  const from = fields.get('from');
  const id = fields.get('id');
  const readonly = bool('readonly') ?? bool('ro') ?? (fields.has('rw') || fields.has('readwrite') ? false : undefined);
  const required = bool('required');
  const mode = numeric('mode', 8, 0o7777);
  const uid = numeric('uid', 10, 0xfffffffe);
  const gid = numeric('gid', 10, 0xfffffffe);
  const env = fields.get('env');
  return {
    type,
    ...(target !== undefined ? { target } : {}),
    ...(source !== undefined ? { source } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(id !== undefined ? { id } : {}),
    ...(sharing !== undefined ? { sharing } : {}),
    ...(readonly !== undefined ? { readonly } : {}),
    ...(required !== undefined ? { required } : {}),
    ...(mode !== undefined ? { mode } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ...(env !== undefined ? { env } : {}),
  };
}

function command(node: Node): Command {
  return node.json ? { form: 'exec', args: node.args } : { form: 'shell', line: node.args[0] ?? '' };
}

function pairs(node: Node): KeyValue[] {
  const result: KeyValue[] = [];
  for (let i = 0; i + 1 < node.args.length; i += 3) result.push({ key: node.args[i] ?? '', value: node.args[i + 1] ?? '' });
  return result;
}

/** Turns one parsed node into a typed instruction (FROM is handled by the caller; lint types nodes one by one). */
export function instruction(node: Node, location: Location): Instruction {
  const flags = readFlags(node, location);
  const need = (count: number, usage: string): void => {
    if (node.args.length < count) throw instructionError(location, `${node.keyword.toUpperCase()} requires ${usage}`);
  };
  switch (node.keyword) {
    case 'arg':
      need(1, 'at least one argument');
      return {
        ...location,
        kind: 'arg',
        args: node.args.map((word) => {
          const eq = word.indexOf('=');
          const name = eq < 0 ? word : word.slice(0, eq);
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw instructionError(location, `invalid ARG name ${JSON.stringify(name)}`);
          return eq < 0 ? { name } : { name, defaultValue: word.slice(eq + 1) };
        }),
      };
    case 'env':
    case 'label':
      need(1, 'at least one argument');
      for (const pair of pairs(node)) if (pair.key === '') throw instructionError(location, `${node.keyword.toUpperCase()} names can not be blank`);
      return { ...location, kind: node.keyword, pairs: pairs(node) };
    case 'run': {
      need(1, 'at least one argument');
      const network = single(flags, 'network', location);
      if (network !== undefined && network !== 'none' && network !== 'host' && network !== 'default') {
        throw instructionError(location, `invalid --network=${network} (use none, host or default)`);
      }
      const security = single(flags, 'security', location);
      if (security !== undefined && security !== 'sandbox' && security !== 'insecure') throw instructionError(location, `invalid --security=${security} (use sandbox or insecure)`);
      return {
        ...location,
        kind: 'run',
        command: command(node),
        mounts: (flags.get('mount') ?? []).map((spec) => parseRunMount(spec, location)),
        ...(network !== undefined ? { network } : {}),
        ...(security === 'insecure' ? { security } : {}),
        heredocs: node.heredocs,
      };
    }
    case 'cmd':
    case 'entrypoint':
      return { ...location, kind: node.keyword, command: command(node) };
    case 'shell':
      if (!node.json) throw instructionError(location, 'SHELL requires the arguments to be in JSON form', 'use SHELL ["executable", "parameters"]');
      need(1, 'at least one argument');
      return { ...location, kind: 'shell', args: node.args };
    case 'copy':
    case 'add': {
      if (node.args.length + node.heredocs.length < 2 && node.args.length < 2) throw instructionError(location, `${node.keyword.toUpperCase()} requires at least two arguments, but only one was provided. Destination could not be determined`);
      const link = single(flags, 'link', location);
      const from = node.keyword === 'copy' ? single(flags, 'from', location) : undefined;
      const chown = single(flags, 'chown', location);
      const chmod = single(flags, 'chmod', location);
      const checksum = single(flags, 'checksum', location);
      const parents = single(flags, 'parents', location);
      const keepGitDir = single(flags, 'keep-git-dir', location);
      for (const [name, value] of [['parents', parents], ['keep-git-dir', keepGitDir]] as const) {
        if (value !== undefined && value !== 'true' && value !== 'false') throw instructionError(location, `invalid --${name}=${value} (true or false)`);
      }
      if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw instructionError(location, `invalid --chmod=${chmod}: kiln takes an octal mode such as 0755`);
      return {
        ...location,
        kind: node.keyword,
        sources: node.args.slice(0, -1),
        destination: node.args.at(-1) ?? '',
        ...(from !== undefined ? { from } : {}),
        ...(chown !== undefined ? { chown } : {}),
        ...(chmod !== undefined ? { chmod } : {}),
        ...(checksum !== undefined ? { checksum } : {}),
        link: link === 'true',
        excludes: flags.get('exclude') ?? [],
        ...(parents === 'true' ? { parents: true } : {}),
        ...(keepGitDir === 'true' ? { keepGitDir: true } : {}),
        heredocs: node.heredocs,
      };
    }
    case 'workdir':
    case 'user':
    case 'stopsignal':
    case 'maintainer':
      need(1, 'exactly one argument');
      return { ...location, kind: node.keyword, value: node.args[0] ?? '' };
    case 'expose':
    case 'volume':
      need(1, 'at least one argument');
      return { ...location, kind: node.keyword, values: node.args };
    case 'healthcheck': {
      const type = (node.args[0] ?? '').toUpperCase();
      if (type === 'NONE') {
        if (node.args.length > 1) throw instructionError(location, 'HEALTHCHECK NONE takes no other arguments');
        return { ...location, kind: 'healthcheck', none: true };
      }
      if (type !== 'CMD') throw instructionError(location, `Unknown type ${JSON.stringify(node.args[0] ?? '')} in HEALTHCHECK (try CMD)`);
      if (node.args.length < 2) throw instructionError(location, 'Missing command after HEALTHCHECK CMD');
      const duration = (flag: string): number | undefined => {
        const value = single(flags, flag, location);
        return value === undefined ? undefined : parseDuration(value, flag, location);
      };
      const retries = single(flags, 'retries', location);
      if (retries !== undefined && !/^\d+$/.test(retries)) throw instructionError(location, `invalid --retries=${retries}`);
      const inner: Command = node.json ? { form: 'exec', args: node.args.slice(1) } : { form: 'shell', line: node.args[1] ?? '' };
      const interval = duration('interval');
      const timeout = duration('timeout');
      const startPeriod = duration('start-period');
      const startInterval = duration('start-interval');
      return {
        ...location,
        kind: 'healthcheck',
        none: false,
        command: inner,
        ...(interval !== undefined ? { interval } : {}),
        ...(timeout !== undefined ? { timeout } : {}),
        ...(startPeriod !== undefined ? { startPeriod } : {}),
        ...(startInterval !== undefined ? { startInterval } : {}),
        ...(retries !== undefined ? { retries: Number(retries) } : {}),
      };
    }
    case 'onbuild': {
      const inner = node.inner;
      if (!inner) throw instructionError(location, 'ONBUILD requires at least one argument');
      const keyword = inner.keyword.toUpperCase();
      if (keyword === 'ONBUILD') throw instructionError(location, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (keyword === 'FROM' || keyword === 'MAINTAINER') throw instructionError(location, `${keyword} isn't allowed as an ONBUILD trigger`);
      return { ...location, kind: 'onbuild', trigger: inner.original };
    }
    default: {
      const suggestion = closestKeyword(node.keyword);
      throw instructionError(location, `unknown instruction: ${node.keyword.toUpperCase()}`, suggestion ? `did you mean ${suggestion}?` : undefined);
    }
  }
}

/** Parses a Dockerfile into stages of typed instructions. `file` names it in errors. */
export function parseInstructions(source: string, file = 'Dockerfile'): Dockerfile {
  let parsed;
  try {
    parsed = parseDockerfile(source);
  } catch (err) {
    if (err instanceof DockerfileSyntaxError) {
      const line = shownLine(source.split('\n')[err.startLine - 1] ?? '').text;
      throw new KilnError('INVALID_INPUT', `${file}:${err.startLine}: ${shownMessage(err.message)}${line ? `\n  ${err.startLine} | ${line}` : ''}`);
    }
    throw err;
  }
  const globalArgs: ArgDeclaration[] = [];
  const stages: { index: number; name?: string; base: string; platform?: string; location: Location; instructions: Instruction[] }[] = [];
  for (const node of parsed.nodes) {
    const location: Location = { file, startLine: node.startLine, endLine: node.endLine, original: node.original };
    if (node.keyword === 'from') {
      const flags = readFlags(node, location);
      const [base, as, name, ...extra] = node.args;
      if (base === undefined || (as !== undefined && (as.toLowerCase() !== 'as' || name === undefined)) || extra.length > 0) {
        throw instructionError(location, 'FROM requires either one argument, or three: FROM <source> [AS <name>]');
      }
      const stageName = name?.toLowerCase();
      if (stageName !== undefined) {
        if (!/^[a-z][a-z0-9-_.]*$/.test(stageName)) throw instructionError(location, `invalid name for build stage: ${JSON.stringify(name)}, name can't start with a number or contain symbols`);
        if (stages.some((s) => s.name === stageName)) throw instructionError(location, `duplicate stage name ${JSON.stringify(name)}`);
      }
      const platform = single(flags, 'platform', location);
      stages.push({ index: stages.length, ...(stageName ? { name: stageName } : {}), base, ...(platform ? { platform } : {}), location, instructions: [] });
      continue;
    }
    const typed = instruction(node, location);
    const stage = stages.at(-1);
    if (stage) stage.instructions.push(typed);
    else if (typed.kind === 'arg') globalArgs.push(...typed.args);
    else throw instructionError(location, `${node.keyword.toUpperCase()} before the first FROM: only ARG may come before FROM`, 'start the Dockerfile with FROM <image> (or ARG for values used in FROM)');
  }
  if (stages.length === 0) throw new KilnError('INVALID_INPUT', `${file}: no build stage in the Dockerfile (it needs a FROM instruction)`);
  return { file, escape: parsed.directives.escape, globalArgs, stages, warnings: parsed.warnings.map((w) => `${file}:${w.line}: ${shownMessage(w.message)}`) };
}

/** Parses one ONBUILD trigger (stored in an image's config) into an instruction. */
export function parseTrigger(trigger: string, file: string): Instruction {
  const dockerfile = parseInstructions(`FROM scratch\n${trigger}\n`, file);
  const typed = dockerfile.stages[0]?.instructions[0];
  if (!typed) throw new KilnError('INVALID_INPUT', `${file}: empty ONBUILD trigger`);
  return { ...typed, startLine: 0, endLine: 0 };
}
