import { KilnError } from '../errors.js';
import type { ContainerConfig } from '../oci/types.js';

/**
 * The Dockerfile instructions that `import -c` and `commit -c` accept, applied to an image's container
 * config. One instruction per change, as Docker takes them. Values are taken literally (no variable
 * expansion happens for changes: there is no build environment to expand from).
 */
const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'] as const;

/** Splits `key=value` words honouring double and single quotes and backslash escapes. */
function splitWords(text: string, where: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new KilnError('INVALID_ARGUMENT', `${where}: unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/** `["a", "b"]` as a list of strings, or undefined when the text is not a JSON array (shell form). */
function jsonArray(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  } catch {
    // Not JSON: Docker then treats the text as shell form.
  }
  return undefined;
}

function keyValues(args: string, where: string, instruction: string): [string, string][] {
  const words = splitWords(args, where);
  if (words.length === 0) throw new KilnError('INVALID_ARGUMENT', `${where}: ${instruction} requires at least one argument`);
  if (!words[0]?.includes('=')) {
    // Legacy form `ENV key value with spaces`.
    const [key, ...rest] = args.trim().split(/\s+/);
    if (rest.length === 0) throw new KilnError('INVALID_ARGUMENT', `${where}: ${instruction} must have two arguments`);
    return [[key as string, splitWords(args.trim().slice((key as string).length), where).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new KilnError('INVALID_ARGUMENT', `${where}: ${instruction} names must be followed by =value, got ${JSON.stringify(w)}`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** Applies `changes` in order to `config`, returning a new config. */
export function applyChanges(config: ContainerConfig, changes: readonly string[]): ContainerConfig {
  let result: ContainerConfig = config;
  for (const change of changes) {
    const where = `change ${JSON.stringify(change)}`;
    const match = /^\s*(\S+)\s*(.*)$/s.exec(change);
    if (!match) throw new KilnError('INVALID_ARGUMENT', `${where}: empty change`);
    const instruction = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim();
    if (!(ALLOWED as readonly string[]).includes(instruction)) {
      throw new KilnError('INVALID_ARGUMENT', `${where}: ${instruction} is not a valid change command (use one of ${ALLOWED.join(', ')})`);
    }
    const commandOf = (): string[] => jsonArray(args) ?? ['/bin/sh', '-c', args];
    switch (instruction) {
      case 'CMD':
        result = { ...result, Cmd: commandOf() };
        break;
      case 'ENTRYPOINT':
        result = { ...result, Entrypoint: args === '' ? null : commandOf() };
        break;
      case 'ENV': {
        const env = [...(result.Env ?? [])];
        for (const [key, value] of keyValues(args, where, 'ENV')) {
          const at = env.findIndex((e) => e.split('=', 1)[0] === key);
          if (at >= 0) env[at] = `${key}=${value}`;
          else env.push(`${key}=${value}`);
        }
        result = { ...result, Env: env };
        break;
      }
      case 'LABEL':
        result = { ...result, Labels: { ...(result.Labels ?? {}), ...Object.fromEntries(keyValues(args, where, 'LABEL')) } };
        break;
      case 'EXPOSE': {
        const ports = { ...(result.ExposedPorts ?? {}) };
        for (const word of splitWords(args, where)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(word)) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid port ${JSON.stringify(word)}`);
          ports[word.includes('/') ? word.toLowerCase() : `${word}/tcp`] = {};
        }
        result = { ...result, ExposedPorts: ports };
        break;
      }
      case 'VOLUME': {
        const volumes = { ...(result.Volumes ?? {}) };
        for (const path of jsonArray(args) ?? splitWords(args, where)) volumes[path] = {};
        result = { ...result, Volumes: volumes };
        break;
      }
      case 'USER':
        result = { ...result, User: args };
        break;
      case 'WORKDIR':
        result = { ...result, WorkingDir: args.startsWith('/') ? args : `${result.WorkingDir || '/'}/${args}`.replace(/\/+/g, '/') };
        break;
      case 'STOPSIGNAL':
        result = { ...result, StopSignal: args };
        break;
      case 'ONBUILD':
        result = { ...result, OnBuild: [...(result.OnBuild ?? []), args] };
        break;
    }
  }
  return result;
}
