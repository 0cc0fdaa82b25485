/**
 * ShellCheck on RUN scripts, as hadolint runs it: each script prefixed with `#!` and the stage's shell and an
 * `export NAME=1` line per ARG/ENV name in scope, SC2187 and SC1090 excluded. Heredoc scripts are checked
 * too, their findings on the lines of the Dockerfile they came from. This module makes the inputs and reads
 * the results (`shellcheck -f json1`); running the program is the engine's.
 */
import type { Analysis, RunScript } from './context.js';
import type { Finding, Level } from './rules.js';

export const SHELLCHECK_EXCLUDED = ['SC2187', 'SC1090'];

/** Shells ShellCheck understands (others — pwsh, cmd, zsh, python — are not checked). */
const CHECKABLE = new Set(['sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'busybox']);

export interface ShellcheckInput {
  readonly script: RunScript;
  /** The file ShellCheck reads. */
  readonly text: string;
  /** How many lines the header adds before the script's first line. */
  readonly headerLines: number;
}

/** The scripts to check, with their headers. */
export function shellcheckInputs(analysis: Analysis): ShellcheckInput[] {
  const inputs: ShellcheckInput[] = [];
  for (const script of analysis.scripts.values()) {
    const program = script.shell[0] ?? '/bin/sh';
    if (!CHECKABLE.has(program.replace(/^.*\//, ''))) continue;
    // Only the names the script uses: an export changes nothing for the others, and ShellCheck's time
    // grows with every export line.
    const used = new Set([...script.text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] ?? ''));
    const exports = [...used].filter((n) => script.names.has(n)).sort().map((n) => `export ${n}=1\n`);
    // A heredoc's own #! line is the script's first line: the header replaces it, keeping the count.
    const own = script.text.startsWith('#!');
    const body = own ? script.text.slice(script.text.indexOf('\n') + 1) : script.text;
    inputs.push({ script, text: `#!${program}\n${exports.join('')}${body}${body.endsWith('\n') ? '' : '\n'}`, headerLines: 1 + exports.length - (own ? 1 : 0) });
  }
  return inputs;
}

interface Json1Comment {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly level: string;
  readonly code: number;
  readonly message: string;
}

/** ShellCheck's json1 output for the inputs (input i was written as the file `names[i]`) → findings. */
export function shellcheckFindings(inputs: readonly ShellcheckInput[], names: readonly string[], output: string, file: string): Finding[] {
  let parsed: { comments?: Json1Comment[] };
  try {
    parsed = JSON.parse(output) as { comments?: Json1Comment[] };
  } catch {
    return [];
  }
  const findings: Finding[] = [];
  for (const comment of parsed.comments ?? []) {
    const input = inputs[names.indexOf(comment.file)];
    if (!input) continue;
    const scriptLine = comment.line - input.headerLines;
    if (scriptLine < 1) continue;
    const level: Level = (['error', 'warning', 'info', 'style'] as const).find((l) => l === comment.level) ?? 'info';
    const line = input.script.lineOf(scriptLine);
    // Where columns do not map (a script joined from its lines), hadolint's column 1.
    const offset = input.script.columnOffset(scriptLine);
    findings.push({ code: `SC${comment.code}`, level, message: comment.message, file, line, column: offset === undefined ? 1 : comment.column + offset });
  }
  return findings;
}
