/**
 * `kiln lint` and `kiln build --check`: the policy around the pure rules of `analyze/lint` — which
 * config file applies, what the store knows of each base image (its config, users, size, digest, slim
 * variants, toolchains), ShellCheck run on every RUN script in a few processes, and the threshold.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type LintConfig, EMPTY_CONFIG, parseLintConfig } from '../analyze/lint/config.js';
import { type ImageFacts, type LintOptions } from '../analyze/lint/context.js';
import { platformArgs } from '../builder/plan.js';
import { TOOLCHAIN_PACKAGE } from '../analyze/lint/kiln-rules.js';
import { applyPolicy, failsThreshold, lintDockerfile } from '../analyze/lint/lint.js';
import { globalArgValues, readDockerfile, resolveBase } from '../analyze/lint/model.js';
import { type Finding, type Level, RULES_BY_CODE } from '../analyze/lint/rules.js';
import { SHELLCHECK_EXCLUDED, type ShellcheckInput, shellcheckFindings, shellcheckInputs } from '../analyze/lint/shellcheck.js';
import { PatternMatcher, parseDockerignore } from '../dockerfile/dockerignore.js';
import { KilnError, isErrno, readTextIfPresent } from '../errors.js';
import { autoDecompress } from '../layer/compression.js';
import { readTar } from '../layer/tar/reader.js';
import { familiarString, parseReference, repositoryName } from '../reference/reference.js';
import { hostPlatform } from '../oci/platform.js';
import type { Engine } from './engine.js';
import { pullImage } from './registry.js';
import { execFileAsync } from '../exec-file.js';

export interface LintRequest {
  /** The Dockerfile: a path, or its text (stdin) with the name to report it under. */
  readonly dockerfile: { readonly path: string } | { readonly text: string; readonly name: string };
  /** The build context, for .dockerignore (BuildKit's CopyIgnoredFile). */
  readonly contextDir?: string;
  readonly buildArgs?: ReadonlyMap<string, string>;
  readonly target?: string;
  /** `-c/--config FILE`; else hadolint's search, from `cwd`. */
  readonly configFile?: string;
  readonly cwd?: string;
  readonly ignore?: readonly string[];
  /** `--trusted-registry`, added to the config's trustedRegistries (DL3026). */
  readonly trustedRegistries?: readonly string[];
  readonly failureThreshold?: Level | 'none';
  /** Pull base images the store lacks (or all of them again), so the image-aware rules can run. */
  readonly pull?: boolean;
  readonly insecureRegistries?: readonly string[];
  /** Only BuildKit's checks (the warnings a normal build prints). */
  readonly buildkitOnly?: boolean;
  /** ShellCheck's program; `false` leaves SC rules out. */
  readonly shellcheck?: string | false;
  /** One-line notices for the person (skipped rules, pulls). */
  readonly notice: (message: string) => void;
}

export interface LintResult {
  readonly findings: readonly Finding[];
  readonly failed: boolean;
  readonly threshold: Level | 'none';
}

/** hadolint's config search: the first of these that exists is used, alone. */
function configCandidates(cwd: string, env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME ?? homedir();
  const xdg = env.XDG_CONFIG_HOME ?? join(home, '.config');
  return [
    join(cwd, '.hadolint.yaml'),
    join(cwd, '.hadolint.yml'),
    join(xdg, 'hadolint.yaml'),
    join(xdg, 'hadolint.yml'),
    join(home, '.config', 'hadolint.yaml'),
    join(home, '.hadolint', 'hadolint.yaml'),
    join(home, 'hadolint', 'config.yaml'),
    join(home, '.hadolint.yaml'),
    join(home, '.hadolint.yml'),
  ];
}

async function loadConfig(request: LintRequest): Promise<LintConfig> {
  if (request.configFile !== undefined) {
    const text = await readFile(request.configFile, 'utf8').catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `config file ${request.configFile} not found`);
      throw err;
    });
    return parseLintConfig(text, request.configFile);
  }
  for (const candidate of configCandidates(resolve(request.cwd ?? process.cwd()), process.env)) {
    const text = await readFile(candidate, 'utf8').catch(() => undefined);
    if (text !== undefined) return parseLintConfig(text, candidate);
  }
  return EMPTY_CONFIG;
}

/**
 * Reads a few files from an image's layers, top layer first (a whiteout or an opaque directory above hides
 * what is below). Missing files are absent from the result.
 */
async function imageFiles(engine: Engine, imageId: string, paths: readonly string[]): Promise<Map<string, string>> {
  const image = await engine.store.image(engine.image(imageId));
  const found = new Map<string, string>();
  const hidden = new Set<string>();
  for (const layer of [...image.layers].reverse()) {
    const wanted = paths.filter((p) => !found.has(p) && !hidden.has(p));
    if (wanted.length === 0) break;
    const { stream } = await autoDecompress(await layer.open());
    for await (const entry of readTar(stream)) {
      const name = entry.header.path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
      const slash = name.lastIndexOf('/');
      const base = name.slice(slash + 1);
      if (base.startsWith('.wh.')) {
        const dir = name.slice(0, slash + 1);
        for (const path of wanted) if (base === '.wh..wh..opq' ? path.startsWith(dir) : path === dir + base.slice(4) || path.startsWith(`${dir}${base.slice(4)}/`)) hidden.add(path);
        continue;
      }
      if (!wanted.includes(name) || entry.header.type !== 'file') continue;
      const chunks: Buffer[] = [];
      for await (const chunk of entry.body) chunks.push(chunk);
      found.set(name, Buffer.concat(chunks).toString('utf8'));
    }
  }
  return found;
}

/**
 * What the store knows of an image, for the image-aware rules and the build's view. Reading its files
 * (users, packages) means reading its layers: `configOnly` skips that where only BuildKit's checks run.
 */
async function imageFacts(engine: Engine, ref: string, configOnly: boolean): Promise<ImageFacts | undefined> {
  let row;
  try {
    row = engine.imageIfPresent(ref);
  } catch {
    return undefined; // not a reference: the FROM rules report it
  }
  if (!row) return undefined;
  const config = engine.store.configOf(row.id);
  const platform = { config: config.config ?? {}, ...(config.os ? { os: config.os } : {}), ...(config.architecture ? { architecture: config.architecture } : {}) };
  if (configOnly) return platform;
  const files = await imageFiles(engine, row.id, ['etc/passwd', 'var/lib/dpkg/status', 'lib/apk/db/installed']);
  const users = (files.get('etc/passwd') ?? '')
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= 3 && /^\d+$/.test(fields[2] ?? ''))
    .map((fields) => ({ name: fields[0] ?? '', uid: Number(fields[2]) }));
  const dpkg = [...(files.get('var/lib/dpkg/status') ?? '').matchAll(/^Package: (\S+)\n(?:[^\n]+\n)*?Status: [^\n]*\binstalled\b/gm)].map((m) => m[1] ?? '');
  const apk = [...(files.get('lib/apk/db/installed') ?? '').matchAll(/^P:(\S+)$/gm)].map((m) => m[1] ?? '');
  const toolchains = [...dpkg, ...apk].filter((name) => TOOLCHAIN_PACKAGE.test(name));

  const parsed = parseReference(ref);
  const repository = repositoryName(parsed);
  const inspect = engine.inspect(ref);
  const digest = inspect.RepoDigests.map((d) => d.slice(d.indexOf('@') + 1)).find((_d, i) => repositoryName(parseReference(inspect.RepoDigests[i] ?? '')) === repository);
  const pinned = digest !== undefined && !parsed.digest ? `${ref}@${digest}` : undefined;

  // A slim, minimal or distroless variant of the same repository, much smaller.
  let smaller: { ref: string; size: number } | undefined;
  for (const image of engine.listImages()) {
    if (image.Id === row.id || image.Size * 1.5 > row.size || row.size - image.Size < 1_000_000) continue;
    for (const tag of image.RepoTags) {
      const other = parseReference(tag);
      const sameRepository = repositoryName(other) === repository && /slim|minimal|distroless/.test(other.tag ?? '');
      const distroless = /(^|\/)distroless\//.test(other.path);
      if ((sameRepository || distroless) && (!smaller || image.Size < smaller.size)) smaller = { ref: familiarString(other), size: image.Size };
    }
  }
  return {
    ...platform,
    users,
    size: row.size,
    ...(pinned ? { pinned } : {}),
    ...(smaller ? { smaller } : {}),
    toolchains,
  };
}

/** Scripts per ShellCheck process: its command line stays far below the kernel's limit. */
const SHELLCHECK_BATCH = 400;
/** ShellCheck processes at once (the machines kiln is measured on have two cores). */
const SHELLCHECK_PROCESSES = 2;
/** How long ShellCheck may take over one batch before its rules are given up. */
const SHELLCHECK_TIMEOUT_MS = 120_000;

/**
 * Runs ShellCheck on the scripts: written to a temporary directory and checked by two processes at once,
 * each given a share of the files (at most 400) on one command line.
 */
async function runShellcheck(program: string, inputs: readonly ShellcheckInput[], file: string): Promise<Finding[]> {
  if (inputs.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'kiln-shellcheck-'));
  try {
    const names = inputs.map((_input, i) => `run${i + 1}.sh`);
    await Promise.all(inputs.map((input, i) => writeFile(join(dir, names[i] ?? ''), input.text)));
    const size = Math.min(SHELLCHECK_BATCH, Math.ceil(names.length / SHELLCHECK_PROCESSES));
    const batches: string[][] = [];
    for (let i = 0; i < names.length; i += size) batches.push(names.slice(i, i + size));
    const check = (batch: readonly string[]): Promise<string> =>
      execFileAsync(program, ['--format=json1', `--exclude=${SHELLCHECK_EXCLUDED.join(',')}`, '--severity=style', ...batch], { cwd: dir, maxBuffer: 256 << 20, timeout: SHELLCHECK_TIMEOUT_MS }).then(
        (r) => r.stdout,
        (err: { stdout?: string; code?: unknown; killed?: boolean }) => {
          // Exit 1 means findings; a missing program (ENOENT) is the caller's to report.
          if (err.code === 1 && typeof err.stdout === 'string') return err.stdout;
          if (err.killed) throw new KilnError('FAILED', `ShellCheck did not finish within ${SHELLCHECK_TIMEOUT_MS / 1000} s on ${file}'s RUN scripts`);
          throw err;
        },
      );
    const outputs: string[] = [];
    const queue = [...batches];
    await Promise.all(
      Array.from({ length: SHELLCHECK_PROCESSES }, async () => {
        for (let batch = queue.shift(); batch; batch = queue.shift()) outputs.push(await check(batch));
      }),
    );
    return outputs.flatMap((output) => shellcheckFindings(inputs, names, output, file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Lints a Dockerfile; without a store (`undefined`: none made yet), the image-aware rules do not run. */
export async function lintImage(engine: Engine | undefined, request: LintRequest): Promise<LintResult> {
  // BuildKit's checks read none of the config's settings: for them it only filters findings, and a build's
  // checks (most often none) skip hadolint's search of nine places unless there is something to filter.
  const buildkitOnly = request.buildkitOnly === true;
  const ruleConfig = buildkitOnly ? EMPTY_CONFIG : await loadConfig(request);
  let text: string;
  let file: string;
  if ('text' in request.dockerfile) {
    text = request.dockerfile.text;
    file = request.dockerfile.name;
  } else {
    const path = request.dockerfile.path;
    file = path;
    text = await readFile(path, 'utf8').catch((err: unknown) => {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new KilnError('NOT_FOUND', `cannot find the Dockerfile ${path}: give its path with -f, or run kiln lint in the directory that has it`);
      if (isErrno(err, 'EISDIR')) throw new KilnError('INVALID_ARGUMENT', `${path} is a directory: give the Dockerfile's path`);
      throw err;
    });
  }
  const platform = hostPlatform();
  const buildArgs = request.buildArgs ?? new Map<string, string>();

  let ignored: ((path: string) => boolean) | undefined;
  if (request.contextDir !== undefined) {
    const ignore = readTextIfPresent(join(request.contextDir, '.dockerignore'));
    if (ignore !== undefined) {
      const matcher = new PatternMatcher(parseDockerignore(ignore));
      ignored = (path) => matcher.matches(path.replace(/^\.?\/+/, ''));
    }
  }

  // The bases the FROM lines name, as the build would resolve them: facts for those the store has.
  const base: LintOptions = { file, buildArgs, platform, ...(request.target !== undefined ? { target: request.target } : {}), images: new Map(), trustedRegistries: [...ruleConfig.trustedRegistries, ...(request.trustedRegistries ?? [])], labelSchema: ruleConfig.labelSchema, strictLabels: ruleConfig.strictLabels, ...(ignored ? { ignored } : {}) };
  // The parse alone names the bases; the rules run once, when what the store knows of them is in.
  const parsed = readDockerfile(text, file);
  const images = new Map<string, ImageFacts>();
  const globals = globalArgValues(parsed, buildArgs, platformArgs(platform));
  for (const stage of parsed.stages) {
    if (!engine) break; // no store: nothing to know about the bases
    const resolved = resolveBase(parsed, stage, globals);
    if (resolved.kind !== 'image' || images.has(resolved.ref)) continue;
    if (request.pull) {
      try {
        await engine.store.withLease(async (lease) => {
          await pullImage(engine, resolved.ref, { lease, events: () => undefined, ...(request.insecureRegistries ? { insecureRegistries: request.insecureRegistries } : {}) });
        });
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        request.notice(`kiln lint: could not pull ${resolved.ref} (${err.message.split('\n')[0] ?? ''}); its image-aware rules are skipped`);
      }
    }
    const facts = await imageFacts(engine, resolved.ref, buildkitOnly);
    if (facts) images.set(resolved.ref, facts);
  }
  const lint = lintDockerfile(parsed, { ...base, images }, buildkitOnly ? 'buildkit' : 'all');
  const findings = [...lint.findings];

  if (!buildkitOnly && request.shellcheck !== false) {
    const program = request.shellcheck ?? 'shellcheck';
    try {
      findings.push(...(await runShellcheck(program, shellcheckInputs(lint.analysis), file)));
    } catch (err) {
      if (err instanceof KilnError) request.notice(`kiln lint: ${err.message}, so the ShellCheck (SC) rules were skipped`);
      else if (isErrno(err, 'ENOENT')) request.notice(`kiln lint: ${program} is not installed, so the ShellCheck (SC) rules were skipped (Debian: apt-get install shellcheck)`);
      else throw err;
    }
  }
  const wanted = buildkitOnly ? findings.filter((f) => RULES_BY_CODE.get(f.code)?.source === 'buildkit') : findings;
  const config = buildkitOnly && wanted.length > 0 ? await loadConfig(request) : ruleConfig;
  const shown = applyPolicy(wanted, lint.dockerfile, { config, ignore: request.ignore ?? [] });
  const threshold = request.failureThreshold ?? config.failureThreshold ?? 'info';
  return { findings: shown, failed: !config.noFail && failsThreshold(shown, threshold), threshold };
}
