import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { FORMATS, type Format, formatFindings } from '../../analyze/lint/format.js';
import { LEVELS, type Level, RULES } from '../../analyze/lint/rules.js';
import type { Engine } from '../../engine/engine.js';
import type { LintResult } from '../../engine/lint.js';
import { KILN_VERSION } from '../../engine/version.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import type { Io } from '../io.js';
import { INSECURE_HELP, type RegistryFlags, collect, insecure } from '../io.js';
import { keyValue, readStdin } from './build.js';

interface LintFlags extends RegistryFlags {
  file?: string;
  format: string;
  ignore?: string[];
  trustedRegistry?: string[];
  failureThreshold?: string;
  config?: string;
  list?: boolean;
  pull?: boolean;
  buildArg?: string[];
  target?: string;
  color: boolean;
}

/** `--failure-threshold`: hadolint's names. */
export function parseThreshold(text: string): Level | 'none' {
  if (text === 'none' || (LEVELS as readonly string[]).includes(text)) return text as Level | 'none';
  throw new KilnError('INVALID_ARGUMENT', `invalid --failure-threshold ${JSON.stringify(text)}: use error, warning, info, style or none`);
}

/** Prints findings (stdout) and sets the exit code: 1 when any reaches the threshold. */
export function printLint(ctx: CommandContext, result: LintResult, format: Format, colour: boolean): void {
  ctx.io.stdout.write(formatFindings(result.findings, format, { colour, version: KILN_VERSION }));
  if (result.failed) ctx.exitCode = 1;
}

function printRules(io: Io): void {
  const width = Math.max(...RULES.map((r) => r.code.length));
  for (const rule of RULES) {
    const notes = [rule.image ? 'needs the base image' : '', rule.experimental ? 'experimental' : ''].filter(Boolean);
    io.stdout.write(`${rule.code.padEnd(width)}  ${rule.level.padEnd(7)}  ${rule.source.padEnd(8)}  ${rule.description}${notes.length ? ` (${notes.join(', ')})` : ''}\n`);
  }
  io.stdout.write(`${'SCxxxx'.padEnd(width)}  ${'(its)'.padEnd(7)}  ${'shellcheck'.padEnd(8)}  ShellCheck's findings on each RUN script and heredoc, its own level (SC2187 and SC1090 excluded)\n`);
}

export function registerLint(program: Command, ctx: CommandContext): Command {
  return program
    .command('lint')
    .description('Check a Dockerfile against hadolint\'s rules, BuildKit\'s checks, ShellCheck and kiln\'s own (which read the base image)')
    .argument('[PATH]', 'the build context (its Dockerfile is linted), a Dockerfile, or - to read the Dockerfile from stdin', '.')
    .option('-f, --file <path>', 'the Dockerfile (default: PATH/Dockerfile)')
    .option('--format <format>', `output format: ${FORMATS.join(', ')}`, 'tty')
    .option('--ignore <rule>', 'a rule not to report (repeatable)', collect)
    .option('--trusted-registry <registry>', 'a registry FROM may name (DL3026; repeatable, e.g. docker.io, *.gcr.io)', collect)
    .option('-t, --failure-threshold <level>', 'exit 1 only for findings at or above: error, warning, info, style, none (default info, or the config\'s)')
    .option('-c, --config <file>', 'the .hadolint.yaml to use (default: hadolint\'s search from the current directory)')
    .option('--list', 'print every rule with its level and a one-line description')
    .option('--pull', 'pull the base images first, so the rules that read them run')
    .option('--build-arg <KEY=value>', 'a build-time variable, as for kiln build', collect)
    .option('--target <stage>', 'the stage the build would end in')
    .option('--no-color', 'no colours in tty output')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action(async (path: string, flags: LintFlags) => {
      if (flags.list) return printRules(ctx.io);
      if (!(FORMATS as readonly string[]).includes(flags.format)) throw new KilnError('INVALID_ARGUMENT', `invalid --format ${JSON.stringify(flags.format)}: use ${FORMATS.join(', ')}`);
      const threshold = flags.failureThreshold !== undefined ? parseThreshold(flags.failureThreshold) : undefined;
      let dockerfile: { path: string } | { text: string; name: string };
      let contextDir: string | undefined;
      if (path === '-' || flags.file === '-') {
        dockerfile = { text: await readStdin(ctx.io), name: 'Dockerfile' };
        if (path !== '-') contextDir = resolve(path);
      } else {
        const info = await stat(path).catch(() => undefined);
        if (!info) throw new KilnError('NOT_FOUND', `${path}: no such file or directory`);
        contextDir = info.isDirectory() ? resolve(path) : dirname(resolve(path));
        dockerfile = { path: flags.file !== undefined ? resolve(flags.file) : info.isDirectory() ? join(contextDir, 'Dockerfile') : resolve(path) };
      }
      const buildArgs = new Map((flags.buildArg ?? []).flatMap((entry) => {
        const pair = keyValue(entry, '--build-arg');
        return pair ? [pair] : [];
      }));
      const colour = flags.color && (ctx.io.stdout as { isTTY?: boolean }).isTTY === true && process.env.NO_COLOR === undefined;
      // Lint reads the store when there is one (or --pull asks for it), and never makes one just to look.
      const lint = async (engine: Engine | undefined): Promise<void> => {
        const { lintImage } = await import('../../engine/lint.js');
        const result = await lintImage(engine, {
          dockerfile,
          ...(contextDir !== undefined ? { contextDir } : {}),
          buildArgs,
          ...(flags.target !== undefined ? { target: flags.target } : {}),
          ...(flags.config !== undefined ? { configFile: flags.config } : {}),
          ignore: flags.ignore ?? [],
          trustedRegistries: flags.trustedRegistry ?? [],
          ...(threshold !== undefined ? { failureThreshold: threshold } : {}),
          pull: flags.pull === true,
          insecureRegistries: insecure(flags),
          notice: (message) => ctx.io.stderr.write(`${message}\n`),
        });
        printLint(ctx, result, flags.format as Format, colour);
      };
      if (flags.pull === true || existsSync(ctx.root())) await withEngine(ctx, lint);
      else await lint(undefined);
    });
}

/**
 * The checks of `kiln build`: with `--check`, every rule on the Dockerfile the build would use, printed as
 * `kiln lint` prints them, and no build (returns false). Otherwise BuildKit's checks, printed as warnings
 * at the start of the build as BuildKit does; under `# check=error=true` a finding stops the build.
 */
export async function buildChecks(ctx: CommandContext, engine: Engine, build: { readonly path: string; readonly dockerfile: { readonly path: string; readonly text?: string } | { readonly text: string }; readonly buildArgs: ReadonlyMap<string, string>; readonly target?: string | undefined; readonly check: boolean; readonly quiet: boolean }): Promise<boolean> {
  const { lintImage } = await import('../../engine/lint.js');
  const contextDir = resolve(build.path);
  const given = build.dockerfile;
  const dockerfile = !('path' in given) ? { text: given.text, name: 'Dockerfile (stdin)' } : given.text !== undefined ? { text: given.text, name: given.path } : { path: given.path };
  const request = { dockerfile, contextDir, buildArgs: build.buildArgs, ...(build.target !== undefined ? { target: build.target } : {}), notice: (message: string) => ctx.io.stderr.write(`${message}\n`) };
  if (build.check) {
    printLint(ctx, await lintImage(engine, request), 'tty', (ctx.io.stdout as { isTTY?: boolean }).isTTY === true && process.env.NO_COLOR === undefined);
    return false;
  }
  let result: LintResult;
  try {
    result = await lintImage(engine, { ...request, buildkitOnly: true, shellcheck: false, failureThreshold: 'none' });
  } catch (err) {
    if (err instanceof KilnError) return true; // the build itself says what is wrong with the Dockerfile
    throw err;
  }
  const findings = result.findings;
  if (findings.length > 0 && (!build.quiet || findings.some((f) => f.level === 'error'))) {
    ctx.io.stderr.write(` ${findings.length} warning${findings.length === 1 ? '' : 's'} found:\n${findings.map((f) => ` - ${f.code}: ${f.message} (line ${f.line})\n`).join('')}`);
  }
  if (findings.some((f) => f.level === 'error')) throw new KilnError('FAILED', `the build checks failed (the Dockerfile says # check=error=true): fix the findings above or skip them with # check=skip=…`);
  return true;
}
