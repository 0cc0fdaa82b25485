import { stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { BuildEvent } from '../../builder/solver.js';
import type { BuildOutput } from '../../engine/build.js';
import { buildNetwork } from '../../engine/build-inputs.js';
import { parseMemoryBytes, parseUlimits } from '../container-flags.js';
import { KilnError, readTextIfPresent } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { INSECURE_HELP, type Io, type RegistryFlags, collect, insecure, parseBool, print, writeFileAtomically } from '../io.js';
import { type RuntimeFlags, addRuntimeFlags, checkPickedRuntimeFlags } from '../runtime-flags.js';

interface BuildFlags extends Omit<RuntimeFlags, 'runtime'>, RegistryFlags {
  runtime?: string;
  tag?: string[];
  file?: string;
  buildArg?: string[];
  target?: string;
  label?: string[];
  cache: boolean;
  noCacheFilter?: string[];
  cacheFrom?: string[];
  cacheTo?: string[];
  push?: boolean;
  load?: boolean;
  allow?: string[];
  provenance?: string;
  sbom?: string;
  attest?: string[];
  pull?: string;
  iidfile?: string;
  quiet?: boolean;
  progress: string;
  platform?: string;
  secret?: string[];
  network?: string;
  squash?: boolean;
  timestamp?: string;
  check?: boolean;
  output?: string[];
  addHost?: string[];
  ulimit?: string[];
  buildContext?: string[];
  ssh?: string[];
  metadataFile?: string;
  shmSize?: string;
}

/** What `-o/--output` (and `--push`, `--load`) ask of a build. */
interface BuildExport {
  /** Where the result goes instead of the store's names; none for an image in the store. */
  readonly output?: BuildOutput;
  /** The output goes to stdout (so -q prints no ID there). */
  readonly toStdout: boolean;
  /** Names the output adds to -t's (`name=`). */
  readonly names: readonly string[];
  /** The image is pushed once tagged. */
  readonly push: boolean;
}

/** A tar written to a file (atomically) or, for no dest or `-`, to stdout, which must not be a terminal. */
async function tarDestination(dest: string | undefined, spec: string, exporter: string, io: Io): Promise<{ write: (tar: AsyncIterable<Uint8Array>) => Promise<void>; toStdout: boolean }> {
  if (dest === undefined || dest === '-') {
    if (io.stdout.isTTY) throw new KilnError('INVALID_ARGUMENT', `output file is required for ${exporter} exporter. refusing to write to console`);
    const write = async (tar: AsyncIterable<Uint8Array>): Promise<void> => {
      const { pipeline } = await import('node:stream/promises'); // streams load only for this output
      await pipeline(tar, io.stdout, { end: false });
    };
    return { write, toStdout: true };
  }
  if ((await stat(dest).catch(() => undefined))?.isDirectory()) throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: destination file is a directory`);
  return { write: (tar) => writeFileAtomically(dest, tar), toStdout: false };
}

/**
 * `-o/--output` as the docker CLI (buildx) reads it: PATH (a directory), `-` (a tar on stdout), or CSV
 * fields: `type=local,dest=DIR`, `type=tar[,dest=FILE|-]`, `type=docker[,dest=FILE|-]` (an image archive;
 * without dest, the image into the store, as `--load`), `type=oci[,dest=FILE|-][,tar=false]`,
 * `type=image[,name=N][,push=true]` and `type=registry[,name=N]` (`--push`); one output at most.
 */
async function buildExport(specs: readonly string[], flags: { push?: boolean; load?: boolean }, io: Io): Promise<BuildExport> {
  const image = { toStdout: false, names: [], push: flags.push === true };
  if (specs.length + (flags.push ? 1 : 0) + (flags.load ? 1 : 0) > 1 && !(specs.length === 0 && flags.push && flags.load)) {
    throw new KilnError('INVALID_ARGUMENT', 'currently only single export is supported (--push and --load are outputs too)');
  }
  const spec = specs[0];
  if (spec === undefined) return image;
  const fields = new Map<string, string>();
  if (spec.includes('=')) {
    for (const field of spec.split(',')) {
      const eq = field.indexOf('=');
      if (eq < 0) throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: invalid value ${field}`);
      fields.set(field.slice(0, eq).toLowerCase(), field.slice(eq + 1));
    }
  } else {
    fields.set('type', spec === '-' ? 'tar' : 'local').set('dest', spec);
  }
  const type = fields.get('type');
  const dest = fields.get('dest');
  const names = fields.get('name') ? [fields.get('name') as string] : [];
  if (!type) throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: type is required for output`);
  switch (type) {
    case 'local':
      if (dest === undefined) throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: dest is required for local output`);
      return { output: { type, dest: resolve(dest) }, toStdout: false, names: [], push: false };
    case 'tar': {
      const { write, toStdout } = await tarDestination(dest, spec, type, io);
      return { output: { type, write }, toStdout, names: [], push: false };
    }
    case 'cacheonly':
      return { output: { type }, toStdout: false, names: [], push: false };
    case 'image':
    case 'registry':
      return { toStdout: false, names, push: type === 'registry' || parseBool(fields.get('push') ?? 'false') };
    case 'docker':
    case 'oci': {
      // docker without a dest loads the image, into kiln's store here.
      if (type === 'docker' && dest === undefined) return { ...image, names };
      if (type === 'oci' && fields.get('tar') !== undefined && !parseBool(fields.get('tar') as string)) {
        if (dest === undefined) throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: dest is required for an OCI layout directory (tar=false)`);
        return { output: { type: 'layout', names, dest: resolve(dest) }, toStdout: false, names: [], push: false };
      }
      const { write, toStdout } = await tarDestination(dest, spec, type, io);
      return { output: { type: 'archive', format: type, names, write }, toStdout, names: [], push: false };
    }
    default:
      throw new KilnError('INVALID_ARGUMENT', `invalid --output ${JSON.stringify(spec)}: the ${type} exporter is not supported: kiln build writes local, tar, docker, oci, image, registry and cacheonly outputs`);
  }
}

/** `KEY=value` → [KEY, value]; a bare `KEY` takes the value from kiln's environment, as docker does. */
export function keyValue(entry: string, flag: string): [string, string] | undefined {
  const eq = entry.indexOf('=');
  if (eq === 0) throw new KilnError('INVALID_ARGUMENT', `invalid ${flag} ${JSON.stringify(entry)}: use KEY=value`);
  if (eq > 0) return [entry.slice(0, eq), entry.slice(eq + 1)];
  const value = process.env[entry];
  return value === undefined ? undefined : [entry, value];
}

/**
 * buildx's attestation flags: kiln attaches no attestation manifests, so turning them off is what it does
 * anyway; asking for one is said once, not refused (CI scripts pass them for buildx).
 */
function attestationWarnings(flags: BuildFlags): string[] {
  const off = (value: string): boolean => {
    const fields = new Map(value.split(',').map((field) => [field.split('=')[0] ?? '', field.slice(field.indexOf('=') + 1)] as const));
    return value === 'false' || value === '0' || fields.get('disabled') === 'true' || fields.get('mode') === 'false';
  };
  const asked = [
    ...(flags.provenance !== undefined && !off(flags.provenance) ? [`--provenance=${flags.provenance}`] : []),
    ...(flags.sbom !== undefined && !off(flags.sbom) ? [`--sbom=${flags.sbom}`] : []),
    ...(flags.attest ?? []).filter((spec) => !off(spec)).map((spec) => `--attest ${spec}`),
  ];
  return asked.length === 0 ? [] : [`${asked.join(', ')}: kiln attaches no attestations to the images it builds (kiln sbom IMAGE writes an SBOM); the image was built without them`];
}

/** BuildKit's bound on a secret (500 KB): a bigger one is refused before the build, as buildx refuses it. */
const MAX_SECRET_BYTES = 500 * 1024;

/**
 * `--secret` as buildx parses it: `id=ID` with `src=FILE` (or `source=`), `env=VAR`, or `type=file|env`
 * (for env, src names the variable); with neither, the variable named ID when it is set, else the file ID.
 * Returns the files and the values (of environment variables) by ID.
 */
async function secrets(specs: readonly string[]): Promise<{ files: Map<string, string>; values: Map<string, string> }> {
  const files = new Map<string, string>();
  const values = new Map<string, string>();
  for (const spec of specs) {
    let type: string | undefined;
    let id: string | undefined;
    let src: string | undefined;
    let env: string | undefined;
    for (const field of spec.split(',')) {
      const eq = field.indexOf('=');
      const key = eq < 0 ? field : field.slice(0, eq);
      const value = eq < 0 ? '' : field.slice(eq + 1);
      if (key === 'type') {
        if (value !== 'file' && value !== 'env') throw new KilnError('INVALID_ARGUMENT', `invalid --secret ${JSON.stringify(spec)}: unsupported secret type ${JSON.stringify(value)} (file or env)`);
        type = value;
      } else if (key === 'id') id = value;
      else if (key === 'src' || key === 'source') src = value;
      else if (key === 'env') env = value;
      else throw new KilnError('INVALID_ARGUMENT', `invalid --secret ${JSON.stringify(spec)}: unexpected key '${key}' in '${field}' (id, type, src, env)`);
    }
    if (!id) throw new KilnError('INVALID_ARGUMENT', `invalid --secret ${JSON.stringify(spec)}: secret ID missing: use id=NAME,src=FILE or id=NAME,env=VARIABLE`);
    if (type === 'env' && env === undefined) [env, src] = [src ?? id, undefined];
    if (src === undefined && env === undefined) {
      if (type !== 'file' && process.env[id] !== undefined) env = id;
      else src = id;
    }
    if (env !== undefined && src === undefined) {
      const value = process.env[env];
      if (value === undefined) throw new KilnError('INVALID_ARGUMENT', `--secret id=${id}: the environment variable ${env} is not set`);
      if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new KilnError('INVALID_ARGUMENT', `--secret id=${id}: secret too big (max size 500KB)`);
      values.set(id, value);
      continue;
    }
    const file = resolve(src as string);
    const found = await stat(file).catch((err: Error) => {
      throw new KilnError('INVALID_ARGUMENT', `--secret id=${id}: cannot read ${src}: ${err.message}`);
    });
    if (!found.isFile()) throw new KilnError('INVALID_ARGUMENT', `--secret id=${id}: ${src} is not a file`);
    if (found.size > MAX_SECRET_BYTES) throw new KilnError('INVALID_ARGUMENT', `--secret id=${id}: ${src} is too big for a secret (max size 500KB)`);
    files.set(id, file);
  }
  return { files, values };
}

/**
 * BuildKit's plain progress: `#N [stage i/n] INSTRUCTION`, its output lines with the seconds since the
 * step began, then `#N DONE 1.2s` or `#N CACHED`. Never clipped: every output line is shown.
 */
function plainProgress(io: Io): Progress {
  const started = new Map<number, number>();
  const partial = new Map<number, string>();
  const flush = (id: number): void => {
    const rest = partial.get(id);
    if (rest) io.stderr.write(`#${id} ${((Date.now() - (started.get(id) ?? Date.now())) / 1000).toFixed(3)} ${rest}\n`);
    partial.delete(id);
  };
  const event = (event: BuildEvent): void => {
    switch (event.type) {
      case 'step':
        started.set(event.id, Date.now());
        io.stderr.write(`#${event.id} ${event.name}\n`);
        break;
      case 'cached':
        io.stderr.write(`#${event.id} CACHED\n\n`);
        break;
      case 'log': {
        const lines = ((partial.get(event.id) ?? '') + event.text).split('\n');
        partial.set(event.id, lines.pop() ?? '');
        const elapsed = ((Date.now() - (started.get(event.id) ?? Date.now())) / 1000).toFixed(3);
        for (const line of lines) io.stderr.write(`#${event.id} ${elapsed} ${line}\n`);
        break;
      }
      case 'done':
        flush(event.id);
        io.stderr.write(`#${event.id} DONE ${event.seconds.toFixed(1)}s\n\n`);
        break;
      case 'error':
        flush(event.id);
        io.stderr.write(`#${event.id} ERROR: ${event.message.split('\n')[0] ?? ''}\n\n`);
        break;
    }
  };
  return { event, finish: () => undefined };
}

/** Commander takes every `--no-…` flag for a negated boolean; `--no-cache-filter` is a flag with a value. */
function notNegated(option: Option): Option {
  option.negate = false;
  return option;
}

interface StepView {
  readonly name: string;
  readonly started: number;
  ended?: number;
  state: 'running' | 'cached' | 'done' | 'error';
  lastLine: string;
}

/** A progress display: takes build events, and is told when the build ends. */
interface Progress {
  readonly event: (event: BuildEvent) => void;
  readonly finish: (ok: boolean) => void;
}

/**
 * BuildKit's tty progress: a `[+] Building` header and one line per step with its time, redrawn in
 * place 10 times a second; a running step shows its latest output line under it. Only the latest steps
 * that fit the terminal are drawn: a frame of 20,000 steps per event made 20,000 LABELs take hours.
 * The last frame stays on the screen.
 */
function ttyProgress(io: Io): Progress {
  const started = Date.now();
  const steps = new Map<number, StepView>();
  let finished = 0;
  let drawn = 0;
  const seconds = (from: number, to = Date.now()): string => `${((to - from) / 1000).toFixed(1)}s`;
  const width = (): number => Math.max(40, ((io.stderr as { columns?: number }).columns ?? 100) - 1);
  const height = (): number => Math.max(4, ((io.stderr as { rows?: number }).rows ?? 24) - 2);
  const clip = (line: string): string => (line.length > width() ? `${line.slice(0, width() - 1)}…` : line);
  const draw = (ok?: boolean): void => {
    const lines = [`[+] Building ${seconds(started)} (${finished}/${steps.size})${ok === undefined ? '' : ok ? ' FINISHED' : ' FAILED'}`];
    const shown: string[] = [];
    // From the newest step back, as many lines as fit.
    for (const step of [...steps.values()].slice(-height()).reverse()) {
      const label = `${step.state === 'cached' ? 'CACHED ' : step.state === 'error' ? 'ERROR ' : ''}${step.name}`;
      const time = seconds(step.started, step.ended);
      const room = width() - time.length - 5;
      if (step.state === 'running' && step.lastLine) shown.push(clip(` => => # ${step.lastLine}`));
      shown.push(` => ${(label.length > room ? `${label.slice(0, room - 1)}…` : label).padEnd(room)} ${time}`);
      if (shown.length >= height()) break;
    }
    lines.push(...shown.slice(0, height()).reverse());
    io.stderr.write(`${drawn > 0 ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
    // Lines of a taller frame before stay below this one: clear them.
    if (drawn > lines.length) io.stderr.write(`${'\x1b[2K\n'.repeat(drawn - lines.length)}\x1b[${drawn - lines.length}A`);
    drawn = lines.length;
  };
  const timer = setInterval(() => draw(), 100);
  return {
    event: (event) => {
      const step = steps.get(event.id);
      if (event.type === 'step') steps.set(event.id, { name: event.name, started: Date.now(), state: 'running', lastLine: '' });
      else if (step && event.type === 'log') step.lastLine = event.text.trimEnd().split('\n').at(-1) ?? step.lastLine;
      else if (step) {
        if (step.state === 'running') finished++;
        step.state = event.type === 'cached' ? 'cached' : event.type === 'done' ? 'done' : 'error';
        step.ended = Date.now();
      }
      // The first step shows at once; the timer redraws from there (a build shorter than its period is
      // still drawn, then redrawn finished).
      if (drawn === 0 && event.type === 'step') draw();
    },
    finish: (ok) => {
      clearInterval(timer);
      draw(ok);
    },
  };
}

export function registerBuild(parent: Command, ctx: CommandContext): Command {
  return addRuntimeFlags(parent.command('build'), 'RUN steps', null)
    .description('Build an image from a Dockerfile')
    .argument('<PATH>', 'the build context directory')
    .option('-t, --tag <name:tag>', 'name and optionally a tag (repeatable)', collect)
    .option('-f, --file <path>', 'name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)')
    .option('--build-arg <KEY=value>', 'set build-time variables', collect)
    .option('--target <stage>', 'set the target build stage to build')
    .option('--label <KEY=value>', 'set metadata for an image', collect)
    .option('--no-cache', 'do not use cache when building the image')
    .addOption(notNegated(new Option('--no-cache-filter <stage>', 'do not cache the named stages (repeatable)').argParser(collect)))
    .option('--cache-from <source>', 'cache sources: an image (kiln-built images carry their build cache), "type=registry,ref=REF" or "type=local,src=DIR"', collect)
    .option('--cache-to <dest>', 'cache export destinations: "type=registry,ref=REF[,mode=min|max]" or "type=local,dest=DIR[,mode=min|max]"', collect)
    .option('--pull [bool]', 'always attempt to pull a newer version of the image')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .option('--iidfile <file>', 'write the image ID to the file')
    .option('-q, --quiet', 'suppress the build output and print the image ID on success')
    .option('--progress <type>', 'progress output: auto, plain, tty, quiet', 'auto')
    .option('--platform <os/arch>', 'target platform (only the host platform)')
    .option('--secret <id=…,src=…|env=…>', 'secret to expose to RUN --mount=type=secret: a file (src=) or an environment variable (env=); id alone is the variable of that name if set, else the file', collect)
    .option('--network <mode>', 'networking mode for RUN: default, none, host')
    .option('--add-host <host:ip>', 'add a custom host-to-IP mapping (host:ip) to the /etc/hosts of RUN steps', collect)
    .option('--build-context <name=dir|docker-image://ref>', 'additional build contexts, which FROM, COPY --from and RUN --mount from= name (before a stage or image of that name)', collect)
    .option('--metadata-file <file>', 'write build result metadata to a file (buildx\'s: the image\'s config and manifest digests, its names)')
    .option('--ssh <default|id[=socket|key[,key]]>', 'SSH agent socket or keys for RUN --mount=type=ssh (default: $SSH_AUTH_SOCK)', collect)
    .option('--shm-size <bytes>', 'size of /dev/shm in RUN steps (default 64m)')
    .option('--ulimit <name=soft[:hard]>', 'ulimit options of RUN steps (nofile=1024:2048; -1 is unlimited)', collect)
    .option('--squash', 'squash newly built layers into a single new layer')
    .option('--timestamp <seconds>', 'set every created time to this Unix time (like SOURCE_DATE_EPOCH)')
    .option('-o, --output <spec>', 'where the result goes: PATH or type=local,dest=DIR (its files), - or type=tar[,dest=FILE] (a tar of them), type=docker|oci[,dest=FILE] (an image archive), type=oci,dest=DIR,tar=false (an OCI layout), type=image[,name=N][,push=true], type=registry[,name=N], type=cacheonly', collect)
    .option('--allow <entitlement>', 'grant an entitlement: security.insecure (RUN --security=insecure runs privileged) or network.host (always granted)', collect)
    .option('--provenance <value>', 'buildx\'s provenance attestation: kiln attaches none (false is accepted; anything else is a warning)')
    .option('--sbom <value>', 'buildx\'s SBOM attestation: kiln attaches none (false is accepted; anything else is a warning; kiln sbom IMAGE writes one)')
    .option('--attest <spec>', 'buildx\'s attestations (type=provenance|sbom): kiln attaches none (disabled=true is accepted; anything else is a warning)', collect)
    .option('--push', 'push the image to its registry once built (shorthand for --output=type=registry; needs -t)')
    .option('--load', 'put the image in kiln\'s store (what a build does anyway; shorthand for --output=type=docker)')
    .option('--check', 'run the lint rules on the Dockerfile the build would use (args and target resolved) and build nothing; exit 1 on findings')
    .action((argument: string, flags: BuildFlags) =>
      withEngine(ctx, async (engine) => {
        const runtimeFlags = checkPickedRuntimeFlags(flags);
        if (!['auto', 'plain', 'tty', 'quiet', 'rawjson'].includes(flags.progress)) throw new KilnError('INVALID_ARGUMENT', `invalid --progress ${JSON.stringify(flags.progress)}: use auto, plain, tty or quiet`);
        const network = buildNetwork(flags.network, '--network');
        const epochText = flags.timestamp ?? process.env.SOURCE_DATE_EPOCH;
        if (epochText !== undefined && epochText !== '' && !/^\d+$/.test(epochText)) throw new KilnError('INVALID_ARGUMENT', `invalid timestamp ${JSON.stringify(epochText)}: give seconds since the Unix epoch`);
        const buildArgs = new Map((flags.buildArg ?? []).flatMap((entry) => {
          const pair = keyValue(entry, '--build-arg');
          return pair ? [pair] : [];
        }));
        const labels = Object.fromEntries((flags.label ?? []).map((entry) => keyValue(entry, '--label') ?? [entry, '']));
        // The context: a directory as it is, or what stdin, a git repository or a URL holds, made into one for the build.
        const { contextSource, dockerfileInContext, withBuildContext } = await import('../../engine/context-source.js');
        const source = contextSource(argument, () => ctx.io.stdin as AsyncIterable<Uint8Array>);
        if (source.kind === 'stream' && flags.file === '-') throw new KilnError('INVALID_ARGUMENT', 'the build context and the Dockerfile cannot both be read from stdin (PATH - with -f -)');
        await withBuildContext(engine, source, async (context) => {
          const path = context.dir;
          // The Dockerfile is read once, for the checks and the build (a small file: at once, not through the
          // thread pool); one that cannot be read is left to them to report.
          // A context kiln made (from stdin, git or a URL) holds the Dockerfile -f names, as Docker reads it there.
          const inContext = context.copied && flags.file !== '-' ? dockerfileInContext(context, flags.file) : undefined;
          const named = inContext ? ('path' in inContext ? inContext.path : undefined) : flags.file === '-' ? undefined : flags.file !== undefined ? resolve(flags.file) : join(path, 'Dockerfile');
          const text = inContext && 'text' in inContext ? inContext.text : named === undefined ? await readStdin(ctx.io) : readTextIfPresent(named);
          const dockerfile = named === undefined ? { text: text ?? '' } : { path: named, ...(text !== undefined ? { text } : {}), ...(inContext && 'display' in inContext ? { display: inContext.display } : {}) };
          const quiet = flags.quiet === true || flags.progress === 'quiet';
          const exported = await buildExport(flags.output ?? [], flags, ctx.io);
          const tags = [...(flags.tag ?? []), ...exported.names];
          // -o local and tar write the result's files, cacheonly nothing: no image is its result.
          const filesOnly = exported.output?.type === 'local' || exported.output?.type === 'tar' || exported.output?.type === 'cacheonly';
          // The build checks: `--check` runs every rule and stops; a build prints BuildKit's at its start.
          const { buildChecks } = await import('./lint.js');
          if (!(await buildChecks(ctx, engine, { path, dockerfile, buildArgs, target: flags.target, check: flags.check === true, quiet }))) return;
          // Asked only when progress is shown: making process.stderr (a pipe's loads Node's net and stream modules) costs a quiet build some ms.
          const live = !quiet && (flags.progress === 'tty' || (flags.progress === 'auto' && (ctx.io.stderr as { isTTY?: boolean }).isTTY === true));
          const progress: Progress = quiet ? { event: () => undefined, finish: () => undefined } : live ? ttyProgress(ctx.io) : plainProgress(ctx.io);
          const { buildImage, buildMetadata } = await import('../../engine/build.js'); // the builder loads only for builds
          const result = await buildImage(engine, {
            contextDir: path,
            dockerfile,
            tags,
            buildArgs,
            ...(flags.target !== undefined ? { target: flags.target } : {}),
            labels,
            noCache: !flags.cache,
            noCacheFilter: flags.noCacheFilter ?? [],
            cacheFrom: flags.cacheFrom ?? [],
            ...(flags.cacheTo ? { cacheTo: flags.cacheTo } : {}),
            squash: flags.squash === true,
            ...(await secrets(flags.secret ?? []).then(({ files, values }) => ({ secrets: files, ...(values.size > 0 ? { secretValues: values } : {}) }))),
            ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
            ...(epochText ? { epoch: Number(epochText) } : {}),
            ...(network ? { network } : {}),
            extraHosts: flags.addHost ?? [],
            ulimits: parseUlimits(flags.ulimit ?? []),
            buildContexts: flags.buildContext ?? [],
            ...(flags.shmSize !== undefined ? { shmSize: parseMemoryBytes(flags.shmSize, '--shm-size') } : {}),
            ssh: flags.ssh ?? [],
            ...runtimeFlags,
            pull: flags.pull !== undefined && (flags.pull === (true as unknown) || parseBool(flags.pull)),
            registry: { insecureRegistries: insecure(flags) },
            notice: (message) => ctx.io.stderr.write(`${message}\n`),
            events: progress.event,
            ...(exported.output ? { output: exported.output } : {}),
            ...(exported.push ? { push: true } : {}),
            ...(flags.allow ? { allow: flags.allow } : {}),
          }).then(
            (done) => {
              progress.finish(true);
              return done;
            },
            (err: unknown) => {
              progress.finish(false);
              throw err;
            },
          );
          for (const warning of [...attestationWarnings(flags), ...result.warnings]) ctx.io.stderr.write(`[Warning] ${warning}\n`);
          if (flags.metadataFile) {
            await writeFile(flags.metadataFile, `${JSON.stringify(await buildMetadata(engine, filesOnly ? undefined : result.id, exported.output ? [] : tags), null, 2)}\n`);
          }
          if (filesOnly) {
            // As BuildKit: no image is named, so -q prints an empty ID (unless stdout took the tar).
            if (quiet && !exported.toStdout) print(ctx.io, '');
            return;
          }
          if (flags.iidfile) await writeFile(flags.iidfile, result.id);
          if (quiet) {
            if (!exported.toStdout) print(ctx.io, result.id);
          } else if (!exported.output) {
            ctx.io.stderr.write(`writing image ${result.id} done\n`);
            for (const tag of tags) ctx.io.stderr.write(`naming to ${tag} done\n`);
          }
        });
      }),
    );
}

export async function readStdin(io: Io): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}
