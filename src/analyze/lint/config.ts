/**
 * `.hadolint.yaml`, read as hadolint reads it. kiln has no YAML library: this is a reader for the shapes
 * hadolint documents — a mapping of scalars, lists (block `- item` or flow `[a, b]`) and one level of
 * nested mappings (`override:`, `label-schema:`), with comments and quoted strings. Anything else is an
 * error naming the line.
 */
import { KilnError } from '../../errors.js';
import { LEVELS, type Level } from './rules.js';

export type YamlValue = string | boolean | YamlValue[] | { [key: string]: YamlValue };

export interface LintConfig {
  readonly ignored: readonly string[];
  readonly trustedRegistries: readonly string[];
  readonly failureThreshold?: Level | 'none';
  readonly override: ReadonlyMap<string, Level>;
  readonly labelSchema: ReadonlyMap<string, string>;
  readonly strictLabels: boolean;
  readonly disableIgnorePragma: boolean;
  readonly noFail: boolean;
}

export const EMPTY_CONFIG: LintConfig = { ignored: [], trustedRegistries: [], override: new Map(), labelSchema: new Map(), strictLabels: false, disableIgnorePragma: false, noFail: false };

function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1] ?? ''))) return line.slice(0, i);
  }
  return line;
}

function scalar(text: string, where: string): YamlValue {
  const value = text.trim();
  if (value.startsWith('[')) {
    if (!value.endsWith(']')) throw new KilnError('INVALID_INPUT', `${where}: an unclosed [ list`);
    const inner = value.slice(1, -1).trim();
    return inner === '' ? [] : inner.split(',').map((item) => scalar(item, where));
  }
  if (/^"(.*)"$/.test(value)) return value.slice(1, -1).replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  if (/^'(.*)'$/.test(value)) return value.slice(1, -1).replace(/''/g, "'");
  if (/^(true|yes|on)$/i.test(value)) return true;
  if (/^(false|no|off)$/i.test(value)) return false;
  return value;
}

/** Parses the YAML subset above into plain values. */
export function parseYaml(text: string, file: string): { [key: string]: YamlValue } {
  const lines = text.split('\n').map((raw, i) => ({ number: i + 1, text: stripComment(raw.replace(/\r$/, '')).replace(/\s+$/, '') })).filter((l) => l.text.trim() !== '' && l.text.trim() !== '---');
  let index = 0;
  const indentOf = (line: string): number => line.length - line.trimStart().length;

  const block = (indent: number): YamlValue => {
    const first = lines[index];
    if (!first) return '';
    if (first.text.trimStart().startsWith('- ') || first.text.trim() === '-') {
      const list: YamlValue[] = [];
      while (index < lines.length) {
        const line = lines[index];
        if (!line || indentOf(line.text) !== indent || !line.text.trimStart().startsWith('-')) break;
        list.push(scalar(line.text.trimStart().slice(1), `${file}:${line.number}`));
        index++;
      }
      return list;
    }
    const map: { [key: string]: YamlValue } = {};
    while (index < lines.length) {
      const line = lines[index];
      if (!line) break;
      const lineIndent = indentOf(line.text);
      if (lineIndent < indent) break;
      if (lineIndent > indent) throw new KilnError('INVALID_INPUT', `${file}:${line.number}: unexpected indentation`);
      const match = /^\s*("[^"]*"|'[^']*'|[^:]+?)\s*:(?:\s+(.*))?$/.exec(line.text);
      if (!match) throw new KilnError('INVALID_INPUT', `${file}:${line.number}: expected "key: value"`);
      const key = asText(scalar(match[1] ?? '', file), `${file}:${line.number}`);
      index++;
      if (match[2] !== undefined && match[2].trim() !== '') map[key] = scalar(match[2], `${file}:${line.number}`);
      else {
        const next = lines[index];
        const nextIndent = next ? indentOf(next.text) : -1;
        // A block list may sit at the key's own indentation, as YAML allows.
        if (next && (nextIndent > indent || (nextIndent === indent && next.text.trimStart().startsWith('-')))) map[key] = block(nextIndent);
        else map[key] = '';
      }
    }
    return map;
  };
  if (lines.length === 0) return {};
  const root = block(0);
  if (index < lines.length) throw new KilnError('INVALID_INPUT', `${file}:${lines[index]?.number ?? 0}: unexpected indentation`);
  if (typeof root !== 'object' || Array.isArray(root)) throw new KilnError('INVALID_INPUT', `${file}: expected a mapping of settings`);
  return root;
}

/** A scalar as text (a nested list or mapping where text is wanted is an error). */
function asText(value: YamlValue, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return String(value);
  throw new KilnError('INVALID_INPUT', `${where}: expected a single value, not a list or mapping`);
}

const list = (value: YamlValue | undefined, where: string): string[] => (value === undefined || value === '' ? [] : Array.isArray(value) ? value.map((v) => asText(v, where)) : [asText(value, where)]);

/** A config from `.hadolint.yaml` text. */
export function parseLintConfig(text: string, file: string): LintConfig {
  const yaml = parseYaml(text, file);
  const override = new Map<string, Level>();
  const overrides = yaml.override;
  if (overrides !== undefined && overrides !== '') {
    if (typeof overrides !== 'object' || Array.isArray(overrides)) throw new KilnError('INVALID_INPUT', `${file}: override must map levels to lists of rules`);
    for (const [level, rules] of Object.entries(overrides)) {
      if (!LEVELS.includes(level as Level)) throw new KilnError('INVALID_INPUT', `${file}: unknown level ${JSON.stringify(level)} in override (use error, warning, info, style)`);
      for (const rule of list(rules, `${file}: override.${level}`)) override.set(rule, level as Level);
    }
  }
  const schema = new Map<string, string>();
  const labelSchema = yaml['label-schema'];
  if (labelSchema !== undefined && labelSchema !== '') {
    if (typeof labelSchema !== 'object' || Array.isArray(labelSchema)) throw new KilnError('INVALID_INPUT', `${file}: label-schema must map label names to formats`);
    for (const [label, format] of Object.entries(labelSchema)) schema.set(label, asText(format, `${file}: label-schema.${label}`));
  }
  const threshold = yaml['failure-threshold'];
  if (threshold !== undefined && !(typeof threshold === 'string' && [...LEVELS, 'none'].includes(threshold))) {
    throw new KilnError('INVALID_INPUT', `${file}: failure-threshold must be one of error, warning, info, style, ignore, none`);
  }
  return {
    ignored: list(yaml.ignored, `${file}: ignored`),
    trustedRegistries: list(yaml.trustedRegistries, `${file}: trustedRegistries`),
    ...(typeof threshold === 'string' ? { failureThreshold: threshold as Level | 'none' } : {}),
    override,
    labelSchema: schema,
    strictLabels: yaml['strict-labels'] === true,
    disableIgnorePragma: yaml['disable-ignore-pragma'] === true,
    noFail: yaml['no-fail'] === true,
  };
}
