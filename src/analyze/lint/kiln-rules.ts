/**
 * kiln's own rules (KLxxx): the advice no Dockerfile linter can give without the image — who the image's
 * users are, how big the base is next to its slim variant, its digest — and a few that hadolint's users
 * ask for (secrets in values, ADD of a URL unchecked, COPY . before the manifests, toolchains left in).
 */
import { parseReference } from '../../reference/reference.js';
import type { Analysis } from './context.js';
import type { Report } from './hadolint-rules.js';
import { type ShellCommand, commandsOf, positionalArgs, programName } from './shell-words.js';

/** Values that are credentials whatever their name: well-known token shapes, keys, passwords in URLs. */
const SECRET_VALUES: readonly { readonly what: string; readonly pattern: RegExp }[] = [
  { what: 'an AWS access key', pattern: /\b(AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { what: 'a GitHub token', pattern: /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b/ },
  { what: 'a GitLab token', pattern: /\bglpat-[A-Za-z0-9_-]{20,}\b/ },
  { what: 'a Slack token', pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/ },
  { what: 'an npm token', pattern: /\bnpm_[A-Za-z0-9]{36}\b/ },
  { what: 'a Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/ },
  { what: 'a Stripe key', pattern: /\b[sr]k_live_[0-9a-zA-Z]{24,}\b/ },
  { what: 'a private key', pattern: /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/ },
  { what: 'a password in a URL', pattern: /\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@$]+:[^\s@/$]+@[^\s]+/i },
];

const MANIFESTS = ['package.json', 'package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'requirements.txt', 'requirements', 'pyproject.toml', 'poetry.lock', 'Pipfile', 'Pipfile.lock', 'go.mod', 'go.sum', 'Gemfile', 'Gemfile.lock', 'composer.json', 'composer.lock', 'Cargo.toml', 'Cargo.lock', 'pom.xml', 'build.gradle', 'build.gradle.kts', 'mix.exs', 'mix.lock', '*.csproj'];

/** Commands that install a project's dependencies from its manifests. */
function installsDependencies(command: ShellCommand): boolean {
  const name = programName(command);
  const first = positionalArgs(command)[0] ?? '';
  switch (name) {
    case 'npm':
      return ['install', 'i', 'ci'].includes(first) && positionalArgs(command).length === 1;
    case 'yarn':
    case 'pnpm':
      return first === '' || first === 'install';
    case 'pip':
    case 'pip3':
      return first === 'install' && command.args.some((a) => a === '-r' || a === '--requirement' || a.startsWith('--requirement=') || a === '.');
    case 'poetry':
    case 'pipenv':
    case 'bundle':
    case 'composer':
      return first === 'install';
    case 'go':
      return first === 'mod' && positionalArgs(command)[1] === 'download';
    case 'cargo':
      return first === 'fetch';
    case 'mvn':
      return command.args.some((a) => a.startsWith('dependency:'));
    case 'dotnet':
      return first === 'restore';
    default:
      return false;
  }
}

/** A package that builds software (a compiler, make, headers): needed to build, not to run. */
export const TOOLCHAIN_PACKAGE = /^(gcc|g\+\+|gcc-\d+|g\+\+-\d+|clang|clang-\d+|make|cmake|build-essential|build-base|autoconf|automake|libtool|golang|golang-go|rustc|cargo|gfortran|[a-z0-9][a-z0-9.+-]*-dev|[a-z0-9][a-z0-9.+-]*-devel)(=.*)?$/;

const INSTALLERS: readonly { readonly names: readonly string[]; readonly install: readonly string[]; readonly remove: readonly string[] }[] = [
  { names: ['apt-get', 'apt'], install: ['install'], remove: ['purge', 'remove', 'autoremove'] },
  { names: ['apk'], install: ['add'], remove: ['del'] },
  { names: ['yum', 'dnf', 'microdnf'], install: ['install'], remove: ['remove', 'erase', 'autoremove'] },
];

export function kilnRules(analysis: Analysis, report: Report): void {
  const { dockerfile } = analysis;
  const target = dockerfile.stages[analysis.target];
  if (!target) return;

  // KL001: the final stage runs as root though a non-root user is there to run as.
  const finalState = analysis.after[analysis.target];
  const user = finalState?.user?.trim() ?? '';
  if (user === '') {
    const created = [...analysis.inFinalImage].flatMap((stage) =>
      (dockerfile.stages[stage]?.instructions ?? []).flatMap((instruction): { name: string; uid?: string }[] => {
        const script = analysis.scripts.get(instruction);
        if (!script) return [];
        const added = commandsOf(script.parsed, ['useradd', 'adduser']).flatMap((c) => {
          const name = positionalArgs(c, ['-u', '--uid', '-g', '--gid', '-G', '--groups', '-s', '--shell', '-d', '--home', '--home-dir', '-c', '--comment', '-h', '-k', '-e', '-f', '-K']).at(-1);
          const uid = c.args[c.args.findIndex((a) => a === '-u' || a === '--uid') + 1];
          return name === undefined ? [] : [{ name, ...(uid !== undefined && /^\d+$/.test(uid) ? { uid } : {}) }];
        });
        const echoed = /(?:^|\s)(?:echo|printf)\s+["']?([a-z_][a-z0-9_-]*):x:(\d+):/.exec(script.text);
        return [...added, ...(echoed?.[1] && Number(echoed[2]) !== 0 ? [{ name: echoed[1], uid: echoed[2] ?? '' }] : [])];
      }),
    );
    const fromImage = (analysis.imageOf(analysis.target)?.users ?? []).filter((u) => u.uid >= 1000 && u.uid < 65534).map((u) => ({ name: u.name, uid: String(u.uid) }));
    const candidate = created[0] ?? fromImage[0];
    if (candidate !== undefined) {
      const where = created[0] !== undefined ? 'this Dockerfile creates' : 'its base image has';
      const user = candidate.uid !== undefined ? `${candidate.uid}` : candidate.name;
      report('KL001', target.from.line, `The final stage runs as root, but ${where} the user ${candidate.name}: add \`USER ${user}\` after the steps that need root`);
    }
  }

  for (const stage of dockerfile.stages) {
    const base = analysis.bases[stage.index];
    if (base?.kind !== 'image') continue;
    const facts = analysis.options.images.get(base.ref);
    if (!facts) continue;
    // KL002: a much smaller variant of the base is in the store.
    if (facts.smaller && facts.size !== undefined) {
      report('KL002', stage.from.line, `${base.ref} is ${megabytes(facts.size)}; ${facts.smaller.ref}, in the store, is ${megabytes(facts.smaller.size)}: use it if the image needs no more`);
    }
    // KL003: a mutable tag where the digest is known.
    let digest: string | undefined;
    try {
      digest = parseReference(base.ref).digest;
    } catch {
      digest = undefined;
    }
    if (facts.pinned && digest === undefined && !base.variable) report('KL003', stage.from.line, `${base.ref} is a tag, which can move: pin it as FROM ${facts.pinned}`);
    // KL007 (image): the final stage's base image is a toolchain image.
    if (stage.index === analysis.target && dockerfile.stages.length === 1 && (facts.toolchains?.length ?? 0) > 0) {
      report('KL007', stage.from.line, `${base.ref} holds ${(facts.toolchains ?? []).slice(0, 4).join(', ')}: build in a stage FROM it, then COPY --from the result into a smaller runtime base`);
    }
  }

  for (const instruction of dockerfile.all) {
    const typed = instruction.typed;
    // KL004: a secret in a value.
    const values = typed?.kind === 'arg' ? typed.args.flatMap((a) => (a.defaultValue !== undefined ? [[a.name, a.defaultValue] as const] : [])) : typed?.kind === 'env' ? typed.pairs.map((p) => [p.key, p.value] as const) : [];
    for (const [name, value] of values) {
      const found = SECRET_VALUES.find((s) => s.pattern.test(value));
      if (found) report('KL004', instruction.line, `The value of ${name} looks like ${found.what}: it is kept in the image's config and history; pass it with RUN --mount=type=secret instead`);
    }
    // KL005: ADD of a URL without --checksum.
    if (typed?.kind === 'add' && typed.checksum === undefined) {
      for (const source of typed.sources) if (/^https?:\/\//i.test(source)) report('KL005', instruction.line, `ADD ${source} without --checksum: the download is not verified; add --checksum=sha256:… (or download it in a RUN that checks it)`);
    }
  }

  for (const stage of dockerfile.stages) {
    // KL006: COPY of the whole context, then a dependency install, with no manifest copied before.
    let manifestCopied = false;
    let wholeContext: number | undefined;
    for (const instruction of stage.instructions) {
      const typed = instruction.typed;
      if (typed?.kind === 'copy' && typed.from === undefined) {
        const names = typed.sources.map((s) => s.replace(/\/+$/, '').replace(/^\.\//, ''));
        if (names.some((n) => n === '.' || n === '' || n === '*')) wholeContext ??= instruction.line;
        else if (names.some((n) => MANIFESTS.some((m) => (m.startsWith('*') ? n.endsWith(m.slice(1)) : n === m || n.endsWith(`/${m}`))))) manifestCopied = true;
      }
      const script = analysis.scripts.get(instruction);
      if (script && wholeContext !== undefined && !manifestCopied && script.parsed.commands.some(installsDependencies)) {
        report('KL006', wholeContext, 'COPY of the whole context comes before the dependencies are installed: any change to any file reinstalls them; COPY the manifests (package.json, requirements.txt, go.mod…) first, install, then COPY the rest');
        break;
      }
    }
  }

  // KL007: compilers or -dev packages installed in the final image and not removed in the same RUN.
  for (const stage of analysis.inFinalImage) {
    for (const instruction of dockerfile.stages[stage]?.instructions ?? []) {
      const script = analysis.scripts.get(instruction);
      if (!script) continue;
      for (const installer of INSTALLERS) {
        const installed = commandsOf(script.parsed, installer.names, installer.install).flatMap((c) => positionalArgs(c, ['-o', '-t', '--virtual', '-X', '--repository']).slice(1)).filter((p) => TOOLCHAIN_PACKAGE.test(p));
        if (installed.length === 0) continue;
        const removed = new Set(commandsOf(script.parsed, installer.names, installer.remove).flatMap((c) => positionalArgs(c, ['-o']).slice(1)));
        // apk add --virtual NAME … then apk del NAME removes the lot.
        const virtual = commandsOf(script.parsed, ['apk'], ['add']).some((c) => c.args.some((a, i) => (a === '--virtual' || a === '-t') && removed.has(c.args[i + 1] ?? '')));
        const kept = installed.filter((p) => !removed.has(p) && !removed.has(p.split('=')[0] ?? p));
        if (kept.length > 0 && !virtual) report('KL007', instruction.line, `${kept.slice(0, 4).join(', ')} stay${kept.length === 1 ? 's' : ''} in the final image: build in a stage of its own and COPY --from it, or remove ${kept.length === 1 ? 'it' : 'them'} in the same RUN`);
      }
    }
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)}MB`;
}
