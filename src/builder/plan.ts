/**
 * The build planner: typed Dockerfile instructions → per-stage lists of steps, each with the image
 * config after it, its history line, the operation that changes the filesystem (if any) and a cache
 * descriptor. Pure: no I/O. Base images are given to it as configs; everything Dockerfile-specific
 * (ARG scoping, variable expansion, ONBUILD, SHELL, CMD/ENTRYPOINT rules) is settled here, so the solver
 * only runs operations.
 */
import { posix } from 'node:path';
import { KilnError } from '../errors.js';
import { type Dockerfile, type Instruction, type Location, type RunMount, type Stage, instructionError, parseTrigger, shownInstruction } from '../dockerfile/instructions.js';
import { chompHeredoc } from '../dockerfile/parser.js';
import { expandWord } from '../dockerfile/shell.js';
import type { ContainerConfig, HealthConfig, ImageConfig } from '../oci/types.js';
import { type Platform, formatPlatform, parsePlatform, platformMatches } from '../oci/platform.js';
import { MAX_CONFIG_BYTES } from '../oci/limits.js';
import { NAME_MAX, PATH_MAX } from '../layer/apply.js';
import { goList, goPortSet, goQuotedList, healthcheckLine } from './history.js';
import { isGitUrl } from './git.js';

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
  /**
   * `--build-context NAME=…`: what a FROM, `--from` or `--mount from=` word names instead of an image or
   * of a stage of that name, as BuildKit's named contexts (the engine matches the word as BuildKit does).
   */
  readonly namedContext?: (word: string) => NamedContext | undefined;
  /** `--allow`: the entitlements the build grants (`security.insecure` lets `RUN --security=insecure` run). */
  readonly allow?: ReadonlySet<string>;
}

/** A named context's content: an image, the empty image, or a directory of the client's (walked as the context is). */
export type NamedContext = { readonly kind: 'image'; readonly ref: string } | { readonly kind: 'scratch' } | { readonly kind: 'local'; readonly name: string };

/** Where a stage starts from. */
export type Base = { readonly kind: 'scratch' } | { readonly kind: 'image'; readonly ref: string } | { readonly kind: 'stage'; readonly index: number };

/** A file source outside the current stage: the context, another stage's result, or an image. */
export type Source = { readonly kind: 'context'; readonly name?: string } | { readonly kind: 'stage'; readonly index: number } | { readonly kind: 'image'; readonly ref: string };

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
      /** `RUN --security=insecure`: the command runs privileged (every capability, no seccomp, /sys writable). */
      readonly security?: 'insecure';
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
      /** COPY --parents: a source keeps its path from the source's root (or from a `/./` in it) under the destination, a directory. */
      readonly parents?: true;
      /** ADD --keep-git-dir: a git source keeps its `.git`. */
      readonly keepGitDir?: true;
    }
  /** WORKDIR: the directories it makes are the user's (USER, resolved in the image as BuildKit's chown is). */
  | { readonly kind: 'mkdir'; readonly path: string; readonly user: string };

/** An instruction that changes only the config (ENV, LABEL, CMD, ...): a history entry, no layer. */
export interface ConfigChange {
  /** Where the instruction is (a `--label` flag's: the stage's FROM). */
  readonly location: Location;
  /** `[stage 2/5] LABEL a=b` style label for progress. */
  readonly name: string;
  /** Its history line; none for ONBUILD, which BuildKit does not record. */
  readonly createdBy?: string;
}

/**
 * What the solver commits as one image: an instruction, with the config-only instructions planned just
 * before it. Those get no image of their own (an image per LABEL would make 20,000 LABELs write 20,000
 * configs of up to 20,000 labels each), but each keeps its history entry and its progress line. A stage's
 * steps end with its last instruction, so every stage's result is an image.
 */
export interface Step {
  /** Where the instruction is; `original` as shown to people (control characters visible, cut when long). */
  readonly location: Location;
  /** `[stage 2/5] RUN make` style label for progress. */
  readonly name: string;
  /** The config-only instructions before this one, in order, committed with it. */
  readonly preceding: readonly ConfigChange[];
  readonly config: ContainerConfig;
  readonly author?: string;
  /** Its history line; none for ONBUILD, or for a stage of only a FROM given `--label`. */
  readonly createdBy?: string;
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

/** Whether a build for `platform` serves a FROM's `--platform` text (false for text that names no platform). */
function servesPlatform(platform: Platform, wanted: string): boolean {
  try {
    return wanted !== '' && platformMatches(platform, parsePlatform(wanted));
  } catch {
    return false;
  }
}

/** The automatic platform ARGs (TARGETPLATFORM & co.) for a native build. */
export function platformArgs(platform: Platform): Map<string, string> {
  const args = new Map<string, string>();
  for (const prefix of ['TARGET', 'BUILD']) {
    args.set(`${prefix}PLATFORM`, formatPlatform(platform));
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

/**
 * What a FROM, `--from` or `--mount from=` word names: an earlier stage, unless a named context of that
 * stage's name replaces it (as in BuildKit); else a named context; else an image.
 */
function resolveName(stages: readonly Stage[], word: string, before: number, options: PlanOptions): { readonly kind: 'stage'; readonly index: number } | NamedContext {
  const index = stageNamed(stages, word, before);
  const stageName = index === undefined ? undefined : stages[index]?.name;
  const named = options.namedContext?.(stageName ?? word);
  if (named) return named;
  return index !== undefined ? { kind: 'stage', index } : { kind: 'image', ref: word };
}

/** A `--from` or `--mount from=` source from what its word names (resolveName). */
function namedSource(location: Location, flag: string, named: Exclude<ReturnType<typeof resolveName>, { kind: 'stage' }>): Source {
  if (named.kind === 'scratch') throw instructionError(location, `${flag} names an empty build context (docker-image://scratch): there is nothing to read from it`);
  return named.kind === 'local' ? { kind: 'context', name: named.name } : named;
}

/** The image references a build needs from outside: stage bases and `--from` images, expanded. */
export function externalImages(dockerfile: Dockerfile, options: PlanOptions): string[] {
  const globals = globalArgValues(dockerfile, options);
  const refs = new Set<string>();
  for (const stage of dockerfile.stages) {
    const image = (word: string): void => {
      const named = resolveName(dockerfile.stages, word, stage.index, options);
      if (named.kind === 'image') refs.add(named.ref);
    };
    const base = expander(stage.location, dockerfile.escape, (n) => globals.get(n))(stage.base);
    if (base.toLowerCase() !== 'scratch') image(base);
    for (const instruction of stage.instructions) {
      if ((instruction.kind === 'copy' || instruction.kind === 'add') && instruction.from !== undefined) image(instruction.from);
      if (instruction.kind === 'run') {
        for (const mount of instruction.mounts) if (mount.from !== undefined) image(mount.from);
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

/** Config fields that instructions add entries to. */
type GrowingField = 'Labels' | 'ExposedPorts' | 'Volumes';
const GROWING_FIELDS: ReadonlySet<string> = new Set<GrowingField>(['Labels', 'ExposedPorts', 'Volumes']);

/** Strings in the order of their UTF-8 bytes, as Go sorts a map's keys when it writes JSON. */
function byteOrder(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** An object with its keys in Go's order: BuildKit's maps (labels, ports, volumes) are written sorted. */
function sortedKeys<T>(object: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(object).sort(([a], [b]) => byteOrder(a, b)));
}

/**
 * The container config while one stage is planned. Instructions change it in place, in time linear in
 * what they change, and `snapshot()` copies it out for a step that needs a config of its own: copying it
 * for every instruction made 20,000 LABELs take minutes. Fields keep their order (a new one goes last),
 * as object spreads of the config would keep it.
 */
class StageConfig {
  private readonly fields: Map<string, unknown>;
  private readonly growing = new Map<GrowingField, Map<string, object | string>>();
  private onBuild: string[] | undefined;
  /** The environment as ENVs left it (expansions read it); written to Env once an ENV changed it. */
  readonly env: Map<string, string>;
  private envChanged = false;
  /** The characters of the environment's and the labels' names and values. */
  private sizes = 0;

  constructor(config: ContainerConfig) {
    this.fields = new Map(Object.entries(config));
    this.env = envMap(config.Env);
    for (const [key, value] of [...this.env, ...Object.entries(config.Labels ?? {})]) this.sizes += key.length + value.length;
  }

  /** A lower bound of the config's size as JSON, in bytes: its environment and labels. */
  get bytes(): number {
    return this.sizes;
  }

  get<K extends 'User' | 'WorkingDir' | 'Shell'>(key: K): ContainerConfig[K] {
    return this.fields.get(key) as ContainerConfig[K];
  }

  set<K extends Exclude<keyof ContainerConfig, GrowingField | 'Env' | 'OnBuild'>>(key: K, value: ContainerConfig[K]): void {
    this.fields.set(key, value);
  }

  setEnv(key: string, value: string): void {
    const before = this.env.get(key);
    this.sizes += key.length + value.length - (before === undefined ? 0 : key.length + before.length);
    this.env.set(key, value);
    this.envChanged = true;
    if (!this.fields.has('Env')) this.fields.set('Env', null);
  }

  add(field: GrowingField, entries: Iterable<readonly [string, object | string]>): void {
    let map = this.growing.get(field);
    if (!map) {
      map = new Map(Object.entries((this.fields.get(field) as Record<string, object | string> | null | undefined) ?? {}));
      this.growing.set(field, map);
      if (!this.fields.has(field)) this.fields.set(field, null);
    }
    for (const [key, value] of entries) {
      const before = map.get(key);
      if (typeof value === 'string') this.sizes += key.length + value.length - (typeof before === 'string' ? key.length + before.length : 0);
      map.set(key, value);
    }
  }

  addOnBuild(trigger: string): void {
    this.onBuild ??= [...((this.fields.get('OnBuild') as readonly string[] | null | undefined) ?? [])];
    if (!this.fields.has('OnBuild')) this.fields.set('OnBuild', null);
    this.onBuild.push(trigger);
  }

  snapshot(): ContainerConfig {
    const config: Record<string, unknown> = {};
    for (const [key, value] of this.fields) {
      const grown = this.growing.get(key as GrowingField);
      if (key === 'Env' && this.envChanged) config[key] = [...this.env].map(([k, v]) => `${k}=${v}`);
      else if (key === 'OnBuild' && this.onBuild) config[key] = [...this.onBuild];
      else if (grown) config[key] = sortedKeys(Object.fromEntries(grown));
      else config[key] = GROWING_FIELDS.has(key) && value !== null && typeof value === 'object' ? sortedKeys(value as Record<string, unknown>) : value;
    }
    return config;
  }
}

/**
 * Refuses a value that would reach the OS with a NUL byte in it: paths, user names, command arguments
 * and environment variables are NUL-terminated strings to the kernel, so none can hold one.
 */
function refuseNul(location: Location, what: string, values: Iterable<string>): void {
  for (const value of values) {
    if (value.includes('\0')) throw instructionError(location, `${what} contains a NUL byte, which no path, user name, command argument or environment variable can contain`);
  }
}

/** Refuses a path no filesystem takes: with a NUL byte, a name over NAME_MAX bytes, or over PATH_MAX in all. */
function refusePaths(location: Location, what: string, paths: readonly string[]): void {
  refuseNul(location, what, paths);
  for (const path of paths) {
    const bytes = Buffer.byteLength(path);
    if (bytes > PATH_MAX) throw instructionError(location, `${what} is ${bytes} bytes long, more than the ${PATH_MAX} a path can have`);
    const name = path.split('/').find((part) => Buffer.byteLength(part) > NAME_MAX);
    if (name !== undefined) throw instructionError(location, `${what} has a name of ${Buffer.byteLength(name)} bytes, more than the ${NAME_MAX} a file name can have`);
  }
}

/** The characters of an image config's history lines: a lower bound of their JSON's size. */
function historyBytes(config: ImageConfig): number {
  return (config.history ?? []).reduce((sum, entry) => sum + (entry.created_by?.length ?? 0), 0);
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
  /**
   * A stage as the stages built on it see it: its config, and (as BuildKit passes a stage's state on)
   * the environment its RUNs saw, ARG values included.
   */
  type PlannedStage = StagePlan & {
    finalConfig: ContainerConfig;
    finalImage: { readonly author?: string };
    historyBytes: number;
    finalRunEnv: ReadonlyMap<string, string>;
  };
  const plans = new Map<number, PlannedStage>();

  const planStage = (stage: Stage): PlannedStage => {
    const existing = plans.get(stage.index);
    if (existing) return existing;
    const baseName = expander(stage.location, escape, (n) => globals.get(n))(stage.base);
    const dependsOn = new Set<number>();
    let base: Base;
    let config: ContainerConfig;
    let image: { readonly author?: string };
    /** What the base's history adds to the size of every config of the stage. */
    let history: number;
    let parentStage: Pick<PlannedStage, 'finalRunEnv'> | undefined;
    const named = baseName.toLowerCase() === 'scratch' ? ({ kind: 'scratch' } as const) : resolveName(stages, baseName, stage.index, options);
    if (named.kind === 'local') throw instructionError(stage.location, `FROM ${baseName}: a build context of files (--build-context ${baseName}=DIR) cannot be a stage's base in kiln; read it with COPY --from=${baseName} or RUN --mount=from=${baseName}`);
    const fromStage = named.kind === 'stage' ? named.index : undefined;
    if (named.kind === 'scratch') {
      base = { kind: 'scratch' };
      // BuildKit's empty image: the root as working directory, and the default PATH.
      config = { Env: [DEFAULT_PATH], WorkingDir: '/' };
      image = {};
      history = 0;
    } else if (fromStage !== undefined) {
      const parent = planStage(stages[fromStage] as Stage);
      base = { kind: 'stage', index: fromStage };
      dependsOn.add(fromStage);
      config = parent.finalConfig;
      image = parent.finalImage;
      history = parent.historyBytes;
      parentStage = parent;
    } else {
      const ref = named.kind === 'image' ? named.ref : baseName;
      base = { kind: 'image', ref };
      const baseImage = baseConfig(ref);
      config = baseImage.config ?? {};
      image = baseImage.author !== undefined ? { author: baseImage.author } : {};
      history = historyBytes(baseImage);
    }
    if (stage.platform !== undefined) {
      const wanted = expander(stage.location, escape, (n) => globals.get(n))(stage.platform);
      if (!servesPlatform(options.platform, wanted)) {
        throw instructionError(stage.location, `FROM --platform=${wanted}: kiln builds only for this machine's platform (${formatPlatform(options.platform)})`);
      }
    }

    // The base's ONBUILD triggers run first in this stage, then are cleared (they fire one level down only).
    const triggers = base.kind === 'scratch' || options.changesOnly ? [] : (config.OnBuild ?? []).map((t) => parseTrigger(t, `${dockerfile.file} (ONBUILD of ${baseName})`));
    if (triggers.length > 0 || (config.OnBuild && !options.changesOnly)) config = { ...config, OnBuild: null };

    // Docker gives every stage a PATH when its base has none (BuildKit adds it last).
    if (!options.changesOnly && !(config.Env ?? []).some((e) => e.startsWith('PATH='))) config = { ...config, Env: [...(config.Env ?? []), DEFAULT_PATH] };
    const current = new StageConfig(config);
    /**
     * The environment RUN sees and words expand with, as BuildKit keeps it: ENV and ARG values, the later
     * one winning (an ARG after an ENV of the same name overrides it here, not in the image's Env). A stage
     * on another starts from that one's, with its image's Env over it.
     */
    const runEnv = new Map<string, string>([...(parentStage?.finalRunEnv ?? []), ...current.env]);
    /** The ARGs this stage declared, in order, with their values (a stage on another sees its values in runEnv, not these). */
    const args = new Map<string, string | undefined>();
    const lookup = (name: string): string | undefined => runEnv.get(name);
    let shell: readonly string[] = config.Shell ?? DEFAULT_SHELL;
    let cmdSet = false;
    let author = image.author;
    const steps: Step[] = [];
    /** Config-only instructions since the last step: they go into the next one. */
    let preceding: ConfigChange[] = [];
    const total = triggers.length + stage.instructions.length;
    const isTarget = stage.index === targetIndex;
    const instructions: Instruction[] = [...triggers, ...stage.instructions];
    const stageLabel = stage.name ?? `stage-${stage.index}`;
    const shown = (location: Location): Location => ({ file: location.file, startLine: location.startLine, endLine: location.endLine, original: shownInstruction(location.original) });
    /** Makes a step of an instruction and the config-only ones before it, with the config as it is now. */
    const addStep = (location: Location, name: string, createdBy: string | undefined, operation: Operation | undefined, extra: unknown): void => {
      const stepConfig = current.snapshot();
      const before = preceding.map((change) => ({ ...change, location: shown(change.location) }));
      steps.push({
        location: shown(location),
        name,
        preceding: before,
        config: stepConfig,
        ...(author !== undefined ? { author } : {}),
        createdBy,
        ...(operation ? { operation } : {}),
        cacheDescriptor: JSON.stringify({ preceding: before.map((p) => p.createdBy), createdBy, config: stepConfig, extra: extra ?? null, author: author ?? null }),
      });
      preceding = [];
    };

    for (const [position, instruction] of instructions.entries()) {
      const expand = expander(instruction, escape, lookup);
      const label = `[${stageLabel} ${position + 1}/${total}] ${shownInstruction(instruction.original)}`;
      let createdBy: string | undefined = instruction.original;
      let operation: Operation | undefined;
      let extra: unknown;
      const workingDir = current.get('WorkingDir') || '/';
      switch (instruction.kind) {
        case 'arg': {
          // History names the ARGs as written, defaults expanded (BuildKit records neither a build argument nor a global's value).
          const written: string[] = [];
          for (const arg of instruction.args) {
            declaredArgs.add(arg.name);
            const defaultValue = arg.defaultValue !== undefined ? expand(arg.defaultValue) : undefined;
            const value = options.buildArgs.get(arg.name) ?? defaultValue ?? globals.get(arg.name);
            args.set(arg.name, value);
            if (value !== undefined) runEnv.set(arg.name, value);
            written.push(defaultValue !== undefined ? `${arg.name}=${defaultValue}` : arg.name);
          }
          createdBy = `ARG ${written.join(' ')}`;
          break;
        }
        case 'env': {
          const pairs = instruction.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
          refuseNul(instruction, 'an ENV name or value', pairs.flat());
          // The parser refuses a blank name as written; quotes or variables can still make it empty.
          const blank = instruction.pairs.find((_, i) => pairs[i]?.[0] === '');
          if (blank) throw instructionError(instruction, `ENV name ${blank.key} is empty once its quotes and variables are expanded: an environment variable needs a name`);
          for (const [key, value] of pairs) {
            current.setEnv(key, value);
            runEnv.set(key, value);
          }
          createdBy = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
          break;
        }
        case 'label': {
          const pairs = instruction.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
          current.add('Labels', pairs);
          createdBy = `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
          break;
        }
        case 'maintainer':
          author = instruction.value;
          createdBy = `MAINTAINER ${instruction.value}`;
          break;
        case 'workdir': {
          const path = posix.resolve(workingDir, expand(instruction.value));
          refusePaths(instruction, 'the WORKDIR path', [path]);
          current.set('WorkingDir', path);
          // BuildKit makes the directory (a layer, if an empty one) unless it is the root.
          if (path !== '/') operation = { kind: 'mkdir', path, user: current.get('User') ?? '' };
          createdBy = `WORKDIR ${path}`;
          break;
        }
        case 'user': {
          const user = expand(instruction.value);
          refuseNul(instruction, 'the USER name', [user]);
          current.set('User', user);
          createdBy = `USER ${user}`;
          break;
        }
        case 'stopsignal': {
          const signal = expand(instruction.value);
          current.set('StopSignal', signal);
          createdBy = `STOPSIGNAL ${signal}`;
          break;
        }
        case 'expose': {
          // BuildKit sorts the words as written, before it expands them.
          const ports = [...instruction.values].sort(byteOrder).flatMap((v) => exposedPorts(expand(v), instruction));
          current.add('ExposedPorts', ports.map((p) => [p, {}] as const));
          createdBy = `EXPOSE ${goPortSet(ports)}`;
          break;
        }
        case 'volume': {
          const volumes = instruction.values.map((v) => expand(v).trim());
          if (volumes.some((v) => v === '')) throw instructionError(instruction, 'VOLUME specified can not be an empty string');
          refusePaths(instruction, 'a VOLUME path', volumes);
          current.add('Volumes', volumes.map((v) => [v, {}] as const));
          createdBy = `VOLUME ${goList(volumes)}`;
          break;
        }
        case 'shell':
          shell = instruction.args;
          current.set('Shell', [...shell]);
          createdBy = `SHELL ${goList(shell)}`;
          break;
        case 'cmd': {
          const cmd = shellCommand(instruction.command, shell);
          refuseNul(instruction, 'the CMD command', cmd);
          current.set('Cmd', cmd);
          cmdSet = true;
          createdBy = `CMD ${goQuotedList(cmd)}`;
          break;
        }
        case 'entrypoint': {
          const entrypoint = shellCommand(instruction.command, shell);
          refuseNul(instruction, 'the ENTRYPOINT command', entrypoint);
          current.set('Entrypoint', entrypoint);
          if (!cmdSet) current.set('Cmd', null);
          createdBy = `ENTRYPOINT ${goQuotedList(entrypoint)}`;
          break;
        }
        case 'healthcheck': {
          let health: HealthConfig;
          if (instruction.none) health = { Test: ['NONE'] };
          else {
            const command = instruction.command;
            const test = command === undefined ? [] : command.form === 'exec' ? ['CMD', ...command.args] : ['CMD-SHELL', command.line];
            refuseNul(instruction, 'the HEALTHCHECK command', test);
            health = {
              Test: test,
              ...(instruction.interval !== undefined ? { Interval: instruction.interval } : {}),
              ...(instruction.timeout !== undefined ? { Timeout: instruction.timeout } : {}),
              ...(instruction.startPeriod !== undefined ? { StartPeriod: instruction.startPeriod } : {}),
              ...(instruction.startInterval !== undefined ? { StartInterval: instruction.startInterval } : {}),
              ...(instruction.retries !== undefined ? { Retries: instruction.retries } : {}),
            };
          }
          current.set('Healthcheck', health);
          createdBy = healthcheckLine(health);
          break;
        }
        case 'onbuild':
          current.addOnBuild(instruction.trigger);
          createdBy = undefined;
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
          let agents = 0;
          const mounts: ResolvedMount[] = instruction.mounts.map((mount) => {
            // An ssh mount's socket is BuildKit's /run/buildkit/ssh_agent.N unless placed, N counting the RUN's ssh mounts.
            const socket = mount.type === 'ssh' ? `/run/buildkit/ssh_agent.${agents++}` : undefined;
            const target = mount.target !== undefined ? posix.resolve(workingDir, expand(mount.target)) : (socket ?? `/run/secrets/${mount.id ?? posix.basename(mount.source ?? '')}`);
            const from = mount.from !== undefined ? expand(mount.from) : undefined;
            let fromSource: Source | undefined;
            if (mount.type === 'bind' || (mount.type === 'cache' && from !== undefined)) {
              if (from === undefined) fromSource = { kind: 'context' };
              else {
                const named = resolveName(stages, from, stage.index, options);
                if (named.kind === 'stage') {
                  dependsOn.add(named.index);
                  planStage(stages[named.index] as Stage);
                  fromSource = { kind: 'stage', index: named.index };
                } else fromSource = namedSource(instruction, `--mount from=${from}`, named);
              }
            }
            if (mount.type === 'secret' && mount.id === undefined && mount.source === undefined && mount.target === undefined) {
              throw instructionError(instruction, '--mount=type=secret needs an id (id=mysecret)');
            }
            const source = mount.source !== undefined ? expand(mount.source) : undefined;
            refusePaths(instruction, 'a --mount target', [target]);
            refuseNul(instruction, 'a --mount source or id', [...(source !== undefined ? [source] : []), ...(mount.id !== undefined ? [mount.id] : [])]);
            return { ...mount, target, ...(source !== undefined ? { source } : {}), ...(fromSource ? { fromSource } : {}) };
          });
          // BuildKit's history line names every ARG in scope, valued as the command sees it ('' when unset).
          const buildArgs = [...args.keys()].map((k) => `${k}=${runEnv.get(k) ?? ''}`);
          const network = instruction.network ?? 'default';
          const user = current.get('User') ?? '';
          // The first ssh mount is the command's agent, unless its environment names one (BuildKit's rule).
          const agent = mounts.find((m) => m.type === 'ssh');
          const environment = [...runEnv, ...(agent && !runEnv.has('SSH_AUTH_SOCK') ? [['SSH_AUTH_SOCK', agent.target] as const] : [])].map(([k, v]) => `${k}=${v}`);
          refuseNul(instruction, 'the RUN command', argv);
          refuseNul(instruction, 'the environment of RUN (its ENV and ARG values)', environment);
          refuseNul(instruction, 'the user of RUN', [user]);
          refusePaths(instruction, 'the working directory of RUN', [workingDir]);
          const { security } = instruction;
          if (security && !options.allow?.has('security.insecure')) {
            throw instructionError(instruction, 'RUN --security=insecure runs its command privileged (every capability, no seccomp), which the build must grant: add --allow security.insecure');
          }
          operation = { kind: 'exec', args: argv, env: environment, user, cwd: workingDir, network, ...(security ? { security } : {}), mounts, scripts };
          createdBy = `RUN ${buildArgs.length > 0 ? `|${buildArgs.length} ${buildArgs.join(' ')} ` : ''}${argv.join(' ')}`;
          // Proxy args reach RUN's environment but neither history nor the cache key (Docker's rule).
          const proxies = PROXY_ARGS.flatMap((name) => (options.buildArgs.has(name) && !args.has(name) ? [`${name}=${options.buildArgs.get(name) ?? ''}`] : []));
          refuseNul(instruction, 'a proxy build argument', proxies);
          if (proxies.length > 0) operation = { ...operation, env: [...operation.env, ...proxies] };
          extra = { args: argv, env: operation.env.filter((e) => !proxies.includes(e)), user: operation.user, cwd: operation.cwd, network, ...(security ? { security } : {}), mounts: mounts.map((m) => ({ ...m })), scripts };
          break;
        }
        case 'copy':
        case 'add': {
          let from: Source = { kind: 'context' };
          if (instruction.from !== undefined) {
            const word = expand(instruction.from);
            const named = resolveName(stages, word, stage.index, options);
            if (named.kind === 'stage') {
              if (named.index === stage.index) throw instructionError(instruction, `COPY --from=${word} refers to the stage it is in`);
              dependsOn.add(named.index);
              planStage(stages[named.index] as Stage);
              from = { kind: 'stage', index: named.index };
            } else from = namedSource(instruction, `--from=${word}`, named);
          }
          const heredocNames = new Set(instruction.heredocs.map((h) => h.name));
          const inline: InlineFile[] = instruction.heredocs.map((doc) => {
            const content = doc.chomp ? chompHeredoc(doc.content) : doc.content;
            return { name: doc.name, content: doc.expand ? expand(content) : content };
          });
          const sources = instruction.sources.filter((s) => !/^\d*<<-?/.test(s) || !heredocNames.has(s.replace(/^\d*<<-?\s*["']?|["']$/g, ''))).map(expand);
          const rawDestination = expand(instruction.destination);
          const destinationIsDir = rawDestination.endsWith('/') || rawDestination === '.' || rawDestination.endsWith('/.') || sources.length + inline.length > 1 || instruction.parents === true || (instruction.kind === 'add' && sources.some(isGitUrl));
          const destination = posix.resolve(workingDir, rawDestination);
          const chmod = instruction.chmod !== undefined ? Number.parseInt(instruction.chmod, 8) : undefined;
          const chown = instruction.chown !== undefined ? expand(instruction.chown) : undefined;
          const what = instruction.kind.toUpperCase();
          refusePaths(instruction, `the ${what} destination`, [destination]);
          refuseNul(instruction, `a ${what} source`, sources);
          refusePaths(instruction, `a ${what} heredoc's file name`, inline.map((file) => file.name));
          refuseNul(instruction, `the ${what} --chown`, chown !== undefined ? [chown] : []);
          // A source named again is copied again over what its earlier copies wrote: its last naming alone
          // decides the result (a COPY that named one directory 20,000 times took 20 s).
          const lastNamed = new Map(sources.map((source, i) => [source, i]));
          operation = {
            kind: 'copy',
            from,
            sources: sources.filter((source, i) => lastNamed.get(source) === i),
            inline,
            destination,
            destinationIsDir,
            ...(chown !== undefined ? { chown } : {}),
            ...(chmod !== undefined ? { chmod } : {}),
            add: instruction.kind === 'add',
            ...(instruction.checksum !== undefined ? { checksum: expand(instruction.checksum) } : {}),
            excludes: instruction.excludes.map(expand),
            ...(instruction.parents ? { parents: true as const } : {}),
            ...(instruction.keepGitDir ? { keepGitDir: true as const } : {}),
          };
          // BuildKit's line: no flags, the sources, the heredocs by name, the destination.
          createdBy = `${what} ${[...sources, ...instruction.heredocs.map((h) => `<<${h.name}`), rawDestination].join(' ')}`;
          extra = { ...operation, user: current.get('User') ?? '' };
          break;
        }
      }
      history += createdBy?.length ?? 0;
      // `--label` goes into the target's config after its last instruction, with no history line (BuildKit's way).
      if (isTarget && position === instructions.length - 1 && Object.keys(options.labels).length > 0) current.add('Labels', Object.entries(options.labels));
      if (history + current.bytes > MAX_CONFIG_BYTES) {
        throw instructionError(instruction, `the image config would be more than ${MAX_CONFIG_BYTES} bytes (8 MiB), the most kiln's store reads: keep big values out of ENV, LABEL and build arguments (put files in the build context and COPY them)`);
      }
      if (operation) addStep(instruction, label, createdBy, operation, extra);
      else preceding.push({ location: instruction, name: label, ...(createdBy !== undefined ? { createdBy } : {}) });
    }
    if (isTarget && instructions.length === 0 && Object.keys(options.labels).length > 0) {
      // A target of only a FROM: its image is the base's with the labels, and no history line more.
      current.add('Labels', Object.entries(options.labels));
      preceding.push({ location: stage.location, name: `[${stageLabel}] --label` });
    }
    // The stage ends with its last instruction: the config-only ones at its end make its last step.
    const last = preceding.pop();
    if (last) addStep(last.location, last.name, last.createdBy, undefined, undefined);
    const plan = {
      index: stage.index,
      ...(stage.name ? { name: stage.name } : {}),
      base,
      platform: options.platform,
      steps,
      dependsOn: [...dependsOn],
      finalConfig: current.snapshot(),
      finalImage: { ...image, ...(author !== undefined ? { author } : {}) },
      historyBytes: history,
      finalRunEnv: runEnv,
    };
    plans.set(stage.index, plan);
    return plan;
  };

  planStage(stages[targetIndex] as Stage);
  const unusedBuildArgs = [...options.buildArgs.keys()].filter((name) => !declaredArgs.has(name) && !PROXY_ARGS.includes(name));
  return {
    stages: [...plans.values()].sort((a, b) => a.index - b.index).map(({ finalConfig: _c, finalImage: _i, historyBytes: _h, finalRunEnv: _e, ...rest }) => rest),
    target: targetIndex,
    unusedBuildArgs,
  };
}
