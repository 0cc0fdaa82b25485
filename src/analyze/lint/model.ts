/**
 * What the lint rules read: kiln's own parse of a Dockerfile (parser.ts's nodes, typed one by one by
 * instructions.ts), kept lenient where the build is strict, so that a duplicate stage name or an
 * instruction before FROM is a finding on its line rather than the end of the lint. Plus the comment lines
 * (for pragmas) and, per stage, what its base resolves to.
 */
import type { ArgDeclaration, Instruction, Location } from '../../dockerfile/instructions.js';
import { instruction as typeInstruction } from '../../dockerfile/instructions.js';
import { DockerfileSyntaxError, type Directives, type Node, parseDockerfile } from '../../dockerfile/parser.js';
import { expandWord } from '../../dockerfile/shell.js';
import { KilnError } from '../../errors.js';

export interface LintInstruction {
  readonly node: Node;
  /** Lowercased keyword (`run`). */
  readonly keyword: string;
  /** The keyword as written (`Run`), for the casing checks. */
  readonly written: string;
  readonly line: number;
  readonly endLine: number;
  /** The stage it belongs to; -1 before the first FROM. */
  readonly stage: number;
  /** The typed instruction; undefined for FROM and for nodes that do not type-check (a DL1000 finding). */
  readonly typed?: Instruction;
}

export interface LintStage {
  readonly index: number;
  /** `AS name` lowercased, as Docker compares it. */
  readonly name?: string;
  /** The name as written. */
  readonly nameWritten?: string;
  /** The `AS` keyword as written. */
  readonly asWritten?: string;
  /** The base as written (may hold ARG variables). */
  readonly base: string;
  readonly platform?: string;
  readonly from: LintInstruction;
  readonly instructions: readonly LintInstruction[];
}

export interface LintDockerfile {
  readonly file: string;
  readonly lines: readonly string[];
  readonly directives: Directives;
  /** Every instruction, FROM included, in order. */
  readonly all: readonly LintInstruction[];
  readonly globalArgs: readonly (ArgDeclaration & { readonly line: number })[];
  readonly stages: readonly LintStage[];
  /** Comment lines by line number (1-based), text after the `#` trimmed; heredoc bodies excluded. */
  readonly comments: ReadonlyMap<number, string>;
  /** Lines of instructions with an empty continuation line. */
  readonly emptyContinuations: readonly number[];
  /** Nodes that did not parse or type-check: DL1000 findings. */
  readonly errors: readonly { readonly line: number; readonly message: string }[];
}

/** The message of a KilnError from instructions.ts without its `file:line:col:` prefix and source excerpt. */
function bareMessage(err: KilnError): string {
  return (err.message.split('\n')[0] ?? err.message).replace(/^.*?:\d+(?::\d+)?: /, '');
}

/** Reads a Dockerfile for linting. A syntax error the parser cannot get past leaves only `errors`. */
export function readDockerfile(source: string, file: string): LintDockerfile {
  const text = source.startsWith('\uFEFF') ? source.slice(1) : source;
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  let parsed;
  try {
    parsed = parseDockerfile(text);
  } catch (err) {
    if (!(err instanceof DockerfileSyntaxError)) throw err;
    return { file, lines, directives: { escape: '\\' }, all: [], globalArgs: [], stages: [], comments: new Map(), emptyContinuations: [], errors: [{ line: err.startLine, message: err.message }] };
  }
  const errors: { line: number; message: string }[] = [];
  const all: LintInstruction[] = [];
  const globalArgs: (ArgDeclaration & { line: number })[] = [];
  const stages: { index: number; name?: string; nameWritten?: string; asWritten?: string; base: string; platform?: string; from: LintInstruction; instructions: LintInstruction[] }[] = [];
  const inside = new Set<number>();
  for (const node of parsed.nodes) {
    for (let line = node.startLine; line <= node.endLine; line++) inside.add(line);
    const written = node.original.split(/\s/, 1)[0] ?? node.keyword;
    const location: Location = { file, startLine: node.startLine, endLine: node.endLine, original: node.original };
    const stage = stages.length - 1;
    const base = { node, keyword: node.keyword, written, line: node.startLine, endLine: node.endLine, stage };
    if (node.keyword === 'from') {
      const from: LintInstruction = { ...base, stage: stages.length };
      all.push(from);
      const [image = '', as, name] = node.args;
      const platform = node.flags.find((f) => f.startsWith('--platform='))?.slice('--platform='.length);
      if (image === '' || (as !== undefined && (as.toLowerCase() !== 'as' || name === undefined)) || node.args.length > 3) {
        errors.push({ line: node.startLine, message: 'FROM requires either one argument, or three: FROM <source> [AS <name>]' });
      }
      stages.push({
        index: stages.length,
        ...(name !== undefined ? { name: name.toLowerCase(), nameWritten: name } : {}),
        ...(as !== undefined ? { asWritten: as } : {}),
        base: image,
        ...(platform !== undefined ? { platform } : {}),
        from,
        instructions: [],
      });
      continue;
    }
    let typed: Instruction | undefined;
    // ONBUILD ONBUILD/FROM/MAINTAINER is DL3043's finding, not a parse error.
    const badTrigger = node.keyword === 'onbuild' && ['onbuild', 'from', 'maintainer'].includes(node.inner?.keyword ?? '');
    if (!badTrigger) {
      try {
        typed = typeInstruction(node, location);
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        errors.push({ line: node.startLine, message: bareMessage(err) });
      }
    }
    const entry: LintInstruction = { ...base, ...(typed ? { typed } : {}) };
    all.push(entry);
    const current = stages.at(-1);
    if (current) current.instructions.push(entry);
    else if (typed?.kind === 'arg') globalArgs.push(...typed.args.map((a) => ({ ...a, line: node.startLine })));
  }
  const comments = new Map<number, string>();
  lines.forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed.startsWith('#') && !inside.has(i + 1)) comments.set(i + 1, trimmed.slice(1).trim());
  });
  return {
    file,
    lines,
    directives: parsed.directives,
    all,
    globalArgs,
    stages,
    comments,
    emptyContinuations: parsed.warnings.map((w) => w.line),
    errors,
  };
}

/** A stage's base after expanding global ARGs: another stage, scratch, or an image reference. */
export type ResolvedBase = { readonly kind: 'stage'; readonly index: number } | { readonly kind: 'scratch' } | { readonly kind: 'image'; readonly ref: string; readonly variable: boolean };

/** The values of the global ARGs (defaults, overridden by build args), for expanding FROM lines. */
export function globalArgValues(dockerfile: LintDockerfile, buildArgs: ReadonlyMap<string, string>, builtins: ReadonlyMap<string, string>): Map<string, string> {
  const values = new Map(builtins);
  for (const arg of dockerfile.globalArgs) {
    const given = buildArgs.get(arg.name);
    const value = given ?? (arg.defaultValue !== undefined ? expandQuietly(arg.defaultValue, (n) => values.get(n), dockerfile.directives.escape) : undefined);
    if (value !== undefined) values.set(arg.name, value);
    else values.delete(arg.name);
  }
  return values;
}

/** Expands a word, or returns it as written when it does not lex (the rule that cares reports that). */
export function expandQuietly(word: string, lookup: (name: string) => string | undefined, escape: '\\' | '`'): string {
  try {
    return expandWord(word, lookup, { escape }).value;
  } catch {
    return word;
  }
}

/** Which stage a word names among those before `before` (by name or index). */
export function stageNamed(dockerfile: LintDockerfile, word: string, before: number): number | undefined {
  const lower = word.toLowerCase();
  const named = dockerfile.stages.findIndex((s, i) => i < before && s.name === lower);
  if (named >= 0) return named;
  if (/^\d+$/.test(word) && Number(word) < before) return Number(word);
  return undefined;
}

export function resolveBase(dockerfile: LintDockerfile, stage: LintStage, globals: ReadonlyMap<string, string>): ResolvedBase {
  const expanded = expandQuietly(stage.base, (n) => globals.get(n), dockerfile.directives.escape);
  if (expanded.toLowerCase() === 'scratch') return { kind: 'scratch' };
  const index = stageNamed(dockerfile, expanded, stage.index);
  if (index !== undefined) return { kind: 'stage', index };
  return { kind: 'image', ref: expanded, variable: stage.base.includes('$') };
}
