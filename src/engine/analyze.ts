/**
 * `kiln analyze`: where an image's bytes go, what is wasted, which Dockerfile line wasted it. The policy
 * lives here: which source an argument names (skopeo's transport names), which layers are the base
 * image's, where the Dockerfile lines come from. The figures are `analyze/`'s.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AnalysisInput, type BaseSource, type ImageAnalysis, type KilnSection, analyzeLayers } from '../analyze/analysis.js';
import { type CiResult, type CiRuleName, ciSettings, evaluateCi, readDiveCi } from '../analyze/ci.js';
import { analysisJson } from '../analyze/json.js';
import { type SourceLine, matchDockerfile } from '../analyze/history.js';
import { listLayer } from '../analyze/layers/walk.js';
import type { TreeNode } from '../analyze/waste.js';
import { KilnError, isErrno } from '../errors.js';
import type { Image, NamedImage } from '../image/image.js';
import type { Digest } from '../oci/digest.js';
import { parsePlatform } from '../oci/platform.js';
import type { ImageConfig } from '../oci/types.js';
import { familiarString, parseReference, referenceString, withDefaultTag } from '../reference/reference.js';
import type { BuildRecord } from '../meta/db.js';
import type { Lease } from '../transport/store.js';
import type { Engine } from './engine.js';
import { limited } from './limited.js';

/** What `kiln analyze SOURCE` reads: a store image, or a place named as skopeo names its transports. */
export type ImageSource =
  | { readonly kind: 'store'; readonly name: string }
  | { readonly kind: 'docker-archive' | 'oci-archive' | 'oci'; readonly path: string; readonly ref?: string }
  | { readonly kind: 'docker'; readonly ref: string };

/** skopeo's other transports, which kiln does not read. */
const OTHER_TRANSPORTS = ['containers-storage', 'docker-daemon', 'dir', 'sif', 'tarball', 'ostree'];

/**
 * Parses a source as skopeo names it: `docker-archive:PATH[:REF]`, `oci-archive:PATH[:REF]`,
 * `oci:DIR[:REF]` (the path ends at the first colon, as in skopeo), `docker://REF`; anything else is an
 * image in the store (a name or an ID). A store image whose name starts with a transport's name and a
 * colon is named in full (`docker.io/library/oci:1`) or by ID.
 */
export function parseImageSource(text: string, command = 'kiln analyze', otherSources = ''): ImageSource {
  const colon = text.indexOf(':');
  const transport = colon === -1 ? undefined : text.slice(0, colon);
  const rest = text.slice(colon + 1);
  if (transport === 'docker') {
    if (!rest.startsWith('//') || rest.length === 2) throw new KilnError('INVALID_ARGUMENT', `invalid source ${JSON.stringify(text)}: a registry image is docker://NAME[:TAG|@DIGEST]`);
    return { kind: 'docker', ref: rest.slice(2) };
  }
  if (transport === 'docker-archive' || transport === 'oci-archive' || transport === 'oci') {
    const sep = rest.indexOf(':');
    const path = sep === -1 ? rest : rest.slice(0, sep);
    if (path === '') throw new KilnError('INVALID_ARGUMENT', `invalid source ${JSON.stringify(text)}: give a path, as ${transport}:PATH[:REF]`);
    return sep === -1 || rest.slice(sep + 1) === '' ? { kind: transport, path } : { kind: transport, path, ref: rest.slice(sep + 1) };
  }
  if (transport !== undefined && OTHER_TRANSPORTS.includes(transport)) {
    throw new KilnError('UNSUPPORTED', `${command} does not read ${transport}: sources; it reads a store image (NAME or ID), docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF], docker://REF${otherSources}`);
  }
  return { kind: 'store', name: text };
}

/**
 * dive's CI gate, as `--ci` asks for it: the rules' settings from a config file (`configFile`, which must
 * exist, else `.dive-ci` in `dir` when there is one; neither when both are absent) overridden by `rules`.
 */
export interface CiRequest {
  readonly configFile?: string;
  readonly dir?: string;
  readonly rules: Partial<Record<CiRuleName, string>>;
}

/** The gate's verdict: pass unless a rule failed, and every rule's result in dive's order. */
export interface CiVerdict {
  readonly pass: boolean;
  readonly rules: readonly CiResult[];
}

export interface AnalyzeOptions {
  /** `--base IMAGE`: a store image whose layers are the image's first ones. */
  readonly base?: string;
  /** `--dockerfile FILE`: lines for an image kiln did not build (or built elsewhere). */
  readonly dockerfile?: string;
  /** For a registry image or a layout with an index: the platform (default the host's). */
  readonly platform?: string;
  readonly insecureRegistries?: readonly string[];
  /** Check dive's CI rules too (their settings are checked before the image is read: a typo fails at once). */
  readonly ci?: CiRequest;
  /** The JSON document will be asked for: its lists are made as text on the thread pool while the rest is computed (see analyzeLayers). */
  readonly json?: boolean;
}

export interface AnalyzeResult {
  readonly analysis: ImageAnalysis;
  /** The CI gate's verdict, when asked for. */
  readonly ci: CiVerdict | undefined;
  /** The JSON document (dive's export, kiln's figures, the CI verdict under kiln.ci), in pieces. */
  json(): Iterable<string | Buffer>;
  /** The final tree by size, cut for a page to draw. */
  tree(): TreeNode;
}

/** The settings of dive's CI rules: defaults, then the config file's, then the request's (see CiRequest). */
async function ciSettingsOf(request: CiRequest): Promise<Record<CiRuleName, string>> {
  const path = request.configFile ?? (request.dir === undefined ? undefined : join(request.dir, '.dive-ci'));
  let file: { path: string; rules: Partial<Record<CiRuleName, string>> } | undefined;
  if (path !== undefined) {
    const shown = request.configFile ?? '.dive-ci';
    try {
      file = { path: shown, rules: readDiveCi(await readFile(path, 'utf8'), shown) };
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      if (request.configFile !== undefined) throw new KilnError('NOT_FOUND', `--ci-config ${request.configFile}: no such file`);
    }
  }
  return ciSettings(file, request.rules);
}

/** One image out of an archive's, by the reference or `@index` the source gives, or the only one. */
function pickImage(images: readonly NamedImage[], ref: string | undefined, what: string): NamedImage {
  if (ref === undefined) {
    if (images.length === 1) return images[0] as NamedImage;
    throw new KilnError('INVALID_ARGUMENT', `${what} holds ${images.length} images: name one, as ${what.split(' ')[0]}:PATH:NAME or :@INDEX`);
  }
  const index = /^@(\d+)$/.exec(ref)?.[1];
  if (index !== undefined) {
    const picked = images[Number(index)];
    if (!picked) throw new KilnError('NOT_FOUND', `${what} has no image @${index} (it holds ${images.length})`);
    return picked;
  }
  const wanted = referenceString(withDefaultTag(parseReference(ref)));
  const picked = images.find((i) => i.names.includes(wanted));
  if (!picked) throw new KilnError('NOT_FOUND', `${what} has no image named ${ref}`);
  return picked;
}

/**
 * Reads the image a source names and runs `fn` on it while it can be read: a store image is held (a
 * prune meanwhile cannot take its blobs), an archive stays open (a compressed one spooled to tmp/).
 */
export async function withSourceImage<T>(engine: Engine, source: ImageSource, options: AnalyzeOptions, lease: Lease, fn: (named: NamedImage) => Promise<T>): Promise<T> {
  if (source.kind === 'store') {
    const row = engine.holdImage(lease, source.name);
    return fn({ image: await engine.store.image(row), names: engine.store.db.namesOf(row.id).filter((n) => n.kind === 'tag').map((n) => familiarString(parseReference(n.name))) });
  }
  // What reads a registry or an archive is loaded only for such a source: a store image starts sooner (and an archive than a registry image).
  if (source.kind === 'docker') {
    const [{ clientFor }, { readRegistryImage }] = await Promise.all([import('./registry.js'), import('../transport/registry.js')]);
    const ref = withDefaultTag(parseReference(source.ref));
    const client = await clientFor(ref.domain, options);
    const { image } = await readRegistryImage(client, ref, { wanted: parsePlatform(options.platform), asked: options.platform !== undefined });
    return fn({ image, names: [familiarString(ref)] });
  }
  const [{ openArchive }, { readDockerArchive, readImageArchive }, { readOciLayout }] = await Promise.all([import('./archive.js'), import('../transport/docker-archive.js'), import('../transport/oci-layout.js')]);
  const { tree, cleanup } = await openArchive(engine.store, { path: source.path });
  try {
    const what = `${source.kind} ${source.path}`;
    if (source.kind === 'docker-archive') {
      if ((await tree.size('manifest.json')) === undefined) throw new KilnError('INVALID_INPUT', `${what} is not a docker archive: it has no manifest.json (an OCI layout is read as oci:DIR or oci-archive:PATH)`);
      return await fn(pickImage(await readDockerArchive(tree), source.ref, what));
    }
    const platform = parsePlatform(options.platform);
    const images = source.ref === undefined ? await readImageArchive(tree) : await readOciLayout(tree, platform, source.ref);
    return await fn(pickImage(images, undefined, what));
  } finally {
    await cleanup();
  }
}

/**
 * The base image's layers: recorded by the build that made the image, named by `--base`, or found among
 * the store's named images by diffID chain (the longest whose layers are the image's first ones; images
 * kiln built are passed over for the images they were built from); else layer 0, as dive assumes.
 */
function findBase(engine: Engine, image: Image, options: AnalyzeOptions, record: BuildRecord | undefined): { layers: number; how: BaseSource; image?: string; historyLength?: number } {
  const diffIds = image.config.rootfs.diff_ids;
  const { db } = engine.store;
  const prefixOf = (ids: readonly Digest[]): boolean => ids.length > 0 && ids.length <= diffIds.length && ids.every((d, i) => diffIds[i] === d);
  /** A base image's name for people (its first tag, else its ID) and history length. */
  const describe = (id: Digest): { image: string; historyLength: number } => {
    const tag = db.namesOf(id).find((n) => n.kind === 'tag');
    return { image: tag ? familiarString(parseReference(tag.name)) : id, historyLength: engine.store.configOf(id).history?.length ?? 0 };
  };
  if (options.base !== undefined) {
    const row = engine.image(options.base);
    const config = engine.store.configOf(row.id);
    if (!prefixOf(config.rootfs.diff_ids)) throw new KilnError('INVALID_ARGUMENT', `--base ${options.base}: its layers are not the first layers of the image, so it is not the image's base`);
    return { layers: config.rootfs.diff_ids.length, how: 'flag', ...describe(row.id) };
  }
  if (record) {
    const baseId = record.baseId as Digest;
    return { layers: record.baseLayers, how: 'recorded', ...(record.baseId !== '' && db.image(baseId) ? describe(baseId) : {}) };
  }
  let best: { id: Digest; layers: number; built: boolean } | undefined;
  for (const name of db.names()) {
    const row = name.imageId === image.id ? undefined : db.image(name.imageId);
    if (!row) continue;
    const ids = db.imageDiffIds(row.id);
    if (ids.length >= diffIds.length || !prefixOf(ids)) continue;
    const built = row.parent !== '';
    if (!best || (best.built && !built) || (best.built === built && ids.length > best.layers)) best = { id: row.id, layers: ids.length, built };
  }
  if (best) return { layers: best.layers, how: 'store', ...describe(best.id) };
  return { layers: Math.min(1, diffIds.length), how: 'first-layer' };
}

/**
 * kiln's record of the build that made the image: by its ID, or, for a copy whose config another tool
 * rewrote (skopeo writing an OCI layout drops kiln's own config keys), by an image kiln built here with
 * the same layers and the same history.
 */
export function buildRecordOf(engine: Engine, image: Image): BuildRecord | undefined {
  const { db } = engine.store;
  const direct = db.buildRecord(image.id);
  if (direct) return direct;
  const history = (config: ImageConfig): string => JSON.stringify((config.history ?? []).map((h) => [h.created_by ?? '', h.empty_layer === true]));
  const wanted = history(image.config);
  for (const id of db.imagesWithLayers(image.config.rootfs.diff_ids)) {
    const record = db.buildRecord(id);
    if (record && history(engine.store.configOf(id)) === wanted) return record;
  }
  return undefined;
}

/** Where the Dockerfile lines of an image's history entries come from, and the lines by history index. */
export interface LineAttribution {
  readonly lines: ReadonlyMap<number, SourceLine>;
  readonly attribution: AnalysisInput['attribution'];
  readonly dockerfile: string | undefined;
  readonly singleStage: boolean | undefined;
  readonly base: ReturnType<typeof findBase>;
}

/** The text of `--dockerfile FILE`, read before the image is (a typo fails at once). */
export async function readDockerfileOption(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  return readFile(path, 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `--dockerfile ${path}: no such file`);
    throw err;
  });
}

/**
 * Which Dockerfile line made each history entry: a `--dockerfile` matched to the history (after the base
 * image's entries), else kiln's record of the build that made the image, else none.
 */
export async function lineAttribution(engine: Engine, image: Image, options: AnalyzeOptions, dockerfileText: string | undefined): Promise<LineAttribution> {
  const record = buildRecordOf(engine, image);
  const base = findBase(engine, image, options, record);
  if (dockerfileText !== undefined && options.dockerfile !== undefined) {
    const { parseInstructions } = await import('../dockerfile/instructions.js'); // the parser loads only for --dockerfile
    const parsed = parseInstructions(dockerfileText, options.dockerfile);
    return { lines: matchDockerfile(image.config.history ?? [], parsed, base.historyLength ?? 0), attribution: 'dockerfile', dockerfile: options.dockerfile, singleStage: parsed.stages.length === 1, base };
  }
  if (record) {
    const lines = new Map(record.lines.map((l) => [l.position, { file: record.dockerfile, line: l.line, endLine: l.endLine, instruction: l.instruction }]));
    return { lines, attribution: 'recorded', dockerfile: record.dockerfile, singleStage: record.stages === 1, base };
  }
  return { lines: new Map(), attribution: 'none', dockerfile: undefined, singleStage: undefined, base };
}

/** Analyzes the image a source names (see parseImageSource). */
export async function analyzeImage(engine: Engine, sourceText: string, options: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  const source = parseImageSource(sourceText);
  const dockerfileText = await readDockerfileOption(options.dockerfile);
  const ciRules = options.ci === undefined ? undefined : await ciSettingsOf(options.ci);
  const { analysis, fileLists, tree, rendered, wastedJson } = await engine.store.withLease((lease) =>
    withSourceImage(engine, source, options, lease, async ({ image, names }) => {
      const { lines, attribution, dockerfile, singleStage, base } = await lineAttribution(engine, image, options, dockerfileText);
      const listings = await limited(
        3,
        image.layers.map((layer, index) => () => listLayer(layer, `${sourceText}: layer ${index + 1} of ${image.layers.length}`)),
      );
      const analyzed = await analyzeLayers({
        source: sourceText,
        imageId: image.id,
        names,
        history: image.config.history,
        layers: image.layers.map((layer, index) => ({ diffId: layer.diffId, digest: layer.digest, listing: listings[index] as (typeof listings)[number] })),
        base: { layers: base.layers, how: base.how, image: base.image },
        lines,
        attribution,
        dockerfile,
        singleStage,
        json: options.json,
      });
      return analyzed;
    }),
  );
  const results = ciRules && evaluateCi({ efficiencyScore: analysis.image.efficiencyScore, inefficientBytes: analysis.image.inefficientBytes, userWastedRatio: analysis.kiln.diveUserWastedRatio ?? undefined }, ciRules);
  const ci = results && { pass: !results.some((r) => r.status === 'FAIL'), rules: results };
  return {
    analysis,
    ci,
    // kiln.ci goes last; the section's other fields are kept as they are (its wasted list is made when first read).
    json: () => analysisJson(ci ? { ...analysis, kiln: Object.defineProperty(Object.defineProperties({}, Object.getOwnPropertyDescriptors(analysis.kiln)), 'ci', { value: ci, enumerable: true }) as KilnSection & { ci: CiVerdict } } : analysis, fileLists, rendered, wastedJson),
    tree,
  };
}
