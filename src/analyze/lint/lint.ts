/**
 * The lint itself, pure: a Dockerfile's text and what is known of its build → findings; then the policy
 * a person set (levels, ignores, pragmas, `# check=` directive, threshold) applied to them. The engine
 * adds what needs I/O: the store's facts about base images, ShellCheck's findings, config files.
 */
import { buildkitChecks } from './buildkit-checks.js';
import type { LintConfig } from './config.js';
import { type Analysis, type LintOptions, analyze } from './context.js';
import { hadolintRules } from './hadolint-rules.js';
import { kilnRules } from './kiln-rules.js';
import { type LintDockerfile, readDockerfile } from './model.js';
import { type Finding, LEVELS, type Level, RULES_BY_CODE } from './rules.js';

export interface LintRun {
  readonly dockerfile: LintDockerfile;
  readonly analysis: Analysis;
  /** Every rule's findings, before any policy. */
  readonly findings: readonly Finding[];
}

/**
 * Runs every rule (ShellCheck aside) on a Dockerfile (its text, or as readDockerfile read it), or with
 * `buildkit` only BuildKit's checks: the warnings a build prints, without the work of the other rules.
 */
export function lintDockerfile(source: string | LintDockerfile, options: LintOptions, rules: 'all' | 'buildkit' = 'all'): LintRun {
  const dockerfile = typeof source === 'string' ? readDockerfile(source, options.file) : source;
  const all = rules === 'all';
  const analysis = analyze(dockerfile, options, all);
  const findings: Finding[] = [];
  const report = (code: string, line: number, message?: string, column = 1): void => {
    const rule = RULES_BY_CODE.get(code);
    findings.push({ code, level: rule?.level ?? 'warning', message: message ?? rule?.description ?? code, file: options.file, line, column });
  };
  if (all) hadolintRules(analysis, report);
  if (dockerfile.stages.length > 0) {
    buildkitChecks(analysis, report);
    if (all) kilnRules(analysis, report);
  }
  return { dockerfile, analysis, findings };
}

export interface LintPolicy {
  readonly config: LintConfig;
  /** `--ignore RULE`, added to the config's `ignored`. */
  readonly ignore: readonly string[];
  /** Rules to report although off by default (BuildKit's experimental ones, `ignore`-level ones). */
  readonly enable?: readonly string[];
}

/** `# hadolint ignore=A,B` (or `global ignore=`): the rule codes it names. */
function pragmaCodes(comment: string, global: boolean): string[] | undefined {
  const match = (global ? /^hadolint\s+global\s+ignore\s*=\s*([A-Za-z0-9, ]+)/ : /^hadolint\s+ignore\s*=\s*([A-Za-z0-9, ]+)/).exec(comment);
  return match?.[1]?.split(',').map((c) => c.trim()).filter(Boolean);
}

/** BuildKit's `# check=skip=A,B;error=true;experimental=C` directive. */
export function checkDirective(text: string | undefined): { skip: Set<string>; skipAll: boolean; error: boolean; experimental: Set<string> } {
  const result = { skip: new Set<string>(), skipAll: false, error: false, experimental: new Set<string>() };
  for (const part of (text ?? '').split(';')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim().toLowerCase();
    const values = part.slice(eq + 1).split(',').map((v) => v.trim()).filter(Boolean);
    if (key === 'skip') {
      for (const value of values) {
        if (value.toLowerCase() === 'all') result.skipAll = true;
        else result.skip.add(value);
      }
    } else if (key === 'error') result.error = values[0] === 'true';
    else if (key === 'experimental') for (const value of values) result.experimental.add(value);
  }
  return result;
}

/** The findings a person sees: levels overridden, ignored and suppressed ones dropped, twins folded, sorted. */
export function applyPolicy(findings: readonly Finding[], dockerfile: LintDockerfile, policy: LintPolicy): Finding[] {
  const { config } = policy;
  const ignored = new Set([...config.ignored, ...policy.ignore]);
  const enabled = new Set(policy.enable ?? []);
  const directive = checkDirective(dockerfile.directives.check);
  const usePragmas = !config.disableIgnorePragma;
  const global = new Set<string>();
  const inline: { from: number; to: number; codes: string[] }[] = [];
  if (usePragmas) {
    for (const text of dockerfile.comments.values()) for (const code of pragmaCodes(text, true) ?? []) global.add(code);
    for (const instruction of dockerfile.all) {
      const codes: string[] = [];
      for (let line = instruction.line - 1; dockerfile.comments.has(line); line--) codes.push(...(pragmaCodes(dockerfile.comments.get(line) ?? '', false) ?? []));
      if (codes.length > 0) inline.push({ from: instruction.line, to: instruction.endLine, codes });
    }
  }
  const kept: Finding[] = [];
  for (const finding of findings) {
    const rule = RULES_BY_CODE.get(finding.code);
    let level: Level = config.override.get(finding.code) ?? finding.level;
    if (rule?.source === 'buildkit') {
      if (directive.skipAll || directive.skip.has(finding.code)) continue;
      if (rule.experimental && !directive.experimental.has(finding.code) && !directive.experimental.has('all') && !enabled.has(finding.code)) continue;
      if (directive.error && !config.override.has(finding.code)) level = 'error';
    }
    if (level === 'ignore' && !enabled.has(finding.code)) continue;
    if (ignored.has(finding.code) || global.has(finding.code)) continue;
    if (inline.some((p) => finding.line >= p.from && finding.line <= p.to && p.codes.includes(finding.code))) continue;
    kept.push({ ...finding, level: level === 'ignore' ? 'info' : level });
  }
  // A BuildKit check and the hadolint rule for the same fault on the same line: one finding, hadolint's.
  const at = new Set(kept.map((f) => `${f.line}:${f.code}`));
  return kept
    .filter((f) => {
      const twin = RULES_BY_CODE.get(f.code)?.twin;
      return twin === undefined || !at.has(`${f.line}:${twin}`);
    })
    .sort((a, b) => a.line - b.line || a.column - b.column || a.code.localeCompare(b.code));
}

/** Whether findings fail the lint: any at or above the threshold (`none` never fails). */
export function failsThreshold(findings: readonly Finding[], threshold: Level | 'none'): boolean {
  if (threshold === 'none') return false;
  const limit = LEVELS.indexOf(threshold);
  return findings.some((f) => LEVELS.indexOf(f.level) <= limit);
}
