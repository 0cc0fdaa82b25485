/**
 * The build planner: typed Dockerfile instructions → per-stage lists of steps, each with the image
 * config after it, its history line, the operation that changes the filesystem (if any) and a cache
 * descriptor. Pure: no I/O. Base images are given to it as configs; everything Dockerfile-specific
 * (ARG scoping, variable expansion, ONBUILD, SHELL, CMD/ENTRYPOINT rules) is settled here, so the solver
 * only runs operations.
 */
import { posix } from 'node:path';
import { KilnError } from '../errors.js';
import { type Dockerfile, type Instruction, type Location, type RunMount, type Stage, instructionError, parseTrigger } from '../dockerfile/instructions.js';
import { chompHeredoc } from '../dockerfile/parser.js';
import { expandWord } from '../dockerfile/shell.js';
import type { ContainerConfig, HealthConfig, ImageConfig } from '../oci/types.js';

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface PlanOptions {
  readonly buildArgs: ReadonlyMap<string, string>;
  /** `--target`: the stage to build (name or index); the last stage when absent. */
  readonly target?: string;
  readonly platform: Platform;
  /** `--label`: added to the target's config. */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Plan the instructions as `import -c`/`commit -c` apply them to an existing config: no default PATH is
   * added and the base's ONBUILD triggers do not run.
   */
  readonly changesOnly?: boolean;
}

/** Where a stage starts from. */
export type Base = { readonly kind: 'scratch' } | { readonly kind: 'image'; readonly ref: string } | { readonly kind: 'stage'; readonly index: number };

/** A file source outside the current stage: the context, another stage's result, or an image. */
export type Source = { readonly kind: 'context' } | { readonly kind: 'stage'; readonly index: number } | { readonly kind: 'image'; readonly ref: string };

export interface InlineFile {
  readonly name: string;
  readonly content: string;
}

export interface ResolvedMount extends RunMount {
  readonly target: string;
  /** For bind mounts and cache mounts with `from`: where the files come from. */
  readonly fromSource?: Source;
}

export type Operation =
  | {
      readonly kind: 'exec';
      readonly args: readonly string[];
      readonly env: readonly string[];
      readonly user: string;
      readonly cwd: string;
      readonly network: 'none' | 'host' | 'default';
      readonly mounts: readonly ResolvedMount[];
      /** A heredoc script run as a file (`RUN <<EOF` with a #! line): placed read-only at /dev/pipes/<name>. */
      readonly scripts: readonly InlineFile[];
    }
  | {
      readonly kind: 'copy';
      readonly from: Source;
      readonly sources: readonly string[];
      readonly inline: readonly InlineFile[];
      readonly destination: string;
      /** The destination names a directory (ends in '/', or several sources). */
      readonly destinationIsDir: boolean;
      readonly chown?: string;
      readonly chmod?: number;
      /** ADD: local archives are extracted, URLs are downloaded. */
      readonly add: boolean;
      readonly checksum?: string;
      readonly excludes: readonly string[];
    }
  | { readonly kind: 'mkdir'; readonly path: string };

export interface Step {
  readonly location: Location;
  /** `[stage 2/5] RUN make` style label for progress. */
  readonly name: string;
  readonly config: ContainerConfig;
  readonly author?: string;
  readonly createdBy: string;
  readonly operation?: Operation;
  /** Everything besides the parent image and file contents that decides this step's result. */
  readonly cacheDescriptor: string;
}

export interface StagePlan {
  readonly index: number;
  readonly name?: string;
  readonly base: Base;
  readonly platform: Platform;
  readonly steps: readonly Step[];
  /** Stages whose results this one reads (its base, COPY --from, RUN --mount from=). */
  readonly dependsOn: readonly number[];
}

export interface BuildPlan {
  readonly stages: readonly StagePlan[];
  readonly target: number;
  /** Build args that no ARG declared (Docker warns about them). */
  readonly unusedBuildArgs: readonly string[];
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

function platformString(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** The automatic platform ARGs (TARGETPLATFORM & co.) for a native build. */
export function platformArgs(platform: Platform): Map<string, string> {
  const args = new Map<string, string>();
  for (const prefix of ['TARGET', 'BUILD']) {
    args.set(`${prefix}PLATFORM`, platformString(platform));
    args.set(`${prefix}OS`, platform.os);
    args.set(`${prefix}ARCH`, platform.architecture);
    args.set(`${prefix}VARIANT`, platform.variant ?? '');
  }
  return args;
}

/** Expands words with the given lookup, turning lexer errors into errors on the instruction's line. */
function expander(location: Location, escape: '\\' | '`', lookup: (name: string) => string | undefined): (word: string) => string {
  return (word) => {
    try {
      return expandWord(word, lookup, { escape }).value;
    } catch (err) {
      throw instructionError(location, err instanceof Error ? err.message : String(err));
    }
  };
}

/** Which stage a `--from`/`FROM` word names: a stage name, an earlier stage index, or (undefined) an image. */
function stageNamed(stages: readonly Stage[], word: string, before: number): number | undefined {
  const lower = word.toLowerCase();
  const named = stages.findIndex((s, i) => i < before && s.name === lower);
  if (named >= 0) return named;
  if (/^\d+$/.test(word) && Number(word) < before) return Number(word);
  return undefined;
}

/** The image references a build needs from outside: stage bases and `--from` images, expanded. */
export function externalImages(dockerfile: Dockerfile, options: PlanOptions): string[] {
  const globals = globalArgValues(dockerfile, options);
  const refs = new Set<string>();
  for (const stage of dockerfile.stages) {
    const base = expander(stage.location, dockerfile.escape, (n) => globals.get(n))(stage.base);
    if (base.toLowerCase() !== 'scratch' && stageNamed(dockerfile.stages, base, stage.index) === undefined) refs.add(base);
    for (const instruction of stage.instructions) {
      if ((instruction.kind === 'copy' || instruction.kind === 'add') && instruction.from !== undefined && stageNamed(dockerfile.stages, instruction.from, stage.index) === undefined) {
        refs.add(instruction.from);
      }
      if (instruction.kind === 'run') {
        for (const mount of instruction.mounts) if (mount.from !== undefined && stageNamed(dockerfile.stages, mount.from, stage.index) === undefined) refs.add(mount.from);
      }
    }
  }
  return [...refs];
}

function globalArgValues(dockerfile: Dockerfile, options: PlanOptions): Map<string, string> {
  const values = platformArgs(options.platform);
  for (const arg of dockerfile.globalArgs) {
    const given = options.buildArgs.get(arg.name);
    const location = dockerfile.stages[0]?.location ?? { file: dockerfile.file, startLine: 0, endLine: 0, original: '' };
    const value = given ?? (arg.defaultValue !== undefined ? expander(location, dockerfile.escape, (n) => values.get(n))(arg.defaultValue) : undefined);
    if (value !== undefined) values.set(arg.name, value);
    else values.delete(arg.name);
  }
  return values;
}

function envMap(env: readonly string[] | null | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of env ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0) map.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return map;
}

function shellCommand(command: { form: 'exec'; args: readonly string[] } | { form: 'shell'; line: string }, shell: readonly string[]): string[] {
  return command.form === 'exec' ? [...command.args] : [...shell, command.line];
}

function exposedPorts(value: string, location: Location): string[] {
  const match = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(value);
  if (!match) throw instructionError(location, `invalid port ${JSON.stringify(value)}: use PORT[/PROTOCOL], e.g. 80/tcp`);
  const first = Number(match[1]);
  const last = match[2] !== undefined ? Number(match[2]) : first;
  if (first > 65535 || last > 65535 || last < first) throw instructionError(location, `invalid port range ${JSON.stringify(value)}`);
  const protocol = (match[3] ?? 'tcp').toLowerCase();
  return Array.from({ length: last - first + 1 }, (_v, i) => `${first + i}/${protocol}`);
}

/**
 * Plans a build. `baseConfig` gives the config of an external image named by `externalImages` (the
 * engine resolves them first).
 */
export function planBuild(dockerfile: Dockerfile, options: PlanOptions, baseConfig: (ref: string) => ImageConfig): BuildPlan {
  const { stages, escape } = dockerfile;
  const globals = globalArgValues(dockerfile, options);
  const declaredArgs = new Set<string>([...dockerfile.globalArgs.map((a) => a.name)]);
  const targetIndex = options.target === undefined ? stages.length - 1 : stageNamed(stages, options.target, stages.length);
  if (targetIndex === undefined) {
    const names = stages.flatMap((s) => (s.name ? [s.name] : []));
    throw new KilnError('INVALID_ARGUMENT', `target stage ${JSON.stringify(options.target)} could not be found in ${dockerfile.file}${names.length ? ` (stages: ${names.join(', ')})` : ''}`);
  }
  const plans = new Map<number, StagePlan & { finalConfig: ContainerConfig; finalImage: { readonly author?: string } }>();

  const planStage = (stage: Stage): StagePlan & { finalConfig: ContainerConfig; finalImage: { readonly author?: string } } => {
    const existing = plans.get(stage.index);
    if (existing) return existing;
    const baseName = expander(stage.location, escape, (n) => globals.get(n))(stage.base);
    const dependsOn = new Set<number>();
    let base: Base;
    let config: ContainerConfig;
    let image: { readonly author?: string };
    const fromStage = stageNamed(stages, baseName, stage.index);
    if (baseName.toLowerCase() === 'scratch') {
      base = { kind: 'scratch' };
      config = {};
      image = {};
    } else if (fromStage !== undefined) {
      const parent = planStage(stages[fromStage] as Stage);
      base = { kind: 'stage', index: fromStage };
      dependsOn.add(fromStage);
      config = parent.finalConfig;
      image = parent.finalImage;
    } else {
      base = { kind: 'image', ref: baseName };
      const { config: baseContainerConfig, author: baseAuthor } = baseConfig(baseName);
      config = baseContainerConfig ?? {};
      image = baseAuthor !== undefined ? { author: baseAuthor } : {};
    }
    if (stage.platform !== undefined) {
      const wanted = expander(stage.location, escape, (n) => globals.get(n))(stage.platform);
      if (wanted !== platformString(options.platform) && wanted !== `${options.platform.os}/${options.platform.architecture}`) {
        throw instructionError(stage.location, `FROM --platform=${wanted}: kiln builds only for this machine's platform (${platformString(options.platform)})`);
      }
    }

    // The base's ONBUILD triggers run first in this stage, then are cleared (they fire one level down only).
    const triggers = base.kind === 'scratch' || options.changesOnly ? [] : (config.OnBuild ?? []).map((t) => parseTrigger(t, `${dockerfile.file} (ONBUILD of ${baseName})`));
    if (triggers.length > 0 || (config.OnBuild && !options.changesOnly)) config = { ...config, OnBuild: null };

    // Docker gives every stage a PATH when its base has none.
    if (!options.changesOnly && !(config.Env ?? []).some((e) => e.startsWith('PATH='))) config = { ...config, Env: [DEFAULT_PATH, ...(config.Env ?? [])] };
    const env = envMap(config.Env);
    const args = new Map<string, string | undefined>();
    const lookup = (name: string): string | undefined => (env.has(name) ? env.get(name) : args.get(name));
    let shell: readonly string[] = config.Shell ?? DEFAULT_SHELL;
    let cmdSet = false;
    let author = image.author;
    const steps: Step[] = [];
    const total = triggers.length + stage.instructions.length;
    const isTarget = stage.index === targetIndex;
    const instructions: Instruction[] = [...triggers, ...stage.instructions];

    for (const [position, instruction] of instructions.entries()) {
      const expand = expander(instruction, escape, lookup);
      const label = `[${stage.name ?? `stage-${stage.index}`} ${position + 1}/${total}] ${instruction.original}`;
      let createdBy = instruction.original;
      let operation: Operation | undefined;
      let extra: unknown;
      const runArgs = (): string[] => [...args].flatMap(([k, v]) => (v === undefined || env.has(k) ? [] : [`${k}=${v}`]));
      switch (instruction.kind) {
        case 'arg':
          for (const arg of instruction.args) {
            declaredArgs.add(arg.name);
            const given = options.buildArgs.get(arg.name);
            const inherited = globals.get(arg.name);
            const value = given ?? (arg.defaultValue !== undefined ? expand(arg.defaultValue) : inherited);
            args.set(arg.name, value);
          }
          createdBy = `ARG ${instruction.args.map((a) => (a.defaultValue !== undefined ? `${a.name}=${a.defaultValue}` : a.name)).join(' ')}`;
          break;
        case 'env': {
          const pairs = instruction.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
          for (const [key, value] of pairs) env.set(key, value);
          config = { ...config, Env: [...env].map(([k, v]) => `${k}=${v}`) };
          createdBy = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
          break;
        }
        case 'label': {
          const pairs = instruction.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
          config = { ...config, Labels: { ...(config.Labels ?? {}), ...Object.fromEntries(pairs) } };
          createdBy = `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
          break;
        }
        case 'maintainer':
          author = instruction.value;
          createdBy = `MAINTAINER ${instruction.value}`;
          break;
        case 'workdir': {
          const path = posix.resolve(config.WorkingDir || '/', expand(instruction.value));
          config = { ...config, WorkingDir: path };
          operation = { kind: 'mkdir', path };
          createdBy = `WORKDIR ${path}`;
          break;
        }
        case 'user':
          config = { ...config, User: expand(instruction.value) };
          createdBy = `USER ${config.User ?? ''}`;
          break;
        case 'stopsignal':
          config = { ...config, StopSignal: expand(instruction.value) };
          createdBy = `STOPSIGNAL ${config.StopSignal ?? ''}`;
          break;
        case 'expose': {
          const ports = instruction.values.flatMap((v) => exposedPorts(expand(v), instruction));
          config = { ...config, ExposedPorts: { ...(config.ExposedPorts ?? {}), ...Object.fromEntries(ports.map((p) => [p, {}])) } };
          createdBy = `EXPOSE ${ports.join(' ')}`;
          break;
        }
        case 'volume': {
          const volumes = instruction.values.map(expand);
          if (volumes.some((v) => v.trim() === '')) throw instructionError(instruction, 'VOLUME specified can not be an empty string');
          config = { ...config, Volumes: { ...(config.Volumes ?? {}), ...Object.fromEntries(volumes.map((v) => [v, {}])) } };
          createdBy = `VOLUME [${volumes.map((v) => JSON.stringify(v)).join(', ')}]`;
          break;
        }
        case 'shell':
          shell = instruction.args;
          config = { ...config, Shell: [...shell] };
          createdBy = `SHELL ${JSON.stringify(shell)}`;
          break;
        case 'cmd':
          config = { ...config, Cmd: shellCommand(instruction.command, shell) };
          cmdSet = true;
          createdBy = `CMD ${JSON.stringify(config.Cmd)}`;
          break;
        case 'entrypoint':
          config = { ...config, Entrypoint: shellCommand(instruction.command, shell), ...(cmdSet ? {} : { Cmd: null }) };
          createdBy = `ENTRYPOINT ${JSON.stringify(config.Entrypoint)}`;
          break;
        case 'healthcheck': {
          let health: HealthConfig;
          if (instruction.none) health = { Test: ['NONE'] };
          else {
            const command = instruction.command;
            const test = command === undefined ? [] : command.form === 'exec' ? ['CMD', ...command.args] : ['CMD-SHELL', command.line];
            health = {
              Test: test,
              ...(instruction.interval !== undefined ? { Interval: instruction.interval } : {}),
              ...(instruction.timeout !== undefined ? { Timeout: instruction.timeout } : {}),
              ...(instruction.startPeriod !== undefined ? { StartPeriod: instruction.startPeriod } : {}),
              ...(instruction.startInterval !== undefined ? { StartInterval: instruction.startInterval } : {}),
              ...(instruction.retries !== undefined ? { Retries: instruction.retries } : {}),
            };
          }
          config = { ...config, Healthcheck: health };
          createdBy = `HEALTHCHECK ${JSON.stringify(health)}`;
          break;
        }
        case 'onbuild':
          config = { ...config, OnBuild: [...(config.OnBuild ?? []), instruction.trigger] };
          createdBy = `ONBUILD ${instruction.trigger}`;
          break;
        case 'run': {
          const scripts: InlineFile[] = [];
          let argv: string[];
          const heredoc = instruction.heredocs[0];
          if (instruction.command.form === 'shell' && heredoc) {
            const body = (doc: (typeof instruction.heredocs)[number]): string => (doc.chomp ? chompHeredoc(doc.content) : doc.content);
            const single = /^\d*<<-?\s*["']?([^"'\s]+)["']?\s*$/.exec(instruction.command.line.trim());
            if (single && instruction.heredocs.length === 1 && body(heredoc).startsWith('#!')) {
              scripts.push({ name: heredoc.name, content: body(heredoc) });
              argv = [`/dev/pipes/${heredoc.name}`];
            } else if (single && instruction.heredocs.length === 1) {
              argv = [...shell, body(heredoc)];
            } else {
              argv = [...shell, instruction.command.line + instruction.heredocs.map((doc) => `\n${doc.content}${doc.name}`).join('')];
            }
          } else argv = shellCommand(instruction.command, shell);
          const mounts: ResolvedMount[] = instruction.mounts.map((mount) => {
            const target = mount.target !== undefined ? posix.resolve(config.WorkingDir || '/', expand(mount.target)) : `/run/secrets/${mount.id ?? posix.basename(mount.source ?? '')}`;
            const from = mount.from !== undefined ? expand(mount.from) : undefined;
            let fromSource: Source | undefined;
            if (mount.type === 'bind' || (mount.type === 'cache' && from !== undefined)) {
              if (from === undefined) fromSource = { kind: 'context' };
              else {
                const index = stageNamed(stages, from, stage.index);
                if (index !== undefined) {
                  dependsOn.add(index);
                  planStage(stages[index] as Stage);
                  fromSource = { kind: 'stage', index };
                } else fromSource = { kind: 'image', ref: from };
              }
            }
            if (mount.type === 'secret' && mount.id === undefined && mount.source === undefined && mount.target === undefined) {
              throw instructionError(instruction, '--mount=type=secret needs an id (id=mysecret)');
            }
            return { ...mount, target, ...(mount.source !== undefined ? { source: expand(mount.source) } : {}), ...(fromSource ? { fromSource } : {}) };
          });
          const buildArgs = runArgs();
          const network = instruction.network ?? 'default';
          operation = { kind: 'exec', args: argv, env: [...[...env].map(([k, v]) => `${k}=${v}`), ...buildArgs], user: config.User ?? '', cwd: config.WorkingDir || '/', network, mounts, scripts };
          createdBy = `RUN ${buildArgs.length > 0 ? `|${buildArgs.length} ${buildArgs.join(' ')} ` : ''}${argv.join(' ')}`;
          // Proxy args reach RUN's environment but neither history nor the cache key (Docker's rule).
          const proxies = PROXY_ARGS.flatMap((name) => (options.buildArgs.has(name) && !args.has(name) ? [`${name}=${options.buildArgs.get(name) ?? ''}`] : []));
          if (proxies.length > 0) operation = { ...operation, env: [...operation.env, ...proxies] };
          extra = { args: argv, env: operation.env.filter((e) => !proxies.includes(e)), user: operation.user, cwd: operation.cwd, network, mounts: mounts.map((m) => ({ ...m })), scripts };
          break;
        }
        case 'copy':
        case 'add': {
          let from: Source = { kind: 'context' };
          if (instruction.from !== undefined) {
            const word = expand(instruction.from);
            const index = stageNamed(stages, word, stage.index);
            if (index !== undefined) {
              if (index === stage.index) throw instructionError(instruction, `COPY --from=${word} refers to the stage it is in`);
              dependsOn.add(index);
              planStage(stages[index] as Stage);
              from = { kind: 'stage', index };
            } else from = { kind: 'image', ref: word };
          }
          const heredocNames = new Set(instruction.heredocs.map((h) => h.name));
          const inline: InlineFile[] = instruction.heredocs.map((doc) => {
            const content = doc.chomp ? chompHeredoc(doc.content) : doc.content;
            return { name: doc.name, content: doc.expand ? expand(content) : content };
          });
          const sources = instruction.sources.filter((s) => !/^\d*<<-?/.test(s) || !heredocNames.has(s.replace(/^\d*<<-?\s*["']?|["']$/g, ''))).map(expand);
          const rawDestination = expand(instruction.destination);
          const destinationIsDir = rawDestination.endsWith('/') || rawDestination === '.' || rawDestination.endsWith('/.') || sources.length + inline.length > 1;
          const destination = posix.resolve(config.WorkingDir || '/', rawDestination);
          const chmod = instruction.chmod !== undefined ? Number.parseInt(instruction.chmod, 8) : undefined;
          const chown = instruction.chown !== undefined ? expand(instruction.chown) : undefined;
          operation = {
            kind: 'copy',
            from,
            sources,
            inline,
            destination,
            destinationIsDir,
            ...(chown !== undefined ? { chown } : {}),
            ...(chmod !== undefined ? { chmod } : {}),
            add: instruction.kind === 'add',
            ...(instruction.checksum !== undefined ? { checksum: expand(instruction.checksum) } : {}),
            excludes: instruction.excludes.map(expand),
          };
          const flags = [instruction.from !== undefined ? `--from=${expand(instruction.from)}` : '', chown !== undefined ? `--chown=${chown}` : '', instruction.chmod !== undefined ? `--chmod=${instruction.chmod}` : ''].filter(Boolean);
          createdBy = `${instruction.kind.toUpperCase()} ${[...flags, ...instruction.sources.map((s) => (heredocNames.size > 0 ? s : expand(s))), rawDestination].join(' ')}`;
          extra = { ...operation, user: config.User ?? '' };
          break;
        }
      }
      steps.push({
        location: instruction,
        name: label,
        config,
        ...(author !== undefined ? { author } : {}),
        createdBy,
        ...(operation ? { operation } : {}),
        cacheDescriptor: JSON.stringify({ createdBy, config, extra: extra ?? null, author: author ?? null }),
      });
    }
    if (isTarget && Object.keys(options.labels).length > 0) {
      config = { ...config, Labels: { ...(config.Labels ?? {}), ...options.labels } };
      const createdBy = `LABEL ${Object.entries(options.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`;
      steps.push({ location: stage.location, name: `[${stage.name ?? `stage-${stage.index}`}] --label`, config, createdBy, cacheDescriptor: JSON.stringify({ createdBy, config }) });
    }
    const plan = {
      index: stage.index,
      ...(stage.name ? { name: stage.name } : {}),
      base,
      platform: options.platform,
      steps,
      dependsOn: [...dependsOn],
      finalConfig: config,
      finalImage: { ...image, ...(author !== undefined ? { author } : {}) },
    };
    plans.set(stage.index, plan);
    return plan;
  };

  planStage(stages[targetIndex] as Stage);
  const unusedBuildArgs = [...options.buildArgs.keys()].filter((name) => !declaredArgs.has(name) && !PROXY_ARGS.includes(name));
  return {
    stages: [...plans.values()].sort((a, b) => a.index - b.index).map(({ finalConfig: _c, finalImage: _i, ...rest }) => rest),
    target: targetIndex,
    unusedBuildArgs,
  };
}
