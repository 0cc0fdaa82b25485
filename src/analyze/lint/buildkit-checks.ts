/**
 * BuildKit's build checks (`docker build --check`), by their names and messages, on kiln's parse and the
 * build's view (build args, the automatic platform ARGs, base images' configs when the store has them).
 */
import { parseReference } from '../../reference/reference.js';
import { type Analysis, isPredefinedArg } from './context.js';
import type { Report } from './hadolint-rules.js';
import { expandQuietly } from './model.js';
import { suggester } from './suggest.js';

const RESERVED_STAGE_NAMES = ['scratch', 'context'];
const SECRET = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const NOT_SECRET = /(?:_|^)(?:public|file|version)(?:_|$)/i;

/** Names (`$X`, `${X}`, `${X:-…}`) a word refers to, with whether a default or alternative comes with it. */
function variablesIn(word: string, escape: string): { name: string; guarded: boolean }[] {
  const found: { name: string; guarded: boolean }[] = [];
  let quote = '';
  for (let i = 0; i < word.length; i++) {
    const ch = word[i];
    if (ch === escape && quote !== "'") {
      i++;
      continue;
    }
    if (ch === "'" && quote !== '"') {
      quote = quote === "'" ? '' : "'";
      continue;
    }
    if (ch === '"' && quote !== "'") {
      quote = quote === '"' ? '' : '"';
      continue;
    }
    if (ch !== '$' || quote === "'") continue;
    const match = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(:?[-+?=%#/^,]?)|([A-Za-z_][A-Za-z0-9_]*))/.exec(word.slice(i));
    if (!match) continue;
    const name = match[1] ?? match[3] ?? '';
    found.push({ name, guarded: (match[2] ?? '').replace(':', '') === '-' || (match[2] ?? '').replace(':', '') === '+' });
    i += match[0].length - 1;
  }
  return found;
}

/** The words of an instruction that BuildKit expands (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK are left to the shell). */
function expandedWords(instruction: Analysis['dockerfile']['all'][number]): string[] {
  const typed = instruction.typed;
  if (!typed) return [];
  switch (typed.kind) {
    case 'env':
    case 'label':
      return typed.pairs.flatMap((p) => [p.key, p.value]);
    case 'arg':
      return typed.args.flatMap((a) => (a.defaultValue !== undefined ? [a.defaultValue] : []));
    case 'copy':
    case 'add':
      return [...typed.sources.filter((s) => !s.startsWith('<<')), typed.destination, ...(typed.chown !== undefined ? [typed.chown] : []), ...(typed.kind === 'copy' && typed.from !== undefined ? [typed.from] : [])];
    case 'workdir':
    case 'user':
    case 'stopsignal':
      return [typed.value];
    case 'expose':
    case 'volume':
      return [...typed.values];
    default:
      return [];
  }
}

export function buildkitChecks(analysis: Analysis, report: Report): void {
  const { dockerfile, globals } = analysis;
  const escape = dockerfile.directives.escape;
  const suggest = suggester();

  // ConsistentInstructionCasing: every keyword in the casing most of them use.
  const upper = dockerfile.all.filter((i) => i.written === i.written.toUpperCase()).length;
  const lower = dockerfile.all.filter((i) => i.written === i.written.toLowerCase()).length;
  const majority = upper >= lower ? 'uppercase' : 'lowercase';
  for (const instruction of dockerfile.all) {
    const ok = majority === 'uppercase' ? instruction.written === instruction.written.toUpperCase() : instruction.written === instruction.written.toLowerCase();
    if (!ok) report('ConsistentInstructionCasing', instruction.line, `Command '${instruction.written}' should match the case of the command majority (${majority})`);
  }

  for (const line of dockerfile.emptyContinuations) report('NoEmptyContinuation', line, 'Empty continuation line');

  // ARG and ENV names that look like secrets (global ARGs too).
  for (const instruction of dockerfile.all) {
    const typed = instruction.typed;
    const names = typed?.kind === 'arg' ? typed.args.map((a) => a.name) : typed?.kind === 'env' ? typed.pairs.map((p) => p.key) : [];
    for (const name of names) {
      if (SECRET.test(name) && !NOT_SECRET.test(name)) report('SecretsUsedInArgOrEnv', instruction.line, `Do not use ARG or ENV instructions for sensitive data (${typed?.kind.toUpperCase() ?? ''} ${JSON.stringify(name)})`);
    }
  }

  const globalNames = new Set([...dockerfile.globalArgs.map((a) => a.name)]);
  const seen = new Set<string>();
  for (const stage of dockerfile.stages) {
    const line = stage.from.line;
    const from = stage.from.written;
    if (stage.nameWritten !== undefined) {
      if (stage.nameWritten !== stage.nameWritten.toLowerCase()) report('StageNameCasing', line, `Stage name '${stage.nameWritten}' should be lowercase`);
      if (seen.has(stage.name ?? '')) report('DuplicateStageName', line, `Duplicate stage name ${JSON.stringify(stage.name)}, stage names should be unique`);
      seen.add(stage.name ?? '');
      if (RESERVED_STAGE_NAMES.includes(stage.name ?? '')) report('ReservedStageName', line, `Stage name should not use the same name as reserved stage ${JSON.stringify(stage.name)}`);
    }
    if (stage.asWritten !== undefined) {
      const fromUpper = from === from.toUpperCase();
      const asUpper = stage.asWritten === stage.asWritten.toUpperCase();
      const asLower = stage.asWritten === stage.asWritten.toLowerCase();
      if ((fromUpper && !asUpper) || (!fromUpper && from === from.toLowerCase() && !asLower)) report('FromAsCasing', line, `'${stage.asWritten}' and '${from}' keywords' casing do not match`);
    }
    // FROM's variables: declared as global ARGs (or the automatic platform ones).
    for (const word of [stage.base, ...(stage.platform !== undefined ? [stage.platform] : [])]) {
      for (const { name } of variablesIn(word, escape)) {
        if (!globalNames.has(name) && !isPredefinedArg(name)) {
          const close = suggest(name, globalNames);
          report('UndefinedArgInFrom', line, `FROM argument '${name}' is not declared${close ? ` (did you mean ${close}?)` : ''}`);
        }
      }
    }
    if (stage.base.includes('$')) {
      // The base with every global ARG at its default (build args aside): empty or not a reference?
      const defaults = new Map<string, string>();
      for (const arg of dockerfile.globalArgs) if (arg.defaultValue !== undefined) defaults.set(arg.name, expandQuietly(arg.defaultValue, (n) => defaults.get(n), escape));
      const value = expandQuietly(stage.base, (n) => defaults.get(n) ?? (isPredefinedArg(n) ? globals.get(n) : undefined), escape);
      let valid = value !== '' && dockerfile.stages.some((s) => s.index < stage.index && s.name === value.toLowerCase());
      if (!valid && value !== '') {
        try {
          parseReference(value);
          valid = true;
        } catch {
          valid = value.toLowerCase() === 'scratch';
        }
      }
      if (!valid) report('InvalidDefaultArgInFrom', line, `Default value for ARG ${stage.base} results in empty or invalid base image name`);
    }
    if (stage.platform !== undefined) {
      if (/^\$\{?TARGETPLATFORM\}?$/.test(stage.platform)) report('RedundantTargetPlatform', line, 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior');
      else if (!stage.platform.includes('$')) report('FromPlatformFlagConstDisallowed', line, `FROM --platform flag should not use constant value ${JSON.stringify(stage.platform)}`);
    }
    const facts = analysis.bases[stage.index]?.kind === 'image' ? analysis.imageOf(stage.index) : undefined;
    const platform = analysis.options.platform;
    if (facts?.os !== undefined && facts.architecture !== undefined && (facts.os !== platform.os || facts.architecture !== platform.architecture)) {
      const base = analysis.bases[stage.index];
      report('InvalidBaseImagePlatform', line, `Base image ${base?.kind === 'image' ? base.ref : stage.base} was pulled with platform "${facts.os}/${facts.architecture}", expected "${platform.os}/${platform.architecture}" for current build`);
    }

    const counts = new Map<string, number[]>();
    for (const instruction of stage.instructions) {
      const typed = instruction.typed;
      const state = analysis.before.get(instruction);
      if (!typed || !state) continue;
      if (typed.kind === 'cmd' || typed.kind === 'entrypoint' || typed.kind === 'healthcheck') {
        // Pushed in place: a copy per instruction made 20,000 CMDs take a minute.
        const lines = counts.get(typed.kind) ?? [];
        lines.push(instruction.line);
        counts.set(typed.kind, lines);
      }
      if ((typed.kind === 'cmd' || typed.kind === 'entrypoint') && typed.command.form === 'shell' && !state.shellSet) {
        report('JSONArgsRecommended', instruction.line, `JSON arguments recommended for ${typed.kind.toUpperCase()} to prevent unintended behavior related to OS signals`);
      }
      if (typed.kind === 'maintainer') report('MaintainerDeprecated', instruction.line, 'Maintainer instruction is deprecated in favor of using label');
      if ((typed.kind === 'env' || typed.kind === 'label') && instruction.node.args[2] === '') {
        const name = typed.kind.toUpperCase();
        report('LegacyKeyValueFormat', instruction.line, `"${name} key=value" should be used instead of legacy "${name} key value" format`);
      }
      if (typed.kind === 'workdir' && !typed.value.startsWith('/') && !typed.value.includes('$') && !state.absoluteWorkdir) {
        report('WorkdirRelativePath', instruction.line, `Relative workdir ${JSON.stringify(typed.value)} can have unexpected results if the base image changes`);
      }
      if (typed.kind === 'expose') {
        for (const value of typed.values) {
          if (value.includes(':')) report('ExposeInvalidFormat', instruction.line, `EXPOSE instruction should not define an IP address or host-port mapping, found '${value}'`);
          else if (/\/[a-z]*[A-Z][a-zA-Z]*$/.test(value)) report('ExposeProtoCasing', instruction.line, `Defined protocol '${value}' in EXPOSE instruction should be lowercase`);
        }
      }
      if (typed.kind === 'copy' && typed.from === undefined && analysis.options.ignored) {
        for (const source of typed.sources) {
          if (!source.startsWith('<<') && !source.includes('$') && analysis.options.ignored(source)) report('CopyIgnoredFile', instruction.line, `Attempting to Copy file ${JSON.stringify(source)} that is excluded by .dockerignore`);
        }
      }
      // UndefinedVar: only where every name in scope is known (scratch, or a base image the store has).
      if (state.complete) {
        const names = state.names;
        for (const word of expandedWords(instruction)) {
          for (const { name, guarded } of variablesIn(word, escape)) {
            if (guarded || names.has(name) || (isPredefinedArg(name) && !/PLATFORM|OS|ARCH|VARIANT/.test(name))) continue;
            const close = suggest(name, names);
            report('UndefinedVar', instruction.line, `Usage of undefined variable '$${name}'${close ? ` (did you mean $${close}?)` : ''}`);
          }
        }
      }
    }
    for (const [kind, lines] of counts) {
      for (const line of lines.slice(0, -1)) report('MultipleInstructionsDisallowed', line, `Multiple ${kind.toUpperCase()} instructions should not be used in the same stage because only the last one will be used`);
    }
  }
}
