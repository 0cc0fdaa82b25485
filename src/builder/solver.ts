/**
 * The solver runs a build plan: stages in dependency order (independent ones at the same time), each
 * step either found in the build cache or executed on a snapshot, its changes turned into a layer and
 * its result stored as an intermediate image (Docker's classic builder model: the cache is a chain of
 * images, so it survives restarts and `rmi` of the final image drops it). It knows nothing about
 * Dockerfiles: steps come with their config, history line, operation and cache descriptor.
 */
import { type Stats, mkdirSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { KilnError } from '../errors.js';
import { type Image, type Layer, chainIds } from '../image/image.js';
import { appendLayers, historyEntry, imageOf, setConfig, squash } from '../image/mutate.js';
import { applyLayer } from '../layer/apply.js';
import { EMPTY_TREE, overlayLayerEntries, removeMountStubs, treeLayerEntries } from '../layer/diff.js';
import { type EncodedLayer, type TarInput, encodeLayer, writeTar } from '../layer/tar/writer.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { randomHex } from '../random.js';
import { MediaType } from '../oci/mediatypes.js';
import type { ImageConfig } from '../oci/types.js';
import { MAX_CONFIG_BYTES, MAX_LAYERS } from '../oci/limits.js';
import { formatPlatform } from '../oci/platform.js';
import type { Ulimit } from '../runtime/resources.js';
import type { RuntimeName } from '../runtime/runtime.js';
import { guardUndo, shellQuote } from '../runtime/guard.js';
import { type MountSpec, type Snapshotter, entryInLayers, mount, removeTree, temporaryKey, unmount } from '../snapshot/snapshotter.js';
import type { Lease, LocalStore } from '../transport/store.js';
import type { BuildContext } from './context.js';
import { type CopyInput, DirectorySource, type ExtraHost, type SourceTree, copyAsLayer, mkdirAsLayer, resolveInRoot, runCopy, runExec, runMkdir, secretId } from './ops.js';
import { SecretMask } from './secret-mask.js';
import { cacheMountsOf } from './cache-mounts.js';
import type { BuildPlan, Operation, ResolvedMount, Source, StagePlan, Step } from './plan.js';
import { execFileAsync } from '../exec-file.js';
import { gitCommit, isGitUrl, parseGitUrl } from './git.js';

export type BuildEvent =
  | { readonly type: 'step'; readonly id: number; readonly name: string }
  | { readonly type: 'cached'; readonly id: number }
  | { readonly type: 'log'; readonly id: number; readonly stream: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'done'; readonly id: number; readonly seconds: number }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

export interface SolveOptions {
  readonly store: LocalStore;
  readonly lease: Lease;
  readonly snapshots: Snapshotter;
  /** The runtime of RUN steps, asked for when one runs (a fully cached build picks none). */
  readonly runtime: () => RuntimeName;
  readonly context: BuildContext;
  /** `--build-context NAME=DIR`: the directories COPY --from=NAME and RUN --mount from=NAME read, by name. */
  readonly namedContexts?: ReadonlyMap<string, BuildContext>;
  readonly secrets: ReadonlyMap<string, string>;
  /** Image IDs of the external images the plan names. */
  readonly images: ReadonlyMap<string, Digest>;
  /** `--cache-from`: images whose inline build cache may stand in for steps. */
  readonly cacheFrom: readonly CacheImage[];
  /** The number of the first step's progress events (those before are the build's own, such as pulls). */
  readonly firstStepId?: number;
  /** Unpacks a stored image into layer snapshots; returns the top snapshot's key. */
  readonly unpack: (imageId: Digest) => Promise<string | undefined>;
  /** Stage indexes whose steps must not come from the cache (`--no-cache` is all of them). */
  readonly noCache: (stage: number) => boolean;
  /** SOURCE_DATE_EPOCH: every created time is this, and file times are clamped to it. */
  readonly epoch?: number;
  /** The network of RUN steps that do not choose one. */
  readonly defaultNetwork: 'none' | 'host';
  /** `--add-host`: lines of every RUN step's /etc/hosts, which its cache key counts (as BuildKit's op does). */
  readonly extraHosts?: readonly ExtraHost[];
  /** `--ulimit`: every RUN step's rlimits, which its cache key counts (as BuildKit's op does). */
  readonly ulimits?: readonly Ulimit[];
  /** `--shm-size`: RUN steps' /dev/shm in bytes, which its cache key counts (BuildKit mounts it as a tmpfs of that size). */
  readonly shmSize?: number;
  /** `--ssh`: agents' sockets by id, for RUN --mount=type=ssh (not in any key, as in BuildKit). */
  readonly sshAgents?: ReadonlyMap<string, string>;
  readonly events: (event: BuildEvent) => void;
  /** Cancels the build: no step starts after it is aborted, and a running RUN's container is killed. */
  readonly signal?: AbortSignal;
}

/**
 * Where a stage stands after a step: the image so far (none yet for a scratch stage with no step) and
 * the cache key of the chain of steps that made it (the base image's ID at the start).
 *
 * A step's image is written to the store while the next step runs (its ID, the config's digest, is known
 * before): `written` settles when it is there, its cache record too. Until then the next step works from
 * what the state carries, the image's layers and the snapshot of its tree; whatever reads the image from
 * the store (another stage, a view of it) waits for `written` first. The writes of a stage's steps are
 * chained, each after its parent's, as before.
 */
interface State {
  readonly imageId?: Digest;
  readonly config: ImageConfig;
  readonly key: string;
  /** The image's layers, when this build has them at hand (else they are read from the store). */
  readonly layers?: readonly Layer[];
  /** The committed snapshot of the image's tree, when this build made it (else the image is unpacked). */
  readonly top?: string;
  readonly written: Promise<void>;
}

const WRITTEN: Promise<void> = Promise.resolve();

/**
 * What an executed step made: its layer, and the committed snapshot of the tree after it (none for a COPY
 * that ends its stage, whose files are not written: see execute).
 */
interface Executed {
  readonly layer: Layer;
  readonly top?: string;
  /** Settles when the layer's blob is in the store (see stepLayer). */
  readonly stored: Promise<void>;
}

/**
 * The build cache a kiln-built image carries in its config (like BuildKit's inline cache): per step of
 * its chain, the step's cache key and how many layers and history entries the image had after it. With
 * `--cache-from IMAGE` a build on another store reuses those steps without running them.
 */
export const INLINE_CACHE = 'kiln.cache';

/**
 * An image `--cache-from` offers: its config (whose inline cache is read at once), and the image itself,
 * brought into the store (held by the build's lease) only when one of its steps is taken; its ID then.
 */
export interface CacheImage {
  readonly config: ImageConfig;
  stored(): Promise<Digest>;
}
interface InlineCacheEntry {
  readonly key: string;
  readonly layers: number;
  readonly history: number;
}

/**
 * The state of a stored image (a base, or a step found in the cache). Its config is read when first asked
 * for: a build whose steps are all cached needs none of theirs.
 */
function storedState(store: LocalStore, imageId: Digest, key: string): State {
  let config: ImageConfig | undefined;
  return {
    imageId,
    key,
    written: WRITTEN,
    get config() {
      return (config ??= store.configOf(imageId));
    },
  };
}

function inlineCache(config: ImageConfig): InlineCacheEntry[] {
  const value = config[INLINE_CACHE];
  if (!Array.isArray(value)) return [];
  return value.filter((e): e is InlineCacheEntry => typeof e === 'object' && e !== null && typeof (e as InlineCacheEntry).key === 'string' && Number.isInteger((e as InlineCacheEntry).layers) && Number.isInteger((e as InlineCacheEntry).history));
}

const LOG_TAIL_LINES = 20;
const MAX_KEPT_LOG = 64 << 20;
/** The largest layer a step hashes in memory and writes beside the next steps (see stepLayer). */
const DEFERRED_LAYER_BYTES = 4 << 20;

async function* clampTimes(entries: AsyncIterable<TarInput> | Iterable<TarInput>, epoch: number | undefined): AsyncGenerator<TarInput> {
  for await (const entry of entries) {
    yield epoch !== undefined && entry.header.mtime > epoch ? { ...entry, header: { ...entry.header, mtime: epoch } } : entry;
  }
}

/**
 * Mounts a snapshot for a step; the returned function unmounts it. Should kiln die in between, its guard
 * unmounts it (see guard.ts), so that no mount outlives the build.
 */
async function mountGuarded(spec: MountSpec, target: string): Promise<() => Promise<void>> {
  const { startGuard } = await import('./spawn.js');
  const unguard = await guardUndo(`umount -l ${shellQuote(target)}`, startGuard);
  try {
    await mount(spec, target);
  } catch (err) {
    unguard();
    throw err;
  }
  return async () => {
    await unmount(target);
    unguard();
  };
}

/** How many failed steps' logs are kept: the newest. */
const KEPT_STEP_LOGS = 10;

/**
 * Keeps a failed step's whole output in a file only root can read (a step may print what it should not),
 * in the store's `step-logs` (`system prune` empties it); older ones beyond the newest few go. Returns the file's path.
 */
async function keepStepLog(dir: string, output: Buffer): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '')}-${randomHex(4)}.log`);
  await writeFile(file, output, { mode: 0o600 });
  const older = (await readdir(dir)).sort().reverse().slice(KEPT_STEP_LOGS);
  await Promise.all(older.map((name) => rm(join(dir, name), { force: true })));
  return file;
}

export class Solver {
  private nextStepId: number;
  private readonly stageResults = new Map<number, Promise<State>>();
  /** What runs beside the steps (their images' writes, see State; their clean-ups): the build ends after it, never before. */
  private readonly pending = new Set<Promise<void>>();
  /** The first failure of what ran beside the steps. */
  private failure: { readonly error: unknown } | undefined;

  constructor(
    private readonly plan: BuildPlan,
    private readonly options: SolveOptions,
  ) {
    this.nextStepId = options.firstStepId ?? 1;
  }

  /** Builds the target stage (and what it needs); returns its image ID. */
  async solve(): Promise<Digest> {
    try {
      const state = await this.stage(this.plan.target);
      if (!state.imageId) throw new KilnError('INVALID_INPUT', 'No image was generated. Is your Dockerfile empty?');
      await this.settled();
      if (this.failure) throw this.failure.error;
      return state.imageId;
    } finally {
      // A failed build still waits for what it started: nothing may outlive the build's lease.
      await this.settled();
    }
  }

  /** The number the next progress step would take (steps after the build's, such as a cache export, go on from it). */
  get nextStep(): number {
    return this.nextStepId;
  }

  /** The images of the stages the build ran (each stage's last), once solve has settled. */
  async stageImages(): Promise<Digest[]> {
    const states = await Promise.all(this.stageResults.values());
    return states.flatMap((state) => (state.imageId ? [state.imageId] : []));
  }

  private async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /**
   * Runs `work` once `after` has settled well (an image's write after its parent's), beside the steps;
   * the returned promise is its outcome, and a failure is also the build's (see solve).
   */
  private background(after: Promise<void>, work: () => Promise<void>): Promise<void> {
    const outcome = after.then(work);
    const tracked = outcome.then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= { error };
      },
    );
    this.pending.add(tracked);
    void tracked.then(() => this.pending.delete(tracked));
    return outcome;
  }

  /**
   * `--squash`: the layers the build added on top of the target's base image become one layer. The
   * build's history entries stay (as empty layers) and a `merge` entry carries the new layer, as
   * Docker's classic builder records it. Returns the new image's ID (or the image as it was when it
   * has at most one layer of its own).
   */
  async squash(imageId: Digest): Promise<Digest> {
    const { store, lease, epoch } = this.options;
    const base = await this.baseOf(this.plan.target);
    const baseLayers = base ? store.configOf(base).rootfs.diff_ids.length : 0;
    if (store.configOf(imageId).rootfs.diff_ids.length - baseLayers <= 1) return imageId;
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const lower = await this.viewOf(base, cleanups);
      const upper = await this.viewOf(imageId, cleanups);
      const entries = clampTimes(treeLayerEntries(lower, upper), epoch);
      const encoded = encodeLayer(entries);
      const row = await store.putEncodedLayer(lease, encoded.tar, () => ({ mediaType: MediaType.ociLayer, diffSize: encoded.diffSize() }));
      const stored = async (id: Digest): Promise<Image> => store.image(store.db.image(id) as NonNullable<ReturnType<typeof store.db.image>>);
      const built = setConfig(await stored(imageId), { [INLINE_CACHE]: undefined });
      const merge = historyEntry({ created: this.created(), createdBy: '', comment: `merge ${imageId} to ${base ?? 'scratch'}` });
      const image = squash(built, base && (await stored(base)), store.storedLayer(row), merge);
      const { id } = await store.writeImage(lease, { image, names: [] }, 'squashed image', base ?? '');
      return id;
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup();
    }
  }

  /** Runs `consume` on `imageId`'s filesystem (a view of it, gone after; read it only): `-o/--output`. */
  async withTree<T>(imageId: Digest, consume: (root: string) => Promise<T>): Promise<T> {
    const cleanups: (() => Promise<void>)[] = [];
    try {
      return await consume(await this.viewOf(imageId, cleanups));
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup();
    }
  }

  /** The external image a stage's chain of bases starts from (undefined for scratch). */
  private async baseOf(index: number): Promise<Digest | undefined> {
    const plan = this.plan.stages.find((s) => s.index === index);
    if (!plan || plan.base.kind === 'scratch') return undefined;
    if (plan.base.kind === 'stage') return this.baseOf(plan.base.index);
    return this.imageIdOf(plan.base.ref);
  }

  private stage(index: number): Promise<State> {
    let result = this.stageResults.get(index);
    if (!result) {
      const plan = this.plan.stages.find((s) => s.index === index);
      if (!plan) throw new KilnError('INTERNAL', `stage ${index} is not in the plan`);
      result = this.runStage(plan);
      this.stageResults.set(index, result);
    }
    return result;
  }

  private async runStage(plan: StagePlan): Promise<State> {
    // Start what this stage reads at once, so that independent stages build in parallel.
    const dependencies = plan.dependsOn.map((index) => this.stage(index));
    await Promise.all(dependencies);
    let state: State;
    if (plan.base.kind === 'scratch') {
      state = { key: `scratch ${formatPlatform(plan.platform)}`, written: WRITTEN, config: { architecture: plan.platform.architecture, os: plan.platform.os, ...(plan.platform.variant ? { variant: plan.platform.variant } : {}), rootfs: { type: 'layers', diff_ids: [] } } };
    } else if (plan.base.kind === 'stage') {
      state = await this.stage(plan.base.index);
    } else {
      const id = this.imageIdOf(plan.base.ref);
      state = storedState(this.options.store, id, id);
    }
    // A step before the stage's last one with an operation has a later step that works on its snapshot: see execute.
    const lastWorking = plan.steps.findLastIndex((s) => s.operation !== undefined);
    for (const [i, step] of plan.steps.entries()) state = await this.step(plan, step, state, i < lastWorking);
    // Another stage reads this one's image from the store.
    await state.written;
    return state;
  }

  private imageIdOf(ref: string): Digest {
    const id = this.options.images.get(ref);
    if (!id) throw new KilnError('INTERNAL', `image ${ref} was not resolved before the build`);
    return id;
  }

  /** The main context, or the named one (`--build-context`) a source names. */
  private contextOf(source: Extract<Source, { kind: 'context' }>): BuildContext {
    if (source.name === undefined) return this.options.context;
    const named = this.options.namedContexts?.get(source.name);
    if (!named) throw new KilnError('INTERNAL', `build context ${source.name} was not walked before the build`);
    return named;
  }

  private async sourceIdentity(source: Source): Promise<string> {
    if (source.kind === 'image') return this.imageIdOf(source.ref);
    if (source.kind === 'stage') return (await this.stage(source.index)).key;
    return 'context';
  }

  /** What, besides the descriptor, decides an operation's result: the content it reads. */
  private async contentKey(operation: Operation | undefined, what: string): Promise<unknown> {
    if (!operation || operation.kind === 'mkdir') return null;
    if (operation.kind === 'copy') {
      if (operation.from.kind !== 'context') return await this.sourceIdentity(operation.from);
      const context = this.contextOf(operation.from);
      const remote = (s: string): boolean => operation.add && (/^https?:\/\//.test(s) || isGitUrl(s));
      const sum = await context.checksum(operation.sources.filter((s) => !remote(s)).flatMap((s) => context.resolve(s, what)));
      // ADD <git URL>: the commit its ref names now (a branch that moved is fetched again).
      const git = operation.add ? operation.sources.filter(isGitUrl) : [];
      return git.length === 0 ? sum : { sum, commits: await Promise.all(git.map((url) => gitCommit(parseGitUrl(url), what))) };
    }
    const mounts: unknown[] = [];
    for (const mount of operation.mounts) {
      if (mount.type !== 'bind' || !mount.fromSource) continue;
      if (mount.fromSource.kind === 'context') {
        const context = this.contextOf(mount.fromSource);
        mounts.push(await context.checksum(context.resolve(mount.source ?? '.', what)));
      }
      else mounts.push(await this.sourceIdentity(mount.fromSource));
    }
    return mounts;
  }

  private async step(plan: StagePlan, step: Step, state: State, worked: boolean): Promise<State> {
    const { events, store } = this.options;
    this.options.signal?.throwIfAborted();
    const what = `${step.location.file}:${step.location.startLine}: ${step.location.original}`;
    // The key chains the previous step's key, not its image ID: it stays the same when a step was taken
    // from another image's inline cache, and does not depend on when a step ran.
    const key = sha256(JSON.stringify({ parent: state.key, step: step.cacheDescriptor, content: await this.contentKey(step.operation, what), ...this.execKey(step.operation) }));
    let reused: State | undefined;
    if (!this.options.noCache(plan.index)) {
      const cached = store.db.cachedImage(key);
      reused = cached && store.holdImage(this.options.lease, cached) ? storedState(store, cached, key) : await this.fromInlineCache(state, step, key);
    }
    // The config-only instructions planned into this step show as steps of their own, cached when it is.
    for (const change of step.preceding) {
      const changeId = this.nextStepId++;
      events({ type: 'step', id: changeId, name: change.name });
      events(reused ? { type: 'cached', id: changeId } : { type: 'done', id: changeId, seconds: 0 });
    }
    const id = this.nextStepId++;
    events({ type: 'step', id, name: step.name });
    if (reused) {
      events({ type: 'cached', id });
      return reused;
    }
    const started = Date.now();
    // The image's layers below the step (a base's are read from the store) are read while the step runs.
    const below = this.layersOf(state);
    below.catch(() => undefined); // a failed step is the error told; commit awaits it otherwise
    // The step's whole output is kept (up to a bound) so that a failure can show all of it, not a clipped
    // part; a RUN's secrets are masked in it before it is shown or kept.
    const log: Buffer[] = [];
    let logBytes = 0;
    const shown = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
      if (logBytes < MAX_KEPT_LOG) log.push(chunk);
      logBytes += chunk.length;
      events({ type: 'log', id, stream, text: chunk.toString() });
    };
    const mask = step.operation?.kind === 'exec' ? await SecretMask.of(step.operation.mounts.flatMap((m) => (m.type === 'secret' ? [this.options.secrets.get(secretId(m))].filter((f) => f !== undefined) : []))) : undefined;
    const output = mask ? (stream: 'stdout' | 'stderr', chunk: Buffer) => mask.write(stream, chunk, shown) : shown;
    let result: Executed | undefined;
    try {
      try {
        result = step.operation ? await this.execute(step.operation, state, what, output, worked) : undefined;
      } finally {
        mask?.flush(shown);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      events({ type: 'error', id, message });
      if (err instanceof KilnError && err.code === 'FAILED') {
        const lines = Buffer.concat(log).toString().split('\n').filter((l) => l !== '');
        const tail = lines.slice(-LOG_TAIL_LINES);
        let where = '';
        if (lines.length > tail.length || logBytes > MAX_KEPT_LOG) {
          const file = await keepStepLog(store.paths.stepLogs, Buffer.concat(log));
          where = `; its whole output${logBytes > MAX_KEPT_LOG ? ` (the first ${MAX_KEPT_LOG >> 20} MiB)` : ''} is in ${file}`;
        }
        throw new KilnError('FAILED', `${message}${tail.length > 0 ? `\nlast ${tail.length} lines of its output${where}:\n${tail.map((l) => `  ${l}`).join('\n')}` : ''}`);
      }
      throw err;
    }
    const next = this.commit(state, step, key, result, await below);
    events({ type: 'done', id, seconds: (Date.now() - started) / 1000 });
    return next;
  }

  /**
   * What a RUN step's key counts of the build's own options, as BuildKit's exec op does: its /etc/hosts
   * lines (--add-host), its rlimits (--ulimit), its /dev/shm (--shm-size), and its network when the
   * build's --network gives it one other than the host's. Nothing for a build that sets none, whose keys
   * stay as they were.
   */
  private execKey(operation: Operation | undefined): Record<string, unknown> {
    if (operation?.kind !== 'exec') return {};
    const { extraHosts = [], ulimits = [], shmSize, defaultNetwork } = this.options;
    return {
      ...(extraHosts.length > 0 ? { hosts: extraHosts } : {}),
      ...(ulimits.length > 0 ? { ulimits } : {}),
      ...(shmSize ? { shmSize } : {}),
      ...(operation.network === 'default' && defaultNetwork !== 'host' ? { network: defaultNetwork } : {}),
    };
  }

  /** Stores the state after a step as an (intermediate) image whose parent is the state before. */
  private commit(state: State, step: Step, key: string, executed: Executed | undefined, below: readonly Layer[]): State {
    const created = this.created();
    const layer = executed?.layer;
    // Instructions without a history line (ONBUILD) add none.
    const preceding = step.preceding.flatMap((change) => (change.createdBy !== undefined ? [historyEntry({ created, createdBy: change.createdBy, emptyLayer: true })] : []));
    const own = step.createdBy !== undefined ? [historyEntry({ created, createdBy: step.createdBy, emptyLayer: !layer })] : [];
    const next = this.writeState(state, step, key, created, below, (image) => appendLayers(image, layer ? [layer] : [], [...preceding, ...own]), executed?.stored);
    // A step that changed no files (a config-only one) has its parent's tree.
    const top = executed ? executed.top : state.top;
    return top === undefined ? next : { ...next, top };
  }

  /** A state's image's layers: those it carries, else the stored image's. */
  private async layersOf(state: State): Promise<readonly Layer[]> {
    if (state.layers) return state.layers;
    if (!state.imageId) return [];
    await state.written;
    const { store } = this.options;
    const row = store.db.image(state.imageId);
    return row ? (await store.image(row)).layers : [];
  }

  /** The time every image and history entry of the build is created at: SOURCE_DATE_EPOCH's, or now. */
  private created(): string {
    const { epoch } = this.options;
    return new Date(epoch !== undefined ? epoch * 1000 : Date.now()).toISOString();
  }

  /**
   * The image after a step: the state's image (over `below`, its layers) with the step's config, then
   * `add`'s layers and history; its inline cache gains the step.
   */
  private writeState(state: State, step: Step, key: string, created: string, below: readonly Layer[], add: (image: Image) => Image, layerStored = WRITTEN): State {
    const { store, lease } = this.options;
    const stepConfig = setConfig(imageOf(state.config, below), {
      // Docker-daemon-only fields of a base image do not carry over to a built one.
      container: undefined,
      container_config: undefined,
      docker_version: undefined,
      parent: undefined,
      comment: undefined,
      [INLINE_CACHE]: undefined,
      created,
      ...(step.author !== undefined ? { author: step.author } : {}),
      config: step.config,
    });
    const added = add(stepConfig);
    const { rootfs, history = [] } = added.config;
    const image = setConfig(added, { [INLINE_CACHE]: [...inlineCache(state.config), { key, layers: rootfs.diff_ids.length, history: history.length }] });
    // The planner stops most configs that grow too big at the instruction that does it; this is the exact size.
    const { file, startLine, original } = step.location;
    if (image.rawConfig.length > MAX_CONFIG_BYTES) throw new KilnError('INVALID_INPUT', `${file}:${startLine}: the image config after ${original} would be ${image.rawConfig.length} bytes, more than the ${MAX_CONFIG_BYTES} (8 MiB) kiln's store reads`);
    // A step's image is intermediate until the build gives it as its result (BuildKit makes no image of a step).
    // After its parent's, and after its own layer's blob.
    const written = this.background(layerStored === WRITTEN ? state.written : Promise.all([state.written, layerStored]).then(() => undefined), async () => {
      await store.writeImage(lease, { image, names: [] }, step.name, state.imageId ?? '', true);
      store.db.putCacheRecord(key, image.id);
    });
    return { imageId: image.id, config: image.config, key, layers: image.layers, written };
  }

  /** Where `--cache-from` images' inline caches are, by step key (read once). */
  private inlineIndex: Map<string, { source: CacheImage; entry: InlineCacheEntry }> | undefined;

  /**
   * A step taken from a `--cache-from` image: its layers and history up to that step, with this
   * build's config for it. The step's key proves the same base and the same steps before it.
   */
  private async fromInlineCache(state: State, step: Step, key: string): Promise<State | undefined> {
    if (!this.inlineIndex) {
      this.inlineIndex = new Map();
      for (const source of this.options.cacheFrom) {
        for (const entry of inlineCache(source.config)) this.inlineIndex.set(entry.key, { source, entry });
      }
    }
    const found = this.inlineIndex.get(key);
    if (!found) return undefined;
    const { store } = this.options;
    const source = await store.image(store.db.image(await found.source.stored()) as NonNullable<ReturnType<typeof store.db.image>>);
    const { layers, history } = found.entry;
    const known = state.config.rootfs.diff_ids;
    const sourceIds = source.config.rootfs.diff_ids;
    const sourceHistory = source.config.history ?? [];
    // The layers below must be the ones this build has; anything else means a foreign or damaged cache.
    if (layers < known.length || layers > sourceIds.length || history > sourceHistory.length || known.some((d, i) => sourceIds[i] !== d)) return undefined;
    const created = sourceHistory[history - 1]?.created ?? source.config.created ?? new Date(0).toISOString();
    // The cache image's own blobs for every layer, those below included, and its history up to the step.
    return this.writeState(state, step, key, created, source.layers.slice(0, known.length), (image) => setConfig(appendLayers(image, source.layers.slice(known.length, layers), []), { history: sourceHistory.slice(0, history) }));
  }

  /**
   * Runs an operation on a writable snapshot of the state; returns the layer of its changes and the
   * snapshot of the tree after it. A WORKDIR or a plain COPY makes its layer without a mount, from the
   * image's layers and its sources (see unmountedLayer). When no later step of its stage works on it (not
   * `worked`), it writes no file: its snapshot is made when something needs it, as a pulled image's is
   * (`unpack`); else its files are written into the snapshot's own directory from those entries, on this
   * thread (a worker thread's start costs more than a small copy), and its layer is their diff, as through
   * a mount. Any other step works through a mount.
   */
  private async execute(operation: Operation, state: State, what: string, output: (stream: 'stdout' | 'stderr', chunk: Buffer) => void, worked: boolean): Promise<Executed> {
    const { snapshots, store } = this.options;
    // Refused before it runs: the image could not be written, and a snapshot of some 500 layers cannot
    // even be mounted (overlayfs's limit, an EINVAL).
    const depth = state.config.rootfs.diff_ids.length;
    if (depth >= MAX_LAYERS) throw new KilnError('INVALID_INPUT', `${what}: the image would have ${depth + 1} layers, more than the ${MAX_LAYERS} an image can have (max depth exceeded)`);
    const top = state.top ?? (state.imageId ? await state.written.then(() => this.options.unpack(state.imageId as Digest)) : undefined);
    const work = join(store.paths.builds, `${process.pid}-${randomHex(6)}`);
    const rootfs = join(work, 'rootfs');
    const active = temporaryKey('build');
    const [spec] = await snapshots.prepare(active, top, 'build');
    const cleanups: (() => Promise<void>)[] = [];
    const cacheDirs = new Map<string, Promise<string>>();
    let keep = false;
    let done = false;
    /** The entries of the layer of a step that writes no file, made from its inputs (see unmountedLayer). */
    let made: (() => TarInput[]) | undefined;
    try {
      if (!spec) throw new KilnError('INTERNAL', `snapshot ${active} has no mounts`);
      const upper = snapshots.dir(active);
      const lowers = snapshots.lowerDirs(active);
      const source = operation.kind === 'copy' ? await this.sourceTree(operation.from, operation.sources, cleanups) : undefined;
      const copyInput = source && { rootfs, source, what, ...(this.options.epoch !== undefined ? { epoch: this.options.epoch } : {}) };
      const unmounted = await this.unmountedLayer(operation, upper, lowers, copyInput ?? { rootfs });
      // A later step works on its snapshot: its files are written there from the layer's entries, and the
      // layer is the diff of what was written, as through a mount (the sources are read once for both).
      if (unmounted && worked) await snapshots.writing(upper, () => applyLayer(upper, writeTar(clampTimes(unmounted(), this.options.epoch)), { whiteouts: 'overlay', what }));
      else made = unmounted;
      if (!unmounted) await this.throughMount(spec, rootfs, async () => {
        if (operation.kind === 'mkdir') await snapshots.writing(rootfs, () => runMkdir(operation, rootfs, what));
        else if (operation.kind === 'copy' && copyInput) {
          made = snapshots.driver === 'overlay' && !worked ? await copyAsLayer(operation, copyInput, lowers) : undefined;
          if (!made) await snapshots.writing(rootfs, () => runCopy(operation, copyInput));
        } else if (operation.kind === 'exec') {
          const network = operation.network === 'default' ? this.options.defaultNetwork : operation.network;
          await runExec({ ...operation, network }, {
            rootfs,
            bundle: join(work, 'bundle'),
            runtime: this.options.runtime(),
            what,
            mountSource: async (m) => this.mountSource(m, cleanups, work),
            cacheDir: (m) => {
              // One directory per cache id in a RUN: mounting the same locked cache twice must not wait for itself.
              const id = m.id ?? m.target;
              const dir = cacheDirs.get(id) ?? this.cacheDir(m, cleanups);
              cacheDirs.set(id, dir);
              return dir;
            },
            secrets: this.options.secrets,
            extraHosts: this.options.extraHosts ?? [],
            ulimits: this.options.ulimits ?? [],
            sshAgents: this.options.sshAgents ?? new Map(),
            shmSize: this.options.shmSize ?? 0,
            output,
            ...(this.options.signal ? { signal: this.options.signal } : {}),
          });
        }
      });
      if (operation.kind === 'exec') removeMountStubs(upper, snapshots.driver === 'overlay' ? lowers : top ? [snapshots.dir(top)] : []);
      const changes = made ? made() : snapshots.driver === 'overlay' ? overlayLayerEntries(upper, lowers) : treeLayerEntries(top ? snapshots.dir(top) : EMPTY_TREE, upper);
      // A step that changed nothing still makes a layer, an empty tar, as BuildKit's do.
      const { layer, stored } = await this.stepLayer(encodeLayer(clampTimes(changes, this.options.epoch)));
      if (made) {
        done = true;
        return { layer, stored }; // no snapshot: it goes in the finally
      }
      const chain = chainIds([...state.config.rootfs.diff_ids, layer.diffId]).at(-1) as Digest;
      const key = snapshots.layerKey(chain);
      if (!snapshots.has(key)) {
        // Held before it is committed: no image names this chain until the step's image is written.
        store.holdSnapshots(this.options.lease, [key]);
        try {
          snapshots.commit(key, active);
          keep = true;
        } catch (err) {
          // Another build (another kiln process) committed the same chain meanwhile: its snapshot serves, ours goes.
          if (!(err instanceof KilnError && err.code === 'CONFLICT' && snapshots.has(key))) throw err;
        }
      }
      done = true;
      return { layer, top: key, stored };
    } finally {
      const cleanUp = async (): Promise<void> => {
        for (const cleanup of cleanups.reverse()) await cleanup();
        if (!keep) await snapshots.remove(active);
        await removeTree(work);
      };
      // After a step that worked, its views and work directory go while the next step runs.
      if (done) void this.background(WRITTEN, cleanUp);
      else await cleanUp();
    }
  }

  /**
   * A WORKDIR's or a plain COPY's layer made from the image's layers and the copy's sources, without a
   * mount (overlay only: see mkdirAsLayer and copyAsLayer), or undefined: the step then works through a
   * mount of its snapshot (`upper` over `lowers`), which this leaves as it is.
   */
  private async unmountedLayer(operation: Operation, upper: string, lowers: readonly string[], input: CopyInput | Pick<CopyInput, 'rootfs'>): Promise<(() => TarInput[]) | undefined> {
    if (this.options.snapshots.driver !== 'overlay' || operation.kind === 'exec') return undefined;
    const layers = [upper, ...lowers];
    const unmounted = (path: string): Stats | undefined | 'unsure' => entryInLayers(layers, path);
    if (operation.kind === 'mkdir') return mkdirAsLayer(operation, { ...input, unmounted }, lowers);
    return 'source' in input ? copyAsLayer(operation, { ...input, unmounted }, lowers) : undefined;
  }

  /** Runs `work` with the step's snapshot (`spec`) mounted at `rootfs`. */
  private async throughMount(spec: MountSpec, rootfs: string, work: () => Promise<void>): Promise<void> {
    mkdirSync(rootfs, { recursive: true }); // synchronously, as the snapshot's own directories (see Snapshotter.create)
    const unmountRootfs = await mountGuarded(spec, rootfs);
    try {
      await work();
    } finally {
      await unmountRootfs();
    }
  }

  /**
   * A step's layer. A small one (most are: a RUN that writes a few files) is hashed in memory and its blob
   * written beside the next steps, which need only its diffID: the step's image, written after the blob
   * (see writeState), is the first thing that reads it, and the build ends after both. A larger one is
   * written before the step ends, as it streams. Either is hashed once, as it is written, and not read
   * back: kiln encoded it.
   */
  private async stepLayer(encoded: EncodedLayer): Promise<{ layer: Layer; stored: Promise<void> }> {
    const { store, lease } = this.options;
    const mediaType = MediaType.ociLayer;
    const described = (): { mediaType: string; diffSize: number } => ({ mediaType, diffSize: encoded.diffSize() });
    const iterator = encoded.tar[Symbol.asyncIterator]();
    const head: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    while (!ended && size <= DEFERRED_LAYER_BYTES) {
      const next = await iterator.next();
      if (next.done) ended = true;
      else {
        head.push(next.value);
        size += next.value.length;
      }
    }
    // What was read, then the rest (none once it ended).
    async function* whole(): AsyncGenerator<Uint8Array> {
      yield* head;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    }
    if (!ended) {
      const row = await store.putEncodedLayer(lease, whole(), described);
      return { layer: store.storedLayer(row), stored: WRITTEN };
    }
    const digest = sha256(Buffer.concat(head));
    const stored = this.background(WRITTEN, async () => {
      await store.putEncodedLayer(lease, whole(), described, { digest, size });
    });
    return { layer: store.storedLayer({ mediaType, digest, size, diffId: digest }), stored };
  }

  /** A read-only view of a stage's or image's tree, unmounted and removed by the cleanups. */
  private async viewOf(imageId: Digest | undefined, cleanups: (() => Promise<void>)[]): Promise<string> {
    const { snapshots, store } = this.options;
    // An image of no layers (FROM scratch and config alone) has nothing to unpack.
    const top = imageId && store.configOf(imageId).rootfs.diff_ids.length > 0 ? await this.options.unpack(imageId) : undefined;
    if (!top) return EMPTY_TREE;
    if (snapshots.driver === 'vfs') return snapshots.dir(top);
    const key = temporaryKey('view');
    const target = join(store.paths.builds, `${process.pid}-${randomHex(6)}`);
    await mkdir(target, { recursive: true });
    const [spec] = await snapshots.view(key, top, 'view');
    if (!spec) throw new KilnError('INTERNAL', `snapshot ${key} has no mounts`);
    const unmountView = await mountGuarded(spec, target);
    cleanups.push(async () => {
      await unmountView();
      await snapshots.remove(key);
      await removeTree(target);
    });
    return target;
  }

  /**
   * The tree a COPY reads `sources` from. From an image or a stage, when one layer snapshot alone holds
   * every source (see soleHolder; a stage's RUN that made /out, copied by a later stage), that snapshot's
   * directory: a view's mount, unmount and records would cost more than the copy. Else a view of the tree.
   */
  private async sourceTree(source: Source, sources: readonly string[], cleanups: (() => Promise<void>)[]): Promise<SourceTree> {
    if (source.kind === 'context') return this.contextOf(source);
    const stage = source.kind === 'stage' ? await this.stage(source.index) : undefined;
    const imageId = source.kind === 'image' ? this.imageIdOf(source.ref) : stage?.imageId;
    const { snapshots } = this.options;
    // A stage this build ran has its tree's snapshot at hand; another image's is found (or made) by unpacking it.
    const top = snapshots.driver === 'overlay' && imageId ? (stage?.top ?? (await this.options.unpack(imageId))) : undefined;
    const paths = sources.map((s) => posix.normalize(`/${s}`));
    if (top !== undefined && paths.every((p) => !/[*?[\\]/.test(p))) {
      const holders = new Set(paths.map((p) => snapshots.soleHolder(top, p)));
      const [holder] = holders;
      if (holders.size === 1 && holder !== undefined) return new DirectorySource(holder);
    }
    return new DirectorySource(await this.viewOf(imageId, cleanups));
  }

  /**
   * Where a bind mount's files come from. A writable bind (`rw`) gets a copy, as in BuildKit: what the
   * command writes there is thrown away, and never reaches the context or another stage.
   */
  private async mountSource(mount: ResolvedMount, cleanups: (() => Promise<void>)[], work: string): Promise<string> {
    const source = mount.fromSource ?? { kind: 'context' };
    let path: string;
    if (source.kind === 'context') {
      const context = this.contextOf(source);
      const [entry] = context.resolve(mount.source ?? '.', `--mount source ${mount.source ?? '.'}`);
      if (!entry) throw new KilnError('NOT_FOUND', `bind mount source ${mount.source ?? '.'} not found in the build context${source.name !== undefined ? ` ${source.name}` : ''}`);
      path = await context.mountable(entry, join(work, `context-${randomHex(6)}`));
    } else {
      const imageId = source.kind === 'image' ? this.imageIdOf(source.ref) : (await this.stage(source.index)).imageId;
      const root = await this.viewOf(imageId, cleanups);
      path = resolveInRoot(root, mount.source ?? '/');
    }
    if (mount.readonly !== false) return path;
    const copy = join(work, `bind-${randomHex(6)}`);
    await execFileAsync('cp', ['-a', '--reflink=auto', path, copy]);
    return copy;
  }

  /**
   * A persistent cache directory for `--mount=type=cache`, by id (default: the target path), held with
   * its sharing mode until the cleanups run (see cache-mounts.ts).
   */
  private async cacheDir(mount: ResolvedMount, cleanups: (() => Promise<void>)[]): Promise<string> {
    const held = await cacheMountsOf(this.options.store.root).acquire({
      id: mount.id ?? mount.target,
      sharing: mount.sharing ?? 'shared',
      ...(mount.mode !== undefined ? { mode: mount.mode } : {}),
      ...(mount.uid !== undefined ? { uid: mount.uid } : {}),
      ...(mount.gid !== undefined ? { gid: mount.gid } : {}),
    });
    cleanups.push(() => held.release());
    return held.dir;
  }
}
