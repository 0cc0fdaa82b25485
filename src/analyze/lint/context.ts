/**
 * The state the rules see at each instruction — the stage's shell, the ARG/ENV names in scope, whether a
 * WORKDIR is set, who the user is — worked out stage by stage as the build would (a stage based on another
 * starts from that one's state; one based on an image starts from the image's config when the store has
 * it). And the scripts of RUN instructions, heredocs included, with the Dockerfile line of each script line.
 */
import { platformArgs } from '../../builder/plan.js';
import type { Platform } from '../../oci/platform.js';
import type { Instruction } from '../../dockerfile/instructions.js';
import { chompHeredoc } from '../../dockerfile/parser.js';
import type { ContainerConfig } from '../../oci/types.js';
import { type LintDockerfile, type LintInstruction, type LintStage, type ResolvedBase, globalArgValues, resolveBase } from './model.js';
import { type ParsedScript, parseScript } from './shell-words.js';

/** What the store knows of a base image (kiln's image-aware rules and the build's view). */
export interface ImageFacts {
  readonly config: ContainerConfig;
  readonly os?: string;
  readonly architecture?: string;
  /** Users in its /etc/passwd. */
  readonly users?: readonly { readonly name: string; readonly uid: number }[];
  /** Its size in bytes, as `kiln images` shows it. */
  readonly size?: number;
  /** `name:tag@sha256:…` when a registry digest of the image is known. */
  readonly pinned?: string;
  /** A slim or distroless variant of the same image in the store, much smaller. */
  readonly smaller?: { readonly ref: string; readonly size: number };
  /** Build toolchains and -dev packages its package database lists. */
  readonly toolchains?: readonly string[];
}

export interface LintOptions {
  readonly file: string;
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly platform: Platform;
  /** `--target`: the final stage (name or index); the last stage when absent. */
  readonly target?: string;
  /** Facts about base images by reference, as the FROM line names them after expansion. */
  readonly images: ReadonlyMap<string, ImageFacts>;
  readonly trustedRegistries: readonly string[];
  /** hadolint's label-schema: label → text|url|semver|hash|rfc3339|spdx|email. */
  readonly labelSchema: ReadonlyMap<string, string>;
  readonly strictLabels: boolean;
  /** Whether the context's .dockerignore excludes a path (CopyIgnoredFile); absent without a context. */
  readonly ignored?: (path: string) => boolean;
}

export interface State {
  readonly shell: readonly string[];
  /** The shell was set by a SHELL instruction (here or in a stage this one builds on). */
  readonly shellSet: boolean;
  /** ARG and ENV names in scope, with their values as written. */
  readonly names: Scope;
  /** Whether every name in scope is known (the base is scratch, a stage, or an image the store has). */
  readonly complete: boolean;
  /** A WORKDIR is in effect (the base image's included). */
  readonly workdir: boolean;
  /** An absolute WORKDIR was set by this Dockerfile (BuildKit's WorkdirRelativePath asks that). */
  readonly absoluteWorkdir: boolean;
  readonly user?: string;
}

/** A RUN's shell script and how its lines map to the Dockerfile's. */
export interface RunScript {
  readonly instruction: LintInstruction;
  /** The script as the shell would get it (heredoc bodies of a plain `RUN <<EOF` are the script). */
  readonly text: string;
  readonly parsed: ParsedScript;
  readonly shell: readonly string[];
  /** The Dockerfile line of each script line (1-based index into the script's lines). */
  readonly lineOf: (scriptLine: number) => number;
  /** How far into its Dockerfile line each script line starts (0-based); undefined where columns do not map. */
  readonly columnOffset: (scriptLine: number) => number | undefined;
  /** The ARG/ENV names in scope, for ShellCheck. */
  readonly names: Scope;
}

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

type Definition = 'base' | 'arg' | 'env';

/**
 * The ARG and ENV names in scope at one instruction, and their values as written. The states of one
 * stage share a list of definitions that only grows; each sees the definitions made before it, so a
 * stage of thousands of ENVs costs no copy per instruction.
 */
export class Scope implements Iterable<string> {
  private constructor(
    private readonly definitions: Map<string, { readonly at: number; readonly value: string | undefined; readonly kind: Definition }[]>,
    private readonly size: number,
  ) {}

  static of(names: Iterable<readonly [string, string | undefined]>): Scope {
    return new Scope(new Map(), 0).define(names, 'base');
  }

  /** This scope with more definitions; called on a stage's latest scope only. */
  define(names: Iterable<readonly [string, string | undefined]>, kind: Definition): Scope {
    let at = this.size;
    for (const [name, value] of names) {
      const list = this.definitions.get(name);
      if (list) list.push({ at, value, kind });
      else this.definitions.set(name, [{ at, value, kind }]);
      at++;
    }
    return new Scope(this.definitions, at);
  }

  has(name: string): boolean {
    return (this.definitions.get(name)?.[0]?.at ?? Infinity) < this.size;
  }

  /** The latest value given to the name in this scope. */
  get(name: string): string | undefined {
    const list = this.definitions.get(name) ?? [];
    for (let i = list.length - 1; i >= 0; i--) if ((list[i]?.at ?? Infinity) < this.size) return list[i]?.value;
    return undefined;
  }

  /** The names a stage built on this one inherits, with their values: ENV and the base's, not ARG. */
  inherited(): [string, string | undefined][] {
    const kept: [string, string | undefined][] = [];
    for (const [name, list] of this.definitions) {
      const last = list.filter((d) => d.at < this.size && d.kind !== 'arg').at(-1);
      if (last) kept.push([name, last.value]);
    }
    return kept;
  }

  /** The names in scope, in the order they were first defined. */
  *[Symbol.iterator](): Iterator<string> {
    // Names enter the map in the order of their first definitions, so those in scope come first: the
    // first one out of scope ends them (a stage's later names are not read at each instruction).
    for (const name of this.definitions.keys()) {
      if (!this.has(name)) return;
      yield name;
    }
  }
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface Analysis {
  readonly dockerfile: LintDockerfile;
  readonly options: LintOptions;
  readonly globals: ReadonlyMap<string, string>;
  readonly bases: readonly ResolvedBase[];
  /** The state before each instruction. */
  readonly before: ReadonlyMap<LintInstruction, State>;
  /** Each stage's state after its last instruction. */
  readonly after: readonly State[];
  readonly scripts: ReadonlyMap<LintInstruction, RunScript>;
  /** The stage the build ends in. */
  readonly target: number;
  /** Stages whose files end up in the final image: the target and the stages it is based on. */
  readonly inFinalImage: ReadonlySet<number>;
  /** The base image facts of a stage, through the stages it is based on; undefined for scratch or unknown. */
  readonly imageOf: (stage: number) => ImageFacts | undefined;
}

function keyOf(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/**
 * A shell-form RUN without heredocs. Its script is the lines as written, continuations kept (the shell
 * reads `\\` + newline as Docker does), minus the comment and empty lines Docker drops — so ShellCheck sees
 * what was written, and its lines and columns are the Dockerfile's. With the backtick escape, or flags
 * that run over lines, the script is the joined line, reported at the RUN as hadolint does.
 */
function plainScript(instruction: LintInstruction, line: string, state: State, lines: readonly string[], escape: '\\' | '`'): RunScript {
  const joined: RunScript = { instruction, text: line, parsed: parseScript(line), shell: state.shell, lineOf: () => instruction.line, names: state.names, columnOffset: () => undefined };
  const raw = lines.slice(instruction.line - 1, instruction.endLine);
  const first = raw[0] ?? '';
  if (raw.length === 1) {
    const at = first.lastIndexOf(line);
    return at < 0 ? joined : { ...joined, columnOffset: (n) => (n === 1 ? at : undefined) };
  }
  if (escape !== '\\') return joined;
  // Where the script starts on the RUN's own line: after the keyword and flags, as the parser cut them.
  const head = first.replace(/\\[ \t]*$/, '');
  const keyword = /^\s*\S+/.exec(head)?.[0].length ?? 0;
  let at = -1;
  for (let k = keyword; k < head.length; k++) {
    if (!/\s/.test(head[k] ?? '') && (k === 0 || /\s/.test(head[k - 1] ?? '')) && line.startsWith(head.slice(k))) {
      at = k;
      break;
    }
  }
  const kept: { text: string; line: number; offset: number }[] = [];
  if (at >= 0) kept.push({ text: first.slice(at), line: instruction.line, offset: at });
  else if (head.slice(keyword).replace(/(^|\s)--\S+/g, '').trim() !== '') return joined;
  raw.slice(1).forEach((text, i) => {
    if (text.trim() === '' || text.trimStart().startsWith('#')) return;
    kept.push({ text, line: instruction.line + 1 + i, offset: 0 });
  });
  const text = kept.map((k) => k.text).join('\n');
  return { instruction, text, parsed: parseScript(text), shell: state.shell, lineOf: (n) => kept[n - 1]?.line ?? instruction.line, names: state.names, columnOffset: (n) => kept[n - 1]?.offset };
}

/** The shell script of a RUN (undefined for exec form), heredocs resolved. */
function scriptOf(instruction: LintInstruction, typed: Extract<Instruction, { kind: 'run' }>, state: State, lines: readonly string[], escape: '\\' | '`'): RunScript | undefined {
  if (typed.command.form !== 'shell') return undefined;
  const line = typed.command.line;
  const docs = typed.heredocs;
  if (docs.length === 0) return plainScript(instruction, line, state, lines, escape);
  const body = (doc: (typeof docs)[number]): string => (doc.chomp ? chompHeredoc(doc.content) : doc.content);
  const bodyLines = docs.reduce((n, doc) => n + doc.content.split('\n').length, 0);
  const firstBodyLine = instruction.endLine - bodyLines + 1;
  const single = /^\d*<<-?\s*["']?([^"'\s]+)["']?\s*$/.exec(line.trim());
  const first = docs[0];
  if (single && docs.length === 1 && first) {
    // `RUN <<EOF`: the body is the script, run by the stage's shell or its own #! line.
    const text = body(first);
    const shebang = /^#!\s*(\S+)/.exec(text)?.[1];
    return { instruction, text, parsed: parseScript(text), shell: shebang ? [shebang] : state.shell, lineOf: (n) => firstBodyLine + n - 1, names: state.names, columnOffset: () => 0 };
  }
  const interpreter = /^\d*<<-?\s*["']?[^"'\s]+["']?\s+(\S+)\s*$/.exec(line.trim())?.[1];
  if (interpreter && docs.length === 1 && first && /(^|\/)(ba|da|a|z|k)?sh$/.test(interpreter)) {
    // `RUN <<EOF bash`: the body is a script for that shell.
    const text = body(first);
    return { instruction, text, parsed: parseScript(text), shell: [interpreter], lineOf: (n) => firstBodyLine + n - 1, names: state.names, columnOffset: () => 0 };
  }
  // `RUN cat <<EOF > file` and the like: the command line with its heredocs, as the shell sees it.
  const text = `${line}\n${docs.map((doc) => `${doc.content}${doc.name}\n`).join('')}`;
  return { instruction, text, parsed: parseScript(text), shell: state.shell, lineOf: (n) => (n === 1 ? instruction.line : firstBodyLine + n - 2), names: state.names, columnOffset: () => undefined };
}

/**
 * Works out the states and scripts of a Dockerfile. Without `withScripts` (BuildKit's checks alone, which
 * read no script) RUN scripts are not parsed, and `scripts` stays empty.
 */
export function analyze(dockerfile: LintDockerfile, options: LintOptions, withScripts = true): Analysis {
  const globals = globalArgValues(dockerfile, options.buildArgs, platformArgs(options.platform));
  const bases = dockerfile.stages.map((stage) => resolveBase(dockerfile, stage, globals));
  const before = new Map<LintInstruction, State>();
  const after: State[] = [];
  const scripts = new Map<LintInstruction, RunScript>();
  const imageOf = (index: number): ImageFacts | undefined => {
    const base = bases[index];
    if (!base || base.kind === 'scratch') return undefined;
    if (base.kind === 'stage') return base.index < index ? imageOf(base.index) : undefined;
    return options.images.get(base.ref);
  };

  dockerfile.stages.forEach((stage: LintStage, index) => {
    const base = bases[index];
    let state: State;
    if (base?.kind === 'stage' && after[base.index]) {
      // A stage on another starts with that one's ENV (its ARGs stay with it), in a scope of its own.
      const parent = after[base.index] as State;
      state = { ...parent, names: Scope.of(parent.names.inherited()) };
    } else {
      const facts = base?.kind === 'image' ? options.images.get(base.ref) : undefined;
      const config = facts?.config ?? {};
      const env = new Map((config.Env ?? []).map((e) => [keyOf(e), e.slice(keyOf(e).length + 1)] as const));
      // Docker gives every stage a PATH when its base has none.
      if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH);
      state = {
        shell: config.Shell ?? DEFAULT_SHELL,
        shellSet: false,
        names: Scope.of(env),
        complete: base?.kind === 'scratch' || facts !== undefined,
        workdir: (config.WorkingDir ?? '') !== '',
        absoluteWorkdir: false,
        ...(config.User ? { user: config.User } : {}),
      };
    }
    for (const instruction of stage.instructions) {
      before.set(instruction, state);
      const typed = instruction.typed;
      if (!typed) continue;
      switch (typed.kind) {
        case 'arg':
          state = { ...state, names: state.names.define(typed.args.map((a) => [a.name, a.defaultValue] as const), 'arg') };
          break;
        case 'env':
          state = { ...state, names: state.names.define(typed.pairs.map((p) => [p.key, p.value] as const), 'env') };
          break;
        case 'shell':
          state = { ...state, shell: typed.args, shellSet: true };
          break;
        case 'workdir':
          state = { ...state, workdir: true, absoluteWorkdir: state.absoluteWorkdir || typed.value.startsWith('/') };
          break;
        case 'user':
          state = { ...state, user: typed.value };
          break;
        case 'run': {
          if (!withScripts) break;
          const script = scriptOf(instruction, typed, state, dockerfile.lines, dockerfile.directives.escape);
          if (script) scripts.set(instruction, script);
          break;
        }
      }
    }
    after[index] = state;
  });

  const targetWord = options.target;
  let target = dockerfile.stages.length - 1;
  if (targetWord !== undefined) {
    const found = dockerfile.stages.findIndex((s) => s.name === targetWord.toLowerCase() || String(s.index) === targetWord);
    if (found >= 0) target = found;
  }
  const inFinalImage = new Set<number>();
  for (let index: number | undefined = target; index !== undefined && index >= 0 && !inFinalImage.has(index); ) {
    inFinalImage.add(index);
    const base: ResolvedBase | undefined = bases[index];
    index = base?.kind === 'stage' ? base.index : undefined;
  }
  return { dockerfile, options, globals, bases, before, after, scripts, target, inFinalImage, imageOf };
}

/** Proxy ARGs are predefined: using them needs no ARG. */
export function isPredefinedArg(name: string): boolean {
  return PROXY_ARGS.includes(name) || /^(TARGET|BUILD)(PLATFORM|OS|ARCH|VARIANT)$/.test(name);
}
