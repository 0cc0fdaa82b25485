import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildRecord, sameBuildRecord, targetBase } from '../builder/attribution.js';
import { BuildContext, contextRoot } from '../builder/context.js';
import { type PlanOptions, externalImages, planBuild } from '../builder/plan.js';
import { type BuildEvent, Solver } from '../builder/solver.js';
import { parseInstructions } from '../dockerfile/instructions.js';
import { KilnError, isErrno } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { ImageConfig } from '../oci/types.js';
import { parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import { type Ulimit, checkUlimits } from '../runtime/resources.js';
import { type RuntimeName, buildRuntime, prepareRuntime, runtimeContainerIds } from '../runtime/runtime.js';
import { type Driver, isAbandoned, snapshotterOf, unmountStale } from '../snapshot/snapshotter.js';
import { ownerGone } from '../content/owner.js';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../oci/platform.js';
import type { Lease } from '../transport/store.js';
import { BUILD_CONTAINER_PREFIX } from '../builder/ops.js';
import { setTimeout as delay } from 'node:timers/promises';
import type { CacheSpec } from './build-cache.js';
import { type BuildRegistry, ownStep, registryAccess, statusLines } from './build-progress.js';
import { namedContextKey, parseBuildContexts } from './build-inputs.js';
import type { Engine } from './engine.js';
import { openSnapshotter, unpackImage } from './snapshots.js';
import { execFileAsync } from '../exec-file.js';
import { applyLayer } from '../layer/apply.js';
import { treeEntries } from '../layer/diff.js';
import { writeTar } from '../layer/tar/writer.js';

/**
 * `-o/--output`: where the result goes instead of a name in the store. Its filesystem, as BuildKit's local
 * exporter (a directory; every file the invoking user's, as the docker CLI writes them) and tar exporter
 * (the files with their owners) give it; or the image, as its docker and oci exporters write it: an
 * archive `docker load` and OCI tools read (see archiveFiles), or an OCI layout directory (oci, tar=false),
 * under the build's names.
 */
export type BuildOutput =
  | { readonly type: 'local'; readonly dest: string }
  | { readonly type: 'tar'; readonly write: (tar: AsyncIterable<Uint8Array>) => Promise<void> }
  | { readonly type: 'archive'; readonly format: 'docker' | 'oci'; readonly names: readonly string[]; readonly write: (tar: AsyncIterable<Uint8Array>) => Promise<void> }
  | { readonly type: 'layout'; readonly names: readonly string[]; readonly dest: string }
  /** buildx's cacheonly: the build runs and its cache stays (and goes where --cache-to says); nothing else is written. */
  | { readonly type: 'cacheonly' };

export interface BuildOptions {
  readonly contextDir: string;
  /**
   * `-f`: the Dockerfile's path (default `<context>/Dockerfile`), with its text when the caller has read it
   * already, and the name messages give it when its path is kiln's (a context from stdin, git or a URL:
   * its path inside the context); or its text alone when read from stdin.
   */
  readonly dockerfile?: { readonly path: string; readonly text?: string; readonly display?: string } | { readonly text: string };
  readonly tags: readonly string[];
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly target?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly noCache: boolean;
  /** `--no-cache-filter`: stages (by name or index) that are rebuilt without the cache. */
  readonly noCacheFilter: readonly string[];
  /**
   * `--cache-from`: images (built by kiln) whose inline build cache may stand in for steps: in the store or
   * a registry (`REF`, `type=registry,ref=REF`), or in an OCI layout (`type=local,src=DIR`); see build-cache.ts.
   */
  readonly cacheFrom: readonly string[];
  /** `--cache-to`: where the build's cache is exported (`type=registry,ref=REF`, `type=local,dest=DIR`, `mode=min|max`). */
  readonly cacheTo?: readonly string[];
  /** `--secret id=…,src=…`: secret id → file. */
  readonly secrets: ReadonlyMap<string, string>;
  /**
   * `--secret id=…,env=…`: secret id → value (an environment variable's). Each is a file only while the
   * build runs, in a directory only root reads on tmpfs (see withSecretFiles), never in the store.
   */
  readonly secretValues?: ReadonlyMap<string, string>;
  /** `--squash`: the layers the build adds become one. */
  readonly squash?: boolean;
  /** `--platform`: only the host's own is possible. */
  readonly platform?: string;
  /** SOURCE_DATE_EPOCH / `--timestamp`, in seconds. */
  readonly epoch?: number;
  /** `--add-host HOST:IP`: lines of every RUN step's /etc/hosts. */
  readonly extraHosts?: readonly string[];
  /** `--ulimit`: every RUN step's rlimits. */
  readonly ulimits?: readonly Ulimit[];
  /** `--shm-size`: the size of RUN steps' /dev/shm in bytes (0: Docker's 64 MiB). */
  readonly shmSize?: number;
  /** `--ssh ID[=SOCKET|KEY[,KEY]]`, as given (see builder/ssh-agent.ts). */
  readonly ssh?: readonly string[];
  /** `--build-context NAME=DIR|docker-image://REF`, as given (see parseBuildContexts). */
  readonly buildContexts?: readonly string[];
  /** `--network`: for RUN steps that do not say; `host` unless `none` is asked for. */
  readonly network?: 'none' | 'host';
  /** The runtime of RUN steps; by default crun where it runs as the host is, else runc (see buildRuntime). */
  readonly runtime?: RuntimeName;
  readonly storageDriver?: Driver;
  /** `--pull`: pull every base image, even one the store has, in case the registry has a newer one. */
  readonly pull?: boolean;
  /** How to reach registries: for base images the store lacks (`FROM` pulls them, as Docker's does), caches, pushes. */
  readonly registry?: BuildRegistry;
  readonly notice: (message: string) => void;
  readonly events: (event: BuildEvent) => void;
  /** Cancels the build (the API's client went away): see SolveOptions.signal. */
  readonly signal?: AbortSignal;
  /** `-o/--output`: the result is written there, and neither tagged nor listed (its steps stay as the cache). */
  readonly output?: BuildOutput;
  /** `--allow`: entitlements granted to the build, buildx's `network.host` (always granted, as dockerd's builder does) and `security.insecure`. */
  readonly allow?: readonly string[];
  /** `--push` (buildx's; `-o type=registry`): every tag is pushed to its registry once the build has tagged it. */
  readonly push?: boolean;
}

export interface BuildResult {
  readonly id: Digest;
  readonly warnings: readonly string[];
}

/**
 * What `--metadata-file` holds of a build that made an image, as buildx writes it for an image loaded
 * into the image store: its config digest (the image ID), its manifest's descriptor and digest, and the
 * names it got, in full. A build without an image (`-o`) has none of these: `{}`.
 */
export async function buildMetadata(engine: Engine, id: Digest | undefined, tags: readonly string[]): Promise<Record<string, unknown>> {
  const row = id && engine.store.db.image(id);
  if (!id || !row) return {};
  const manifest = await engine.store.content.info(row.manifestDigest);
  return {
    'containerimage.config.digest': id,
    'containerimage.descriptor': { mediaType: row.manifestType, digest: row.manifestDigest, size: manifest?.size ?? 0 },
    'containerimage.digest': row.manifestDigest,
    ...(tags.length > 0 ? { 'image.name': tags.map((tag) => referenceString(withDefaultTag(parseReference(tag)))).join(',') } : {}),
  };
}

/**
 * Pulls a base image (one the store lacks, or any with `--pull`) as a build step of its own, its
 * progress as the step's log, and returns its ID. Names without a registry are Docker Hub's.
 */
async function pullBase(engine: Engine, lease: Lease, ref: string, present: boolean, id: number, file: string, options: BuildOptions): Promise<Digest> {
  const pulled = ownStep(options.events, id, `[internal] pull ${ref}`, async () => {
    const { pullImage } = await import('./registry.js'); // the registry client loads only for a build that pulls
    return (await pullImage(engine, ref, { lease, ...registryAccess(options.registry, parseReference(ref).domain), events: statusLines(options.events, id, 'Downloading') })).id;
  });
  return pulled.catch((err: unknown) => {
    if (err instanceof KilnError && !present) throw new KilnError(err.code, `${file}: the image ${ref} is not in the store, and pulling it failed: ${err.message}`, { cause: err });
    throw err;
  });
}

/** A build's `--shm-size`, refused below 0 in dockerd's words. */
function checkShmSize(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new KilnError('INVALID_ARGUMENT', 'SHM size can not be less than 0');
  return bytes;
}

/** `--allow`'s entitlements, checked (each value may list several, comma-separated, as buildx takes them). */
function entitlements(values: readonly string[]): ReadonlySet<string> {
  const granted = new Set(values.flatMap((value) => value.split(',')).map((value) => value.trim()).filter((value) => value !== ''));
  for (const value of granted) {
    if (value !== 'network.host' && value !== 'security.insecure') throw new KilnError('INVALID_ARGUMENT', `invalid --allow ${JSON.stringify(value)}: the entitlements are network.host and security.insecure`);
  }
  return granted;
}

/** The build's `--cache-from` and `--cache-to`, checked before any work. */
async function cacheSpecsOf(options: BuildOptions): Promise<{ from: readonly CacheSpec[]; to: readonly CacheSpec[] }> {
  const cacheTo = options.cacheTo ?? [];
  if (options.cacheFrom.length + cacheTo.length === 0) return { from: [], to: [] };
  const { parseCacheSpec } = await import('./build-cache.js');
  return { from: options.cacheFrom.map((value) => parseCacheSpec('--cache-from', value)), to: cacheTo.map((value) => parseCacheSpec('--cache-to', value)) };
}

/** `docker build`: a Dockerfile and a context directory → an image in the store, tagged. */
export async function buildImage(engine: Engine, options: BuildOptions): Promise<BuildResult> {
  if (process.getuid?.() !== 0) throw new KilnError('UNSUPPORTED', 'kiln build needs root (it runs RUN steps in an OCI runtime over overlay mounts; rootless builds are not supported yet)');
  const contextDir = resolve(options.contextDir);
  contextRoot(contextDir); // a context that is no directory is the mistake to name, not its Dockerfile's absence
  const source = options.dockerfile ?? { path: resolve(contextDir, 'Dockerfile') };
  let text: string;
  let file: string;
  if (!('path' in source)) {
    text = source.text;
    file = 'Dockerfile (stdin)';
  } else {
    file = source.display ?? source.path;
    text = source.text ?? await readFile(source.path, 'utf8').catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `cannot find the Dockerfile ${source.path}: give its path with -f, or put a Dockerfile in the build context`);
      throw err;
    });
  }
  const host = hostPlatform();
  if (options.platform !== undefined) {
    const wanted = parsePlatform(options.platform);
    // Any variant of this machine's architecture is its own (linux/amd64/v2, linux/arm64/v8).
    if (!platformMatches(host, { os: wanted.os, architecture: wanted.architecture })) {
      throw new KilnError('UNSUPPORTED', `--platform ${options.platform}: kiln builds only for this machine's platform (${formatPlatform(host)}); cross-platform builds need emulation, which kiln does not do`);
    }
  }
  for (const tag of options.tags) {
    if (parseReference(tag).digest) throw new KilnError('INVALID_ARGUMENT', `invalid tag ${JSON.stringify(tag)}: a build is tagged with a name, not a digest`);
  }
  if (options.push && options.tags.length === 0) throw new KilnError('INVALID_ARGUMENT', 'tag is needed when pushing to registry: name the image with -t REGISTRY/REPOSITORY:TAG');
  if (options.push && options.output) throw new KilnError('INVALID_ARGUMENT', '--push writes the image to its registry: it cannot go with -o/--output');
  const dockerfile = parseInstructions(text, file);
  const cacheSpecs = await cacheSpecsOf(options);
  const contexts = parseBuildContexts(options.buildContexts ?? []);
  // Checked before any work; the parser loads only for a build that has them.
  const extraHosts = options.extraHosts?.length ? options.extraHosts.map((await import('./networks.js')).parseExtraHost) : [];
  const planOptions: PlanOptions = {
    buildArgs: options.buildArgs,
    allow: entitlements(options.allow ?? []),
    ...(options.target !== undefined ? { target: options.target } : {}),
    platform: host,
    labels: options.labels,
    ...(contexts.named.size > 0 ? { namedContext: (word: string) => contexts.named.get(namedContextKey(word) ?? '') } : {}),
  };
  // The context is walked while the store is made ready for the build (the lease, the bases, the plan).
  const { walked } = await BuildContext.begin(contextDir, engine.store.db.fileDigests(), 'path' in source ? source.path : undefined);
  const namedWalks = await Promise.all([...contexts.directories].map(async ([name, dir]) => [name, (await BuildContext.begin(dir, engine.store.db.fileDigests())).walked] as const));
  const snapshots = await openSnapshotter(engine, options.notice, options.storageDriver);
  // Everything the build reads or makes (its bases, cache images, the images of its steps, their layer
  // snapshots) is held by one lease until the image is tagged: a prune or rmi meanwhile leaves it.
  // The agents of --ssh run while the build does (a key file's agent is kiln's own, stopped after).
  const agents = options.ssh?.length ? await (await import('../builder/ssh-agent.js')).sshAgents(options.ssh) : undefined;
  return withSecretFiles(options.secretValues, (valueFiles) => engine.store.withLease(async (lease) => {
    const images = new Map<string, Digest>();
    let stepId = 1;
    for (const ref of externalImages(dockerfile, planOptions)) {
      const present = engine.holdImageIfPresent(lease, ref)?.id;
      if (present && !options.pull) images.set(ref, present);
      else images.set(ref, await pullBase(engine, lease, ref, present !== undefined, stepId++, file, options));
    }
    // Base configs are read once (the plan and the build record both need them); they are held by the lease.
    const configs = new Map<Digest, ImageConfig>();
    const configOf = (id: Digest): ImageConfig => {
      let config = configs.get(id);
      if (!config) configs.set(id, (config = engine.store.configOf(id)));
      return config;
    };
    const plan = planBuild(dockerfile, planOptions, (ref) => configOf(images.get(ref) as Digest));
    const warnings = [...dockerfile.warnings];
    // The cache's code loads only for a build that names one.
    const cacheModule = cacheSpecs.from.length + cacheSpecs.to.length > 0 ? await import('./build-cache.js') : undefined;
    const cacheProgress = { events: options.events, warnings, nextStep: () => stepId++, ...(options.registry ? { registry: options.registry } : {}) };
    const cacheFrom = cacheModule ? await cacheModule.importCaches(engine, lease, cacheSpecs.from, cacheProgress) : [];
    if (plan.unusedBuildArgs.length > 0) warnings.push(`One or more build-args [${plan.unusedBuildArgs.join(' ')}] were not consumed`);
    const noCacheStages = new Set(
      options.noCacheFilter.map((name) => {
        const stage = dockerfile.stages.find((s) => s.name === name.toLowerCase() || String(s.index) === name);
        if (!stage) throw new KilnError('INVALID_ARGUMENT', `--no-cache-filter ${name}: no stage of that name in ${file}`);
        return stage.index;
      }),
    );
    const runs = plan.stages.some((s) => s.steps.some((step) => step.operation?.kind === 'exec'));
    // A runtime the build picks itself runs on the host as it is (buildRuntime checks, at the first RUN that
    // runs: a fully cached build looks for none): only one asked for may need setting up.
    let picked = options.runtime;
    const runtime = (): RuntimeName => (picked ??= buildRuntime());
    if (runs && options.runtime !== undefined) {
      const prepared = await prepareRuntime(options.runtime);
      if (prepared) options.notice(prepared);
    }
    const solver = new Solver(plan, {
      store: engine.store,
      lease,
      snapshots,
      runtime,
      context: await walked,
      namedContexts: new Map(await Promise.all(namedWalks.map(async ([name, walk]) => [name, await walk] as const))),
      secrets: valueFiles.size > 0 ? new Map([...options.secrets, ...valueFiles]) : options.secrets,
      images,
      cacheFrom,
      unpack: (imageId) => unpackImage(engine, snapshots, imageId),
      noCache: (stage) => options.noCache || noCacheStages.has(stage),
      ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
      defaultNetwork: options.network ?? 'host',
      extraHosts,
      ulimits: checkUlimits(options.ulimits ?? []),
      ...(options.shmSize ? { shmSize: checkShmSize(options.shmSize) } : {}),
      ...(agents ? { sshAgents: agents.sockets } : {}),
      events: options.events,
      firstStepId: stepId,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const built = await solver.solve();
    const id = options.squash ? await solver.squash(built) : built;
    stepId = solver.nextStep;
    if (cacheModule && cacheSpecs.to.length > 0) await cacheModule.exportCaches(engine, lease, cacheSpecs.to, { result: built, stages: await solver.stageImages() }, cacheProgress);
    const { output } = options;
    if (output?.type === 'local' || output?.type === 'tar') {
      await solver.withTree(id, (root) => exportTree(root, output));
      return { id, warnings };
    }
    if (output) {
      if (output.type !== 'cacheonly') await exportImage(engine, id, output, options.tags);
      return { id, warnings };
    }
    // Which line made each history entry, for kiln analyze.
    const baseRef = targetBase(plan);
    const baseId = baseRef === undefined ? undefined : images.get(baseRef);
    const base = baseId === undefined ? undefined : { id: baseId, config: configOf(baseId) };
    // A rebuild that made the same image the same way writes its tags alone: the record and the mark are there.
    const record = buildRecord(plan, { id, config: engine.store.configOf(id) }, base, { file, stages: dockerfile.stages.length });
    if (!sameBuildRecord(engine.store.db.buildRecord(id), record)) engine.store.db.putBuildRecord(record);
    // The result is an image `images` lists (tagged or `<none>`); the stages' and steps' images stay intermediate.
    if (engine.store.db.image(id)?.intermediate !== false) engine.store.db.markResult(id);
    for (const tag of options.tags) engine.tag(id, tag);
    if (options.push) await pushTags(engine, options, stepId);
    return { id, warnings };
  })).finally(() => agents?.close());
}

/** Where secrets given as values are written while a build runs: tmpfs where the machine has it, so they never reach a disk. */
function secretsParent(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** The directory of a build's secret values: its kiln's pid, so a later prune knows a dead build's (see pruneBuildLeftovers). */
const SECRETS_DIR = /^kiln-secrets-(\d+)-/;

/**
 * Runs `work` with each secret value in a file of its own (0600, in a 0700 directory of tmpfs), given
 * to it as id → file; the directory goes when it ends, however it ends.
 */
async function withSecretFiles<T>(values: ReadonlyMap<string, string> | undefined, work: (files: ReadonlyMap<string, string>) => Promise<T>): Promise<T> {
  if (!values?.size) return work(new Map());
  const dir = await mkdtemp(join(secretsParent(), `kiln-secrets-${process.pid}-`));
  try {
    const files = new Map<string, string>();
    for (const [index, [id, value]] of [...values].entries()) {
      const file = join(dir, String(index));
      await writeFile(file, value, { mode: 0o600 });
      files.set(id, file);
    }
    return await work(files);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the built image as an archive or an OCI layout, named by the build's tags and the output's names. */
async function exportImage(engine: Engine, id: Digest, output: Extract<BuildOutput, { names: readonly string[] }>, tags: readonly string[]): Promise<void> {
  const { archiveFiles, tarArchive, writeArchiveDirectory } = await import('../transport/archive-writer.js');
  const image = await engine.store.image(engine.image(id));
  const names = new Set([...tags, ...output.names].map((name) => referenceString(withDefaultTag(parseReference(name)))));
  const items = [{ image, names: [...names] }];
  if (output.type === 'layout') await writeArchiveDirectory(archiveFiles(items, 'oci'), output.dest);
  else await output.write(tarArchive(archiveFiles(items, output.format)));
}

/** `--push`: each tag pushed, a step of the build's progress with the push's statuses as its lines (as BuildKit shows them). */
async function pushTags(engine: Engine, options: BuildOptions, firstId: number): Promise<void> {
  const { pushImage } = await import('./registry.js');
  for (const [index, tag] of options.tags.entries()) {
    const id = firstId + index;
    await ownStep(options.events, id, `pushing ${referenceString(withDefaultTag(parseReference(tag)))}`, () =>
      pushImage(engine, tag, { ...registryAccess(options.registry, parseReference(tag).domain), events: statusLines(options.events, id, 'Pushing') }),
    );
  }
}

/** Writes the filesystem at `root` to a build's output. */
async function exportTree(root: string, output: Extract<BuildOutput, { type: 'local' | 'tar' }>): Promise<void> {
  const tar = writeTar(treeEntries(root));
  if (output.type === 'tar') return output.write(tar);
  await mkdir(output.dest, { recursive: true, mode: 0o700 }); // as the docker CLI makes it; one that is there keeps its mode
  await applyLayer(output.dest, tar, { whiteouts: 'delete', what: `the build's output ${output.dest}`, owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } });
}

/** The pid in the name of a build's work directory or view's mount point (`<pid>-…`; `view-<pid>-…`, `build-<pid>-…` from older kilns). */
const OWNER = /^(?:build-|view-)?(\d+)-/;

/** Work directories of builds whose kiln process is gone (a kill -9 mid-build), with their mounts. */
export async function abandonedBuilds(engine: Engine): Promise<string[]> {
  const dir = engine.store.paths.builds;
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((name) => {
    const owner = Number(OWNER.exec(name)?.[1] ?? 0);
    return ownerGone(owner);
  });
}

/**
 * Runtime containers of RUN steps whose kiln died: killed and deleted, in runc and crun. The orphaned
 * `runc run` may be tearing the same container down at once, so deletion is retried until it is gone.
 */
async function removeAbandonedContainers(): Promise<void> {
  for (const runtime of ['runc', 'crun'] as const) {
    for (const id of await runtimeContainerIds(runtime).catch(() => [] as string[])) {
      const owner = Number(new RegExp(`^${BUILD_CONTAINER_PREFIX}(\\d+)-`).exec(id)?.[1] ?? 0);
      if (owner === 0 || !ownerGone(owner)) continue;
      await execFileAsync(runtime, ['kill', id, 'KILL']).catch(() => undefined);
      for (let attempt = 0; attempt < 100; attempt++) {
        await execFileAsync(runtime, ['delete', '--force', id]).catch(() => undefined);
        if (!(await execFileAsync(runtime, ['state', id]).then(() => true, () => false))) break;
        await delay(100); // polling the runtime's own state: it has no event to wait for
      }
    }
  }
}

/**
 * Stops and removes what dead builds left: runtime containers, work directories and mounts, snapshots;
 * and the kept output of failed steps.
 */
export async function pruneBuildLeftovers(engine: Engine): Promise<number> {
  await removeAbandonedContainers();
  await rm(engine.store.paths.stepLogs, { recursive: true, force: true });
  const abandoned = await abandonedBuilds(engine);
  for (const name of abandoned) {
    const dir = join(engine.store.paths.builds, name);
    await unmountStale(join(dir, 'rootfs'));
    await unmountStale(dir);
    await rm(dir, { recursive: true, force: true });
  }
  // Secret values a killed build left on tmpfs.
  for (const name of await readdir(secretsParent()).catch(() => [] as string[])) {
    const owner = Number(SECRETS_DIR.exec(name)?.[1] ?? 0);
    if (owner !== 0 && ownerGone(owner)) await rm(join(secretsParent(), name), { recursive: true, force: true });
  }
  const snapshots = snapshotterOf(engine.store, 'overlay');
  for (const row of snapshots.list().reverse()) {
    if ((row.owner?.purpose !== 'build' && row.owner?.purpose !== 'view') || !isAbandoned(row)) continue;
    if (engine.store.db.snapshotChildren(row.key).length === 0) await snapshots.remove(row.key);
  }
  return abandoned.length;
}
