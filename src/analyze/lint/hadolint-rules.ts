/**
 * hadolint's DL rules, written from their documented meaning, on kiln's parse. Where hadolint's users
 * report false positives kiln knows better: a version given as a variable is pinned, `apt-get install
 * ./local.deb` installs a file, cleanup in the same RUN by `apt-get clean` or a cache mount counts, and
 * heredoc scripts are read as scripts.
 */
import { createRequire } from 'node:module';
import type * as Spdx from '@cyclonedx/cyclonedx-library/SPDX';
import { parseReference } from '../../reference/reference.js';
import type { Analysis, RunScript, State } from './context.js';
import type { LintInstruction, LintStage } from './model.js';
import { stageNamed } from './model.js';
import { RULES_BY_CODE } from './rules.js';
import { type ShellCommand, commandsOf, hasFlag, positionalArgs, programName } from './shell-words.js';

export type Report = (code: string, line: number, message?: string, column?: number) => void;

/** A rule's default message: its description. */
export function describe(code: string): string {
  return RULES_BY_CODE.get(code)?.description ?? code;
}

const APT_OPTIONS_WITH_VALUE = ['-o', '-c', '-t', '--option', '--config-file', '--target-release', '--default-release'];
const PIP_OPTIONS_WITH_VALUE = ['-r', '--requirement', '-c', '--constraint', '-e', '--editable', '-i', '--index-url', '--extra-index-url', '-f', '--find-links', '-t', '--target', '--prefix', '--root', '--src', '--upgrade-strategy', '--progress-bar', '--platform', '--python-version', '--implementation', '--abi', '--trusted-host', '--cert', '--client-cert', '--timeout', '--retries', '--log', '--proxy', '--global-option', '--install-option', '--no-binary', '--only-binary', '--config-settings', '-C'];
const APK_OPTIONS_WITH_VALUE = ['-t', '--virtual', '-X', '--repository', '-p', '--root', '--repositories-file', '--arch', '--keys-dir', '--cache-dir'];
const YUM_OPTIONS_WITH_VALUE = ['-c', '--config', '--installroot', '--enablerepo', '--disablerepo', '-x', '--exclude', '--releasever', '--setopt', '--downloaddir', '--repo', '--repoid'];
const ARCHIVE = /\.(tar|tar\.(gz|bz2|xz|lz|lzma|Z|zst)|tgz|tb2|tbz|tbz2|tpz|tlz|txz|tZ)$/;

/** A word that is (or holds) a variable: its value is unknown here, so it counts as pinned. */
const hasVariable = (word: string): boolean => word.includes('$');

/** A cache or tmpfs mount of the RUN over one of the paths (its cleanup is then nothing to forget). */
function mountsOver(instruction: LintInstruction, paths: readonly string[]): boolean {
  const typed = instruction.typed;
  if (typed?.kind !== 'run') return false;
  return typed.mounts.some((m) => (m.type === 'cache' || m.type === 'tmpfs') && m.target !== undefined && paths.some((p) => m.target?.replace(/\/+$/, '') === p || p.startsWith(`${m.target?.replace(/\/+$/, '')}/`)));
}

const rmOf = (script: RunScript, path: RegExp): boolean => commandsOf(script.parsed, ['rm']).some((c) => positionalArgs(c).some((a) => path.test(a)));

function aptInstalls(script: RunScript): ShellCommand[] {
  return commandsOf(script.parsed, ['apt-get'], ['install'], APT_OPTIONS_WITH_VALUE);
}

/** The packages an install command names (its positional args after the subcommand). */
function packages(command: ShellCommand, optionsWithValue: readonly string[]): string[] {
  return positionalArgs(command, optionsWithValue).slice(1);
}

function forEachStage(analysis: Analysis, fn: (stage: number, instructions: readonly LintInstruction[]) => void): void {
  analysis.dockerfile.stages.forEach((stage, i) => fn(i, stage.instructions));
}

function stateOf(analysis: Analysis, instruction: LintInstruction): State | undefined {
  return analysis.before.get(instruction);
}

export function hadolintRules(analysis: Analysis, report: Report): void {
  const { dockerfile } = analysis;

  // DL1000: what does not parse.
  for (const error of dockerfile.errors) report('DL1000', error.line, error.message);

  // DL1001: inline ignore pragmas.
  for (const [line, text] of dockerfile.comments) if (/^hadolint\s+ignore\s*=/.test(text)) report('DL1001', line);

  // DL3061: only ARG (and comments) before the first FROM.
  for (const instruction of dockerfile.all) {
    if (instruction.keyword === 'from') break;
    if (instruction.keyword !== 'arg') {
      report('DL3061', instruction.line);
      break;
    }
  }

  const seenNames = new Map<string, number>();
  for (const stage of dockerfile.stages) {
    const line = stage.from.line;
    // DL3024: unique stage names; DL3063: not a reserved word.
    if (stage.name !== undefined) {
      if (seenNames.has(stage.name)) report('DL3024', line, `Duplicate stage name "${stage.nameWritten ?? stage.name}": FROM aliases (stage names) must be unique`);
      seenNames.set(stage.name, stage.index);
      if (stage.name === 'scratch' || stage.name === 'context') report('DL3063', line, `Stage name "${stage.nameWritten ?? stage.name}" should not be a reserved word`);
    }
    // DL3029: --platform on FROM (a platform from the build's own ARGs is what multi-platform builds need).
    if (stage.platform !== undefined && !/(BUILD|TARGET)PLATFORM/.test(stage.platform)) report('DL3029', line);
    // DL3065: --platform=$TARGETPLATFORM says what a build does anyway.
    if (stage.platform === '$TARGETPLATFORM' || stage.platform === '${TARGETPLATFORM}') report('DL3065', line);
    const base = analysis.bases[stage.index];
    if (base?.kind !== 'image' || base.variable) {
      if (base?.kind === 'image' && base.variable) checkTrusted(analysis, base.ref, line, report);
      continue;
    }
    let ref;
    try {
      ref = parseReference(base.ref);
    } catch {
      continue;
    }
    // DL3006 / DL3007: a tag, and not latest (a digest pins either way).
    if (!ref.digest && !ref.tag) report('DL3006', line);
    if (!ref.digest && ref.tag === 'latest') report('DL3007', line);
    checkTrusted(analysis, base.ref, line, report);
  }

  const userArgs = new Set(dockerfile.globalArgs.map((arg) => arg.name));
  const healthchecked = new Set<number>();
  forEachStage(analysis, (stage, instructions) => {
    let healthchecks = 0;
    let cmds = 0;
    let entrypoints = 0;
    let lastUser: LintInstruction | undefined;
    let previousRun: LintInstruction | undefined;
    const tools = new Set<string>();
    for (const instruction of instructions) {
      const typed = instruction.typed;
      const state = stateOf(analysis, instruction);
      if (instruction.keyword === 'run' && typed?.kind === 'run') {
        // DL3059: consecutive short RUNs (two commands at most each) with the same flags could be one.
        const short = (run: LintInstruction): boolean => (analysis.scripts.get(run)?.parsed.commands.length ?? 0) <= 2;
        if (previousRun && previousRun.node.flags.join(' ') === instruction.node.flags.join(' ') && short(previousRun) && short(instruction)) report('DL3059', instruction.line);
        previousRun = instruction;
      } else previousRun = undefined;
      if (!typed) {
        if (instruction.keyword === 'onbuild') report('DL3043', instruction.line);
        continue;
      }
      switch (typed.kind) {
        case 'workdir': {
          const path = typed.value.replace(/^["']|["']$/g, '');
          if (!path.startsWith('/') && !path.startsWith('$') && !/^[A-Za-z]:[\\/]/.test(path)) report('DL3000', instruction.line);
          break;
        }
        case 'user': {
          lastUser = instruction;
          // DL3066: a user name (not a uid) may not resolve on the host; a uid from an ARG is fine.
          const uid = typed.value.split(':')[0] ?? '';
          if (!/^\d+$/.test(uid) && ![...userArgs].some((name) => uid.includes(`$${name}`) || uid.includes(`\${${name}}`))) report('DL3066', instruction.line);
          break;
        }
        case 'arg':
          for (const arg of typed.args) userArgs.add(arg.name);
          // DL3064: an ARG named like a credential.
          for (const arg of typed.args) if (sensitiveName(arg.name)) report('DL3064', instruction.line);
          break;
        case 'expose':
          for (const value of typed.values) {
            if (hasVariable(value)) continue;
            const ports = (value.split('/')[0] ?? '').split('-');
            if (ports.some((p) => /^\d+$/.test(p) && Number(p) > 65535)) report('DL3011', instruction.line);
          }
          break;
        case 'healthcheck':
          if (++healthchecks > 1) report('DL3012', instruction.line);
          break;
        case 'cmd':
        case 'entrypoint':
          if (typed.command.form === 'shell') report('DL3025', instruction.line);
          if (typed.kind === 'cmd' && ++cmds > 1) report('DL4003', instruction.line);
          if (typed.kind === 'entrypoint' && ++entrypoints > 1) report('DL4004', instruction.line);
          break;
        case 'maintainer':
          report('DL4000', instruction.line);
          break;
        case 'env': {
          if (typed.pairs.some((p) => sensitiveName(p.key))) report('DL3064', instruction.line);
          // DL3044: an ENV that uses a name it defines itself (unless it was defined before).
          const defined = new Set<string>();
          for (const pair of typed.pairs) {
            for (const match of pair.value.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
              const name = match[1] ?? '';
              if (defined.has(name) && !state?.names.has(name)) report('DL3044', instruction.line);
            }
            defined.add(pair.key);
          }
          break;
        }
        case 'copy':
        case 'add': {
          if (typed.kind === 'copy') {
            if (typed.sources.length > 1 && !typed.destination.endsWith('/') && !hasVariable(typed.destination)) report('DL3021', instruction.line);
            if (typed.from !== undefined && !hasVariable(typed.from)) {
              const from = typed.from.toLowerCase();
              const own = dockerfile.stages[stage]?.name;
              // An image named with a tag or digest is an image; any other word should be an earlier stage.
              if (own !== undefined && from === own) report('DL3023', instruction.line);
              else if (stageNamed(dockerfile, typed.from, stage) === undefined && !from.includes(':')) report('DL3022', instruction.line);
              // DL3026: an image copied from comes from a trusted registry too.
              if (stageNamed(dockerfile, typed.from, stage) === undefined && from !== own) checkTrusted(analysis, typed.from, instruction.line, report);
            }
            // DL3067: the whole filesystem of another stage copied over this one's.
            if (typed.from !== undefined && typed.sources.some((s) => unquote(s) === '/') && unquote(typed.destination) === '/') report('DL3067', instruction.line);
          } else if (typed.heredocs.length === 0) {
            // DL3020: ADD for a plain file; URLs and archives are what ADD is for.
            const plain = typed.sources.some((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && !/^git@/.test(s) && !ARCHIVE.test(s) && !hasVariable(s));
            if (plain) report('DL3020', instruction.line);
          }
          // DL3045: a relative destination with no WORKDIR set (the base image's counts).
          const dest = typed.destination.replace(/^["']|["']$/g, '');
          if (!dest.startsWith('/') && !hasVariable(dest) && !/^[A-Za-z]:[\\/]/.test(dest) && !state?.workdir) report('DL3045', instruction.line);
          break;
        }
        case 'label':
          for (const pair of typed.pairs) {
            const key = unquote(pair.key);
            if (!validLabelKey(key)) report('DL3048', instruction.line, `Invalid label key ${JSON.stringify(key)}.`);
          }
          break;
        case 'run': {
          for (const mount of typed.mounts) {
            if (mount.from !== undefined && !hasVariable(mount.from) && stageNamed(dockerfile, mount.from, stage) === undefined) checkTrusted(analysis, mount.from, instruction.line, report);
          }
          const script = analysis.scripts.get(instruction);
          if (!script) break;
          runRules(analysis, stage, script, state, report);
          // DL4001: curl and wget both in one stage, reported where the second comes and after.
          const uses = script.parsed.commands.map(programName).filter((n) => n === 'curl' || n === 'wget');
          for (const tool of uses) tools.add(tool);
          if (uses.length > 0 && tools.size > 1) report('DL4001', instruction.line);
          break;
        }
        default:
          break;
      }
    }
    // DL3002: a stage's last USER is root (hadolint asks it of every stage).
    if (lastUser?.typed?.kind === 'user' && /^(root|0)(:.*)?$/.test(lastUser.typed.value.trim())) report('DL3002', lastUser.line);
    if (healthchecks > 0) healthchecked.add(stage);
  });

  // DL3057 (off by default): a stage without a HEALTHCHECK of its own, from the stages it builds on, from
  // a stage built on it, or (when the store knows it) from its base image.
  const ownHealthcheck = (index: number): boolean => healthchecked.has(index) || (analysis.bases[index]?.kind === 'image' && Boolean(analysis.imageOf(index)?.config.Healthcheck));
  for (const stage of stagesLacking(analysis, ownHealthcheck, false)) {
    report('DL3057', stage.from.line);
  }

  labelSchemaRules(analysis, report);
  archiveRule(analysis, report);
}

/**
 * The stages that lack something (a label, a HEALTHCHECK) as hadolint sees it: not in the stage itself, nor
 * in a stage it is built on, nor in a stage built on it (that one carries it for both); with `copiedFrom`
 * set, a stage another copies files from needs none either (a builder's image is not shipped).
 */
function stagesLacking(analysis: Analysis, has: (stage: number) => boolean, copiedFrom: boolean): LintStage[] {
  const { dockerfile, bases } = analysis;
  const parent = (index: number): number | undefined => {
    const base = bases[index];
    return base?.kind === 'stage' && base.index < index ? base.index : undefined;
  };
  // Stages that carry it, themselves or from the stages they are built on; and those a later one covers.
  const carries = new Set<number>();
  const covered = new Set<number>();
  for (const stage of dockerfile.stages) {
    const from = parent(stage.index);
    if (!has(stage.index)) {
      if (from !== undefined && carries.has(from)) carries.add(stage.index);
      continue;
    }
    carries.add(stage.index);
    for (let up = from; up !== undefined; up = parent(up)) covered.add(up);
  }
  for (const stage of carries) covered.add(stage);
  if (copiedFrom) {
    for (const instruction of dockerfile.all) {
      const typed = instruction.typed;
      const source = typed?.kind === 'copy' && typed.from !== undefined ? stageNamed(dockerfile, typed.from, instruction.stage) : undefined;
      if (source !== undefined) covered.add(source);
    }
  }
  return dockerfile.stages.filter((stage) => !covered.has(stage.index));
}

/**
 * DL3026: an image from a registry `trustedRegistries` allows: the registry by name, `*.example.com` any
 * registry ending so, `registry.example*` any starting so, `*` any. An image named without a registry is
 * Docker Hub's, allowed as docker.io or hub.docker.com; scratch is no image.
 */
function checkTrusted(analysis: Analysis, ref: string, line: number, report: Report): void {
  const trusted = analysis.options.trustedRegistries;
  if (trusted.length === 0 || ref.toLowerCase() === 'scratch') return;
  let domain: string;
  try {
    domain = parseReference(ref).domain;
  } catch {
    return;
  }
  const written = ref.includes('/') && /[.:]|^localhost$/.test(ref.slice(0, ref.indexOf('/')));
  const candidates = written ? [domain] : ['docker.io', 'hub.docker.com'];
  const allows = (pattern: string, registry: string): boolean => {
    if (pattern === '*') return true;
    if (pattern.startsWith('*')) return registry.endsWith(pattern.slice(1));
    if (pattern.endsWith('*')) return registry.startsWith(pattern.slice(0, -1));
    return pattern === registry;
  };
  if (!trusted.some((pattern) => candidates.some((registry) => allows(pattern, registry)))) {
    report('DL3026', line, `Use only an allowed registry in the FROM image (${domain} is not in trustedRegistries)`);
  }
}

/** The rules about what a RUN script does. */
function runRules(analysis: Analysis, stage: number, script: RunScript, state: State | undefined, report: Report): void {
  const line = script.instruction.line;
  const names = script.parsed.commands.map(programName);
  const instruction = script.instruction;

  // DL3001, DL3003, DL3004, DL3027.
  if (names.some((n) => ['free', 'kill', 'mount', 'ps', 'service', 'shutdown', 'ssh', 'top', 'vim'].includes(n))) report('DL3001', line);
  if (names.includes('cd')) report('DL3003', line);
  if (names.includes('sudo')) report('DL3004', line);
  if (names.includes('apt')) report('DL3027', line);

  // apt-get: DL3008 pinning, DL3014 -y, DL3015 --no-install-recommends, DL3009 lists.
  const installs = aptInstalls(script);
  for (const command of installs) {
    const unpinned = packages(command, APT_OPTIONS_WITH_VALUE).filter((p) => !p.includes('=') && !hasVariable(p) && !p.endsWith('.deb') && !p.includes('/'));
    if (unpinned.length > 0) report('DL3008', line, `Pin versions in apt-get install. Instead of \`apt-get install ${unpinned[0] ?? '<package>'}\` use \`apt-get install ${unpinned[0] ?? '<package>'}=<version>\``);
    if (!hasFlag(command, ['--yes', '--assume-yes'], ['y']) && !command.args.includes('-qq') && !hasFlag(command, [], ['qq'])) report('DL3014', line);
    if (!hasFlag(command, ['--no-install-recommends']) && !command.args.some((a) => /APT::Install-Recommends=(false|0)/i.test(a))) report('DL3015', line);
  }
  const aptUpdates = commandsOf(script.parsed, ['apt-get'], ['update'], APT_OPTIONS_WITH_VALUE);
  // As hadolint: what leaves the lists is `apt-get update`.
  if (aptUpdates.length > 0 && analysis.inFinalImage.has(stage)) {
    const cleaned = rmOf(script, /^\/var\/lib\/apt\/lists(\/\*?)?$/) || commandsOf(script.parsed, ['apt-get', 'apt'], ['clean']).length > 0 || mountsOver(instruction, ['/var/lib/apt/lists', '/var/lib/apt']);
    if (!cleaned) report('DL3009', line);
  }

  // pip: DL3013 pinning, DL3042 --no-cache-dir.
  const pipInstalls = script.parsed.commands.filter((c) => {
    const name = programName(c);
    if (/^pip[0-9.]*$/.test(name)) return positionalArgs(c, PIP_OPTIONS_WITH_VALUE)[0] === 'install';
    if (/^python[0-9.]*$/.test(name)) return c.args[0] === '-m' && /^pip[0-9.]*$/.test(c.args[1] ?? '') && c.args.slice(2).includes('install');
    return false;
  });
  for (const command of pipInstalls) {
    const args = /^python/.test(programName(command)) ? { ...command, args: command.args.slice(2) } : command;
    // Requirements files, the local project and constraints files pin what they install.
    const fromFiles = args.args.some((a) => ['-r', '--requirement', '.', '-c', '--constraint'].includes(a.split('=')[0] ?? a));
    const pkgs = (fromFiles ? [] : packages(args, PIP_OPTIONS_WITH_VALUE)).filter((p) => !/[=<>~!@]/.test(p) && !hasVariable(p) && !/^[./~]/.test(p) && !/^(git\+|https?:|file:)/.test(p) && !/\.(whl|tar\.gz|zip)$/.test(p));
    if (pkgs.length > 0) report('DL3013', line, `Pin versions in pip. Instead of \`pip install ${pkgs[0] ?? ''}\` use \`pip install ${pkgs[0] ?? ''}==<version>\` or \`pip install --requirement <requirements file>\``);
    const noCache = hasFlag(args, ['--no-cache-dir']) || /^(1|true|on|yes)$/i.test(state?.names.get('PIP_NO_CACHE_DIR') ?? '') || /\bPIP_NO_CACHE_DIR=["']?(1|true|on|yes)\b/i.test(script.text) || cacheMountUnder(instruction, '.cache/pip');
    if (!noCache) report('DL3042', line);
  }

  // npm: DL3016.
  for (const command of commandsOf(script.parsed, ['npm'], ['install', 'i', 'add'])) {
    const pkgs = packages(command, ['--prefix', '-w', '--workspace', '--registry', '--tag']).filter((p) => {
      if (hasVariable(p) || /^[./~]/.test(p) || /^(git[+:]|https?:|file:|github:)/.test(p) || /\.(tgz|tar\.gz)$/.test(p) || /^[^@/]+\/[^@/]+$/.test(p)) return false;
      const at = p.startsWith('@') ? p.indexOf('@', 1) : p.indexOf('@');
      return at < 0;
    });
    if (pkgs.length > 0) report('DL3016', line, `Pin versions in npm. Instead of \`npm install ${pkgs[0] ?? ''}\` use \`npm install ${pkgs[0] ?? ''}@<version>\``);
  }

  // apk: DL3018 pinning, DL3019 --no-cache.
  for (const command of commandsOf(script.parsed, ['apk'], ['add'], APK_OPTIONS_WITH_VALUE)) {
    const pkgs = packages(command, APK_OPTIONS_WITH_VALUE).filter((p) => !/[=<>~]/.test(p) && !hasVariable(p) && !p.endsWith('.apk') && !p.includes('/'));
    if (pkgs.length > 0) report('DL3018', line, `Pin versions in apk add. Instead of \`apk add ${pkgs[0] ?? ''}\` use \`apk add ${pkgs[0] ?? ''}=<version>\``);
    if (!hasFlag(command, ['--no-cache']) && !mountsOver(instruction, ['/var/cache/apk', '/etc/apk/cache']) && !rmOf(script, /^\/var\/cache\/apk(\/\*?)?$/)) report('DL3019', line);
  }

  // gem: DL3028.
  for (const command of commandsOf(script.parsed, ['gem'], ['install', 'i'])) {
    if (hasFlag(command, ['--version'], ['v'])) continue;
    const pkgs = packages(command, ['-v', '--version', '-i', '--install-dir', '-n', '--bindir', '-s', '--source', '--platform']).filter((p) => !p.includes(':') && !hasVariable(p) && !p.endsWith('.gem'));
    if (pkgs.length > 0) report('DL3028', line);
  }

  // yum / dnf / microdnf: DL3030, DL3032, DL3033, DL3038, DL3040, DL3041.
  for (const [tools, yes, clean, version] of [
    [['yum'], 'DL3030', 'DL3032', 'DL3033'],
    [['dnf', 'microdnf'], 'DL3038', 'DL3040', 'DL3041'],
  ] as const) {
    const used = commandsOf(script.parsed, tools, [], YUM_OPTIONS_WITH_VALUE);
    const installs = commandsOf(script.parsed, tools, ['install', 'groupinstall', 'localinstall', 'module'], YUM_OPTIONS_WITH_VALUE);
    for (const command of installs) {
      if (!hasFlag(command, ['--assumeyes'], ['y'])) report(yes, line);
      const pkgs = packages(command, YUM_OPTIONS_WITH_VALUE).filter((p) => !/-\d/.test(p) && !hasVariable(p) && !p.endsWith('.rpm') && !p.includes('/') && p !== 'install');
      if (pkgs.length > 0) report(version, line);
    }
    const cleaned = commandsOf(script.parsed, tools, ['clean'], YUM_OPTIONS_WITH_VALUE).some((c) => c.args.includes('all')) || rmOf(script, /^\/var\/cache\/(yum|dnf)(\/\*?)?$/) || mountsOver(instruction, ['/var/cache/yum', '/var/cache/dnf']);
    if (used.some((c) => !['clean'].includes(positionalArgs(c, YUM_OPTIONS_WITH_VALUE)[0] ?? '')) && installs.length > 0 && !cleaned) report(clean, line);
  }

  // zypper: DL3034, DL3035, DL3036, DL3037.
  const zypper = commandsOf(script.parsed, ['zypper']);
  for (const command of zypper) {
    const sub = positionalArgs(command, ['--root', '-R', '--reposd-dir', '--cache-dir'])[0] ?? '';
    if (['install', 'in', 'remove', 'rm', 'source-install', 'si', 'patch'].includes(sub) && !hasFlag(command, ['--non-interactive', '--no-confirm'], ['n', 'y'])) report('DL3034', line);
    if (sub === 'dist-upgrade' || sub === 'dup') report('DL3035', line);
    if (sub === 'install' || sub === 'in') {
      const pkgs = positionalArgs(command, ['--root', '-R', '-t', '--type', '--from', '-r', '--repo']).slice(1).filter((p) => !/[=<>]/.test(p) && !hasVariable(p) && !p.endsWith('.rpm') && !p.includes('/'));
      if (pkgs.length > 0) report('DL3037', line);
    }
  }
  if (zypper.some((c) => ['install', 'in'].includes(positionalArgs(c)[0] ?? '')) && !zypper.some((c) => ['clean', 'cc'].includes(positionalArgs(c)[0] ?? '')) && !mountsOver(instruction, ['/var/cache/zypp'])) report('DL3036', line);

  // DL3046: useradd with a high UID and without -l.
  for (const command of commandsOf(script.parsed, ['useradd'])) {
    const index = command.args.findIndex((a) => a === '-u' || a === '--uid' || a.startsWith('--uid='));
    const uid = index < 0 ? undefined : command.args[index]?.startsWith('--uid=') ? command.args[index]?.slice(6) : command.args[index + 1];
    if (uid !== undefined && /^\d{6,}$/.test(uid) && !hasFlag(command, ['--no-log-init'], ['l'])) report('DL3046', line);
  }

  // DL3047: wget without a progress setting.
  for (const command of commandsOf(script.parsed, ['wget'])) {
    if (!command.args.some((a) => /^--progress(=|$)/.test(a) || ['-q', '--quiet', '-nv', '--no-verbose', '-o', '--output-file', '-a', '--append-output'].includes(a.split('=')[0] ?? a) || /^-[a-zA-Z]*q[a-zA-Z]*$/.test(a))) report('DL3047', line);
  }

  // DL3060: yarn install without yarn cache clean.
  const yarnInstalls = commandsOf(script.parsed, ['yarn']).filter((c) => ['install', 'add'].includes(positionalArgs(c)[0] ?? 'install') || positionalArgs(c).length === 0);
  if (yarnInstalls.length > 0 && !commandsOf(script.parsed, ['yarn'], ['cache']).some((c) => c.args.includes('clean')) && !mountsOver(instruction, ['/usr/local/share/.cache/yarn', '/root/.cache/yarn', '/root/.yarn'])) report('DL3060', line);

  // DL3062: go install without @version.
  for (const command of commandsOf(script.parsed, ['go'], ['install'])) {
    const pkgs = positionalArgs(command, ['-ldflags', '-tags', '-gcflags', '-o', '-mod']).slice(1).filter((p) => !p.includes('@') && !hasVariable(p) && !/^[./]/.test(p));
    if (pkgs.length > 0) report('DL3062', line);
  }

  // DL4005: ln to /bin/sh.
  if (commandsOf(script.parsed, ['ln']).some((c) => positionalArgs(c).at(-1) === '/bin/sh')) report('DL4005', line);

  // DL4006: a pipe without pipefail.
  if (script.parsed.pipes) {
    const shell = script.shell;
    const program = (shell[0] ?? '').replace(/^.*\//, '');
    const posix = ['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh'].includes(program);
    const pipefail = shell.some((word, i) => (word === '-o' && shell[i + 1] === 'pipefail') || word === '-opipefail' || /^-[a-z]*o$/.test(word) && shell[i + 1] === 'pipefail');
    const setInScript = script.parsed.commands.some((c) => c.name === 'set' && c.args.some((a, i) => a === 'pipefail' && /^-[a-z]*o$/.test(c.args[i - 1] ?? '')));
    if (posix && !pipefail && !setInScript) report('DL4006', line);
  }
}

/** DL3010: a local archive COPYed in and unpacked by a later RUN: ADD would have done it in one step. */
function archiveRule(analysis: Analysis, report: Report): void {
  forEachStage(analysis, (stage, instructions) => {
    const copied = new Map<string, LintInstruction>();
    for (const instruction of instructions) {
      const typed = instruction.typed;
      if (typed?.kind === 'copy' && typed.from === undefined) {
        for (const source of typed.sources) if (ARCHIVE.test(source)) copied.set(source.slice(source.lastIndexOf('/') + 1), instruction);
      }
      const script = analysis.scripts.get(instruction);
      if (!script) continue;
      for (const command of commandsOf(script.parsed, ['tar'])) {
        const extract = command.args.some((a) => /^-?[a-zA-Z]*x/.test(a) && !a.startsWith('--') || a === '--extract' || a === '--get');
        const file = command.args.find((a) => copied.has(a.slice(a.lastIndexOf('/') + 1)));
        const copy = file !== undefined ? copied.get(file.slice(file.lastIndexOf('/') + 1)) : undefined;
        if (extract && copy) report('DL3010', copy.line);
      }
    }
    void stage;
  });
}

/** A LABEL key or value as written, without its surrounding quotes. */
const unquote = (word: string): string => word.replace(/^"(.*)"$/s, '$1').replace(/^'(.*)'$/s, '$1');

/** hadolint's label keys: lowercase, starting with a letter and ending in a letter or digit, no reserved namespace. */
function validLabelKey(key: string): boolean {
  if (hasVariable(key)) return true;
  if (/^(com\.docker\.|io\.docker\.|org\.dockerproject\.)/.test(key)) return false;
  return /^[a-z]([a-z0-9._/-]*[a-z0-9])?$/.test(key) && !key.includes('..') && !key.includes('--');
}

/** DL3064's credentials, as hadolint has them: names holding one of these words (any case)… */
const SENSITIVE_WORDS = ['api_key', 'client_key', 'password', 'private', 'secret', 'token', 'username'];
/** …and well-known credential variables that hold none of them. */
const SENSITIVE_NAMES = new Set(['APPLICATION_KEY', 'AWS_ACCESS_KEY_ID', 'CI_DEPLOY_USER', 'DOCKER_EMAIL', 'FACEBOOK_APP_ID', 'HEROKU_API_USER', 'OKTA_AUTHN_GROUPID', 'OKTA_CLIENT_ORGURL', 'OKTA_OAUTH2_CLIENTID', 'STRIPE_DEVICE_NAME', 'TRAVIS_OS_NAME', 'TRAVIS_SECURE_ENV_VARS', 'TRAVIS_SUDO']);
function sensitiveName(name: string): boolean {
  const lower = name.toLowerCase();
  return SENSITIVE_NAMES.has(name.toUpperCase()) || SENSITIVE_WORDS.some((word) => lower.includes(word));
}

/** A cache or tmpfs mount whose target holds the path (as `.cache/pip` is under any home). */
function cacheMountUnder(instruction: LintInstruction, part: string): boolean {
  const typed = instruction.typed;
  return typed?.kind === 'run' && typed.mounts.some((m) => (m.type === 'cache' || m.type === 'tmpfs') && (m.target ?? '').includes(part));
}

/** Whether a word is an SPDX license identifier: the SPDX list the CycloneDX library ships, loaded on first use. */
let spdxIds: ((value: string) => boolean) | undefined;
function isSpdxId(value: string): boolean {
  spdxIds ??= (createRequire(import.meta.url)('@cyclonedx/cyclonedx-library/SPDX') as typeof Spdx).isSupportedSpdxId;
  return spdxIds(value);
}

/** The label-schema formats and the rule each breaks, as hadolint checks them. */
const LABEL_FORMATS: Record<string, { code: string; ok: (value: string) => boolean }> = {
  // An absolute URI (RFC 3986): a scheme, then no spaces, no characters URIs never hold, only whole %-escapes.
  url: { code: 'DL3052', ok: (v) => /^[a-z][a-z0-9+.-]*:[^\s<>"{}|\\^`]*$/i.test(v) && !/%(?![0-9a-f]{2})/i.test(v) },
  rfc3339: { code: 'DL3053', ok: (v) => /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v)) },
  // One license identifier (an expression such as `MIT OR Apache-2.0` is not one).
  spdx: { code: 'DL3054', ok: (v) => isSpdxId(v) },
  // A short (7) or full (40) lowercase commit hash.
  hash: { code: 'DL3055', ok: (v) => /^([0-9a-f]{7}|[0-9a-f]{40})$/.test(v) },
  // semver.org's version: no `v` before it.
  semver: { code: 'DL3056', ok: (v) => /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(v) },
  email: { code: 'DL3058', ok: (v) => /^[^\s@<>()[\],;:"]+@[^\s@<>()[\],;:"]+\.[^\s@<>()[\],;:"]+$/.test(v) },
};

/**
 * DL3049–DL3058, hadolint's label-schema rules. A stage lacking a schema label is reported at its FROM (see
 * stagesLacking); every LABEL instruction is checked as written: labels outside the schema (strict-labels),
 * empty values, values not in their format. A value holding a variable is not known here and not checked.
 */
function labelSchemaRules(analysis: Analysis, report: Report): void {
  const { labelSchema, strictLabels } = analysis.options;
  if (labelSchema.size === 0 && !strictLabels) return;
  const labelled = new Map<string, Set<number>>();
  for (const instruction of analysis.dockerfile.all) {
    if (instruction.typed?.kind !== 'label') continue;
    const pairs = instruction.typed.pairs.map((pair) => ({ key: unquote(pair.key), value: unquote(pair.value) }));
    const extra = pairs.filter((pair) => !labelSchema.has(pair.key)).map((pair) => pair.key);
    if (strictLabels && extra.length > 0) report('DL3050', instruction.line, `Superfluous label(s) present: ${extra.join(', ')}`);
    for (const { key, value } of pairs) {
      const format = labelSchema.get(key);
      if (format === undefined) continue;
      const stages = labelled.get(key) ?? new Set<number>();
      labelled.set(key, stages.add(instruction.stage));
      if (value === '') report('DL3051', instruction.line, `Label \`${key}\` is empty.`);
      const check = LABEL_FORMATS[format];
      if (check && !hasVariable(value) && !check.ok(value)) report(check.code, instruction.line, describe(check.code).replace('<label>', key));
    }
  }
  for (const name of labelSchema.keys()) {
    for (const stage of stagesLacking(analysis, (index) => labelled.get(name)?.has(index) ?? false, true)) report('DL3049', stage.from.line, `Label \`${name}\` is missing.`);
  }
}
