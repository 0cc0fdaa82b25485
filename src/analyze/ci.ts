/**
 * dive's CI gate: three rules over dive's figures, configured by flags or by a `.dive-ci` file, with
 * dive's defaults, words and thresholds, so that a pipeline can swap `dive --ci` for `kiln analyze --ci`.
 */
import { KilnError } from '../errors.js';
import type { DiveFigures } from './layers/dive.js';

export type CiRuleName = 'lowestEfficiency' | 'highestWastedBytes' | 'highestUserWastedPercent';

export const CI_RULES: readonly CiRuleName[] = ['highestUserWastedPercent', 'highestWastedBytes', 'lowestEfficiency'];

/** dive's defaults. */
export const CI_DEFAULTS: Readonly<Record<CiRuleName, string>> = { lowestEfficiency: '0.9', highestWastedBytes: 'disabled', highestUserWastedPercent: '0.1' };

export interface CiResult {
  readonly rule: CiRuleName;
  readonly status: 'PASS' | 'FAIL' | 'SKIP';
  /** Why it failed or was skipped; empty for a pass. */
  readonly message: string;
}

const DISABLED = new Set(['disabled', 'off', 'false', '']);

const SI: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, p: 1e15, pb: 1e15, e: 1e18, eb: 1e18 };
const IEC: Readonly<Record<string, number>> = { ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40, pi: 2 ** 50, pib: 2 ** 50, ei: 2 ** 60, eib: 2 ** 60 };

/**
 * A byte count as dive reads one (go-humanize's ParseBytes): a number, then an optional unit, SI
 * (`20MB`, `20M` = 20,000,000) or IEC (`20MiB`, `20Mi` = 20,971,520), any case; commas are ignored.
 */
export function parseBytes(text: string): number | undefined {
  const match = /^\s*([0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return undefined;
  const unit = (match[2] ?? '').toLowerCase();
  const factor = SI[unit] ?? IEC[unit];
  if (factor === undefined) return undefined;
  return Math.floor(Number((match[1] ?? '').replaceAll(',', '')) * factor);
}

/** Checks one rule's setting, as dive does before evaluating anything: an error names what is wrong. */
function checkSetting(rule: CiRuleName, value: string, where: string): void {
  if (DISABLED.has(value.trim().toLowerCase())) return;
  if (rule === 'highestWastedBytes') {
    if (parseBytes(value) === undefined) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid config value ('${value}'): not a byte count (such as 20MB, 20MiB or 20000000)`);
    return;
  }
  const ratio = /^\s*[0-9]*\.?[0-9]+\s*$/.test(value) ? Number(value) : NaN;
  if (Number.isNaN(ratio)) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid config value ('${value}'): not a number`);
  if (ratio < 0 || ratio > 1) throw new KilnError('INVALID_ARGUMENT', `${where}: ${rule} config value is outside allowed range (0-1), given '${value}'`);
}

/**
 * The rules' settings: dive's defaults, then the `.dive-ci` file's, then the flags'. Each setting is
 * checked with where it came from, so an error says which flag or file to fix.
 */
export function ciSettings(file: { readonly path: string; readonly rules: Partial<Record<CiRuleName, string>> } | undefined, flags: Partial<Record<CiRuleName, string>>): Record<CiRuleName, string> {
  const settings = { ...CI_DEFAULTS };
  for (const rule of CI_RULES) {
    const fromFile = file?.rules[rule];
    if (fromFile !== undefined) {
      checkSetting(rule, fromFile, `${file?.path ?? '.dive-ci'}: rules.${rule}`);
      settings[rule] = fromFile;
    }
    const fromFlag = flags[rule];
    if (fromFlag !== undefined) {
      checkSetting(rule, fromFlag, `--${rule.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
      settings[rule] = fromFlag;
    }
  }
  return settings;
}

/** Evaluates the rules over dive's figures, with dive's words for each failure. */
export function evaluateCi(figures: Pick<DiveFigures, 'efficiencyScore' | 'inefficientBytes' | 'userWastedRatio'>, settings: Readonly<Record<CiRuleName, string>>): CiResult[] {
  return CI_RULES.map((rule): CiResult => {
    const value = settings[rule];
    if (DISABLED.has(value.trim().toLowerCase())) return { rule, status: 'SKIP', message: 'rule disabled' };
    if (rule === 'lowestEfficiency') {
      const threshold = Number(value);
      return threshold > figures.efficiencyScore ? { rule, status: 'FAIL', message: `image efficiency is too low (efficiency=${figures.efficiencyScore} < threshold=${threshold})` } : { rule, status: 'PASS', message: '' };
    }
    if (rule === 'highestWastedBytes') {
      const threshold = parseBytes(value) ?? 0;
      return figures.inefficientBytes > threshold ? { rule, status: 'FAIL', message: `too many bytes wasted (wasted-bytes=${figures.inefficientBytes} > threshold=${threshold})` } : { rule, status: 'PASS', message: '' };
    }
    const threshold = Number(value);
    const ratio = figures.userWastedRatio;
    // dive divides by zero here (an image of one layer) and passes; kiln says why there is no figure.
    if (ratio === undefined) return { rule, status: 'SKIP', message: 'n/a: the image has no bytes beyond its first layer' };
    return threshold < ratio ? { rule, status: 'FAIL', message: `too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=${ratio} > threshold=${threshold})` } : { rule, status: 'PASS', message: '' };
  });
}

/**
 * Reads a `.dive-ci` file: YAML of the one shape dive reads, a `rules:` map of scalar settings. kiln has
 * no YAML library, and needs none for this: the reader takes block mappings (`key: value`, nested by
 * indentation), flow-free scalars (plain, single- or double-quoted) and comments, and refuses anything
 * else with the line it is on.
 */
export function readDiveCi(text: string, path: string): Partial<Record<CiRuleName, string>> {
  const rules: Partial<Record<CiRuleName, string>> = {};
  let inRules = false;
  let rulesIndent = -1;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const where = `${path}:${i + 1}`;
    const line = stripComment(raw, where);
    if (line.trim() === '' || line.trim() === '---') return;
    if (/^\t/.test(line)) throw new KilnError('INVALID_INPUT', `${where}: tabs do not indent YAML; use spaces`);
    const indent = line.length - line.trimStart().length;
    const match = /^([A-Za-z_][\w.-]*)\s*:(?:\s+(.*))?$/.exec(line.trim());
    if (!match) throw new KilnError('INVALID_INPUT', `${where}: expected "key: value" (a .dive-ci file holds a rules: map), not ${JSON.stringify(line.trim())}`);
    const key = match[1] as string;
    if (indent === 0) {
      inRules = key === 'rules';
      rulesIndent = -1;
      if (inRules && (match[2] ?? '') !== '') throw new KilnError('INVALID_INPUT', `${where}: rules must be a map of settings, one per line below it`);
      return;
    }
    if (!inRules) return; // dive reads only rules; other keys of its config file are not kiln's business
    const value = match[2] === undefined ? undefined : scalar(match[2], where);
    if (rulesIndent === -1) rulesIndent = indent;
    if (indent !== rulesIndent) throw new KilnError('INVALID_INPUT', `${where}: the settings under rules must be indented alike`);
    if (!(CI_RULES as readonly string[]).includes(key)) throw new KilnError('INVALID_INPUT', `${where}: unknown rule ${JSON.stringify(key)} (dive's rules are ${[...CI_RULES].sort().join(', ')})`);
    if (value === undefined) throw new KilnError('INVALID_INPUT', `${where}: rules.${key} needs a value`);
    rules[key as CiRuleName] = value;
  });
  return rules;
}

/** A line without its comment (a `#` at the start or after a space, outside quotes). */
function stripComment(line: string, where: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) return line.slice(0, i).trimEnd();
  }
  if (quote) throw new KilnError('INVALID_INPUT', `${where}: unterminated quoted value`);
  return line.trimEnd();
}

/** A YAML scalar: plain, 'single' (with '' for a quote) or "double" (with backslash escapes); `~`/`null` are empty. */
function scalar(text: string, where: string): string {
  const value = text.trim();
  if (value.startsWith("'")) {
    if (!value.endsWith("'") || value.length < 2) throw new KilnError('INVALID_INPUT', `${where}: unterminated quoted value`);
    return value.slice(1, -1).replaceAll("''", "'");
  }
  if (value.startsWith('"')) {
    try {
      return JSON.parse(value) as string;
    } catch {
      throw new KilnError('INVALID_INPUT', `${where}: invalid double-quoted value ${value}`);
    }
  }
  if (/^[[{&*!|>]/.test(value)) throw new KilnError('INVALID_INPUT', `${where}: ${JSON.stringify(value)} is YAML kiln does not read here: give a plain value`);
  return value === '~' || value === 'null' ? '' : value;
}
