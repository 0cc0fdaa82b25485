import assert from 'node:assert/strict';
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BUILD_CASES, type BuildCase, writeContext } from '../helpers/build-cases.js';
import type { BuildReply, BuildRequest } from '../helpers/build-worker.js';
import { fixture } from '../helpers/fixtures.js';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { prng } from '../helpers/prng.js';

/**
 * The build fuzz: a seeded PRNG mutates valid Dockerfiles (characters, lines and tokens inserted,
 * deleted, duplicated and swapped; flags, heredocs, escapes, huge repeats, NUL and control bytes,
 * unicode, invalid UTF-8) and each mutant is built against busybox, bounded in time: a quarter by
 * `kiln build` (with each progress display), the rest in-process through the engine by a worker process
 * per store (a process start per mutant would take most of the time). A build may succeed or fail, but
 * only with exit code 0 or 1 and one `Error:` line (a KilnError in-process): never an internal error, a
 * stack trace or a hang, and the store is never damaged.
 *
 * KILN_FUZZ_SEED=<n> replays a run (the seed is printed), KILN_FUZZ_ONLY=<i> only its mutant i;
 * KILN_FUZZ_COUNT sets the number of mutants.
 */
const SEED = Number(process.env.KILN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const COUNT = Number(process.env.KILN_FUZZ_COUNT ?? 300);
const ONLY = process.env.KILN_FUZZ_ONLY === undefined ? undefined : Number(process.env.KILN_FUZZ_ONLY);
/** Builds at once, each against a store of its own. */
const WORKERS = 4;
const BOUND_MS = 30_000;
/** What kiln prints is kept up to this much: a mutant may print a lot. */
const KEPT_OUTPUT = 1 << 20;
/** The longest mutant: big enough for every limit kiln has, small enough to keep 300 in memory. */
const MAX_MUTANT = 8 << 20;

const skip = isRoot ? false : 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root';

/** Seeds beyond the build suite's cases: the syntax those leave out. */
const EXTRA_SEEDS: readonly BuildCase[] = [
  { name: 'patterns', buildkit: false, dockerfile: 'FROM busybox\nARG V=1.22.3-rc1\nENV MAJOR=${V%%.*} REST=${V#*.} DASHED=${V//./-} SUFFIX=${V##*-} LEN=${#V}\nLABEL version="$V" major=$MAJOR\nRUN echo "$MAJOR $REST $DASHED $SUFFIX $LEN" > /v\n' },
  { name: 'doubling', buildkit: false, dockerfile: 'FROM busybox\nARG A=ab\nARG A=${A}${A}\nARG A=${A}${A}\nLABEL a=$A b=${A:-none} c=${UNSET:+set}\nRUN test "${#A}" = 8\n' },
  { name: 'mounts-and-heredocs', buildkit: false, files: { 'a.txt': 'alpha\n' }, dockerfile: 'FROM busybox AS tools\nRUN echo tool > /tool\nFROM busybox\nRUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c,sharing=locked --mount=type=tmpfs,target=/tmp/x cat /t/tool > /copied\nCOPY --chmod=0640 --link <<EOF /etc/conf\nname=$HOSTNAME\nEOF\nRUN <<EOT\nset -e\necho heredoc > /hd\nEOT\nCOPY --exclude=*.md . /ctx/\n' },
  { name: 'metadata', buildkit: false, dockerfile: 'FROM busybox\nUSER 1000:1000\nWORKDIR /srv/app\nEXPOSE 8080/tcp 9000-9002/udp\nVOLUME ["/data"]\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=30s --retries=3 CMD ["true"]\nONBUILD COPY . /app\nENTRYPOINT ["sh", "-c"]\nCMD ["echo hi"]\nSHELL ["/bin/sh", "-ec"]\n' },
];
const SEEDS: readonly BuildCase[] = [...BUILD_CASES, ...EXTRA_SEEDS];

const KEYWORDS = ['FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL'];
const FLAGS = ['--from=0', '--from=busybox', '--from=nosuchstage', '--chown=1000:1000', '--chown=nobody', '--chmod=0755', '--chmod=99999', '--link', '--exclude=*.txt', '--mount=type=cache,target=/var/cache', '--mount=type=bind,source=.,target=/ctx', '--mount=type=secret,id=token', '--mount=type=tmpfs,target=/t', '--mount=type=bogus', '--network=none', '--network=host', '--platform=linux/amd64', '--interval=1s', '--retries=-1', '--checksum=sha256:00', '--bogus=1', '--', '--=', '--mount'];
const TOKENS = [...KEYWORDS, ...FLAGS, 'AS', 'as', 'scratch', 'busybox', '$A', '${A}', '${A:-x}', '${A//a/b}', '${A%%*}', '${#A}', '${', '}', '"', "'", '\\', '`', '[', ']', '["sh", "-c", "true"]', '[]', '{}', '=', '==', 'a=b', '<<EOF', '<<-"EOF"', '.', '..', '/', '../..', '*', '**', '?', '#', '&&', ';', '|'];
/** Instructions at the edges of what is valid, inserted whole. */
const EDGE_LINES = [
  'FROM scratch', 'FROM busybox AS x', 'FROM x', 'FROM --platform=linux/arm64 busybox', 'FROM busybox@sha256:0000', 'FROM 0',
  'COPY --from=0 / /', 'COPY --from=busybox /bin/busybox /', 'COPY ../ /up/', 'COPY /etc/passwd /p', 'COPY . .', 'COPY a.txt /etc/passwd/x', 'COPY * /',
  'COPY --chown=a:b:c a.txt /x', 'COPY --chmod=7777 a.txt /x', 'COPY <<A <<B /two/\na\nA\nb\nB', 'COPY <<EOF /dev/null\nx\nEOF', 'COPY a.txt /proc/x',
  'ADD http://127.0.0.1:1/x /x', 'ADD --checksum=sha256:0 a.txt /x', 'ADD . /ctx', 'ADD archive.tar /../../',
  'WORKDIR ..', 'WORKDIR /etc/passwd', 'WORKDIR /proc/self', 'WORKDIR ""', 'WORKDIR $NOPE',
  'RUN --mount=type=bind,source=../..,target=/x true', 'RUN --mount=type=cache,target=/,sharing=locked true', 'RUN --mount=type=secret,id=x,required=true true',
  'RUN --mount=type=bind,from=nosuch,target=/x true', 'RUN --mount=type=cache,target=/c,uid=99999999999 true', 'RUN --mount=type=cache,target=/c,mode=77777777777 true',
  'RUN --mount=type=secret,id=s,target=/etc/passwd,uid=4294967295 true', 'RUN --mount=type=cache,target=/c,id=../../etc true', 'RUN --network=none ping -c1 127.0.0.1',
  'RUN [""]', 'RUN ["/nonexistent"]', 'RUN exit 200', 'RUN kill -9 $$', 'RUN rm -rf /bin', 'RUN mkdir -p /a && ln -s / /a/root', 'RUN ln -sf /proc/self/root /loop',
  'USER :', 'USER 0:0', 'USER nobody:nogroup', 'EXPOSE 0-65536', 'EXPOSE 65535/sctp', 'VOLUME []', 'VOLUME ["", "/x"]', 'SHELL []', 'SHELL ["/nonexistent"]',
  'ENTRYPOINT []', 'CMD []', 'STOPSIGNAL 99999', 'HEALTHCHECK --interval=999999999999h CMD true', 'HEALTHCHECK --retries=99999999999999999999 CMD true',
  'ONBUILD ONBUILD RUN true', 'ONBUILD FROM x', 'ARG A=${A:?must be set}', 'ENV A=${A/[/x}', 'ENV A=${A:1:2}', 'LABEL "a b"="c" \\\n d=e', 'MAINTAINER', 'ARG', 'ENV =x',
];

/** Characters with a meaning somewhere in a Dockerfile, and some without. */
const CHARACTERS = ' \t\n\\`"\'$={}[]#<>-:/*?.,;&|!@%^~0123456789abcxyzAZ_';
const CONTROL = ['\0', '\x01', '\x07', '\b', '\v', '\f', '\r', '\x1b', '\x7f', '\x1b[2J', '\x1b]0;title\x07', '\r\n', '\x85'];
const UNICODE = ['é', 'ß', '中文', 'ｆｕｌｌ', '🐳', '👩‍👩‍👧', '\u202e', '\u200b', '\u0301', '\ufeff', '\u2028', '\u00a0', '\u3000', '\ud800', '\uffff', 'İ', 'K'];
/** Stands for bytes that are not UTF-8, written as such when the mutant is saved. */
const INVALID_UTF8 = '\ue000';
/** Instructions that change only the config: a huge repeat of these is cheap for Docker, so it must be for kiln. */
const CONFIG_ONLY = /^\s*(LABEL|ENV|ARG|EXPOSE|CMD|ENTRYPOINT|USER|STOPSIGNAL|HEALTHCHECK|MAINTAINER|ONBUILD|SHELL|VOLUME|#)/i;

class Random {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = prng(seed);
  }

  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** A size spread over orders of magnitude, from 1 to `max`. */
  size(max: number): number {
    return Math.max(1, Math.floor(Math.exp(this.next() * Math.log(max))));
  }
}

type Mutation = (text: string, random: Random) => string;

const at = (text: string, random: Random): number => random.int(text.length + 1);
const splice = (text: string, start: number, remove: number, insert: string): string => text.slice(0, start) + insert + text.slice(start + remove);
const lines = (text: string): string[] => text.split('\n');
const editLine = (text: string, random: Random, edit: (line: string) => string): string => {
  const all = lines(text);
  const index = random.int(all.length);
  all[index] = edit(all[index] ?? '');
  return all.join('\n');
};

const MUTATIONS: readonly (readonly [string, Mutation])[] = [
  ['insert character', (text, r) => splice(text, at(text, r), 0, r.pick([...CHARACTERS]))],
  ['delete characters', (text, r) => splice(text, at(text, r), r.size(8), '')],
  ['duplicate characters', (text, r) => {
    const start = at(text, r);
    return splice(text, start, 0, text.slice(start, start + r.size(12)));
  }],
  ['swap characters', (text, r) => {
    const i = r.int(Math.max(1, text.length - 1));
    return text.slice(0, i) + text.slice(i + 1, i + 2) + text.slice(i, i + 1) + text.slice(i + 2);
  }],
  ['delete line', (text, r) => {
    const all = lines(text);
    all.splice(r.int(all.length), 1);
    return all.join('\n');
  }],
  ['duplicate line', (text, r) => {
    const all = lines(text);
    const index = r.int(all.length);
    all.splice(index, 0, ...Array<string>(r.size(3)).fill(all[index] ?? ''));
    return all.join('\n');
  }],
  ['swap lines', (text, r) => {
    const all = lines(text);
    const [i, j] = [r.int(all.length), r.int(all.length)];
    [all[i], all[j]] = [all[j] ?? '', all[i] ?? ''];
    return all.join('\n');
  }],
  ['token', (text, r) =>
    editLine(text, r, (line) => {
      const words = line.split(' ');
      const i = r.int(words.length);
      const how = r.int(4);
      if (how === 0) words.splice(i, 1);
      else if (how === 1) words.splice(i, 0, words[i] ?? '');
      else if (how === 2) [words[i], words[0]] = [words[0] ?? '', words[i] ?? ''];
      else words.splice(i, r.chance(0.5) ? 1 : 0, r.pick(TOKENS));
      return words.join(' ');
    })],
  ['flag', (text, r) => editLine(text, r, (line) => line.replace(/^(\s*\S+)/, `$1 ${r.pick(FLAGS)}`))],
  ['keyword', (text, r) => editLine(text, r, (line) => line.replace(/^(\s*)\S+/, `$1${r.chance(0.5) ? r.pick(KEYWORDS) : r.pick(KEYWORDS).toLowerCase()}`))],
  ['heredoc', (text, r) => {
    const all = lines(text);
    const index = r.int(all.length);
    const name = r.pick(['EOF', 'E', '"EOF"', "'EOF'", '-EOF', 'EOF EOF', '']);
    const body = r.pick(['echo hi > /hd', '#!/bin/sh\necho $0', 'x=$HOME\n\techo "$x"', '']);
    const terminated = r.chance(0.8);
    all.splice(index, 1, `${all[index] ?? ''} <<${name}`, ...(body ? [body] : []), ...(terminated ? [name.replace(/["'-]/g, '').split(' ')[0] ?? ''] : []));
    return all.join('\n');
  }],
  ['escape', (text, r) => {
    const how = r.int(3);
    if (how === 0) return editLine(text, r, (line) => `${line}${r.pick(['\\', '\\ ', '`', '\\\\'])}`);
    if (how === 1) return `${r.pick(['# escape=`', '# escape=\\', '# escape=x', '# syntax=docker/dockerfile:1', '#escape=`   '])}\n${text}`;
    return splice(text, at(text, r), 0, r.pick(['\\\n', '`\n', '\\\n\n', '\\\n# comment\n']));
  }],
  ['huge repeat', (text, r) => {
    const how = r.int(4);
    if (how === 0) {
      // A character or a word repeated in place, tens of thousands of times. Its shell operators become
      // letters: repeated in a RUN line, `l& ` started a process per repeat, 27,000 of them, a minute of
      // the command's own work that the time bound took for a hang of kiln's.
      const start = at(text, r);
      return splice(text, start, 0, (text.slice(start, start + r.size(4)) || 'x').replace(/[&|;`]/g, 'x').repeat(1000 + r.int(100_000)));
    }
    if (how === 1) {
      // A config-only line repeated thousands of times (20,000 LABELs once hung the build).
      const all = lines(text);
      const candidates = all.map((line, i) => [line, i] as const).filter(([line]) => CONFIG_ONLY.test(line));
      const [line, index] = candidates.length > 0 ? r.pick(candidates) : [`LABEL l${r.int(10)}=v`, all.length];
      // As many as fit in a mutant: the line may itself be a huge repeat (a join past V8's longest string throws).
      const count = Math.min(100 + r.int(20_000), Math.floor(MAX_MUTANT / (line.length + 1)));
      all.splice(index, 0, ...Array<string>(count).fill(line));
      return all.join('\n');
    }
    if (how === 2) return `${text}\n${Array<string>(20 + r.int(20)).fill('ARG A=${A}${A}').join('\n')}\nLABEL a=$A\n`;
    return `${text}\n${r.pick(['ENV', 'LABEL', 'ARG'])} big=${'v'.repeat(r.size(3_000_000))}\n`;
  }],
  ['control bytes', (text, r) => splice(text, at(text, r), 0, r.pick(CONTROL))],
  ['unicode', (text, r) => splice(text, at(text, r), 0, r.chance(0.2) ? INVALID_UTF8 : r.pick(UNICODE))],
  ['edge line', (text, r) => {
    const all = lines(text);
    all.splice(1 + r.int(all.length), 0, r.pick(EDGE_LINES));
    return all.join('\n');
  }],
  ['number', (text, r) => text.replace(/\d+/, r.pick(['0', '-1', '99999999999999999999', '4294967296', '65536', '1e9', '0x10', '007']))],
];

interface Mutant {
  readonly index: number;
  readonly seed: BuildCase;
  readonly mutations: readonly string[];
  readonly dockerfile: string;
  /** In-process through the engine, or `kiln build` with this progress display. */
  readonly how: 'engine' | 'quiet' | 'plain' | 'tty';
}

/** Mutant `index` of a run: made by a PRNG of its own, so that any one can be made again alone. */
function makeMutant(seed: number, index: number): Mutant {
  const random = new Random((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const source = random.pick(SEEDS);
  let dockerfile = source.dockerfile;
  const applied: string[] = [];
  for (let n = 1 + random.int(3); n > 0; n--) {
    const [name, mutate] = random.pick(MUTATIONS);
    const mutated = mutate(dockerfile, random);
    if (mutated.length > MAX_MUTANT) continue;
    dockerfile = mutated;
    applied.push(name);
  }
  return { index, seed: source, mutations: applied, dockerfile, how: random.chance(0.75) ? 'engine' : random.pick(['quiet', 'plain', 'tty'] as const) };
}

/** The bytes of a mutant: the invalid-UTF-8 marker becomes bytes no UTF-8 decoder accepts. */
function mutantBytes(dockerfile: string): Buffer {
  return Buffer.concat(dockerfile.split(INVALID_UTF8).flatMap((part, i) => (i === 0 ? [Buffer.from(part)] : [Buffer.from([0xff, 0xc3, 0x28]), Buffer.from(part)])));
}

interface Outcome {
  readonly code: number | 'timeout' | 'died';
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs kiln in a process group of its own, killed (with the runtime it started) when it outlives the bound. */
function runBounded(root: string, args: readonly string[]): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, '--root', root, ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    // Its start and its end, where the error is (after a flood of warnings, say).
    let head = '';
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (head.length < KEPT_OUTPUT) head += chunk.toString();
      else tail = (tail + chunk.toString()).slice(-KEPT_OUTPUT);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, BOUND_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? 'timeout' : (code ?? -1), stderr: tail === '' ? head : `${head}\n…\n${tail}`, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const WORKER_SCRIPT = fileURLToPath(new URL('../helpers/build-worker.js', import.meta.url));

/**
 * A build worker process (test/helpers/build-worker.ts) on one store. Lifecycle: started at its first
 * build, killed with its process group (and the runtime it started) when a build outlives the bound or
 * the test ends, started again at the next build.
 */
class BuildWorker {
  private child: Promise<ChildProcess> | undefined;
  private running: ChildProcess | undefined;
  private stderr = '';

  constructor(private readonly root: string) {}

  private start(): Promise<ChildProcess> {
    this.stderr = '';
    const child = fork(WORKER_SCRIPT, [this.root], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], detached: true });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.running = child;
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(child));
      child.once('exit', (code) => reject(new Error(`the build worker exited (${code}) before it was ready: ${this.stderr}`)));
    });
  }

  /** Builds in the worker: its reply as the CLI would show it. */
  async build(request: BuildRequest): Promise<Outcome> {
    this.child ??= this.start();
    const child = await this.child;
    const started = Date.now();
    const seconds = (): number => (Date.now() - started) / 1000;
    return new Promise((resolve) => {
      const done = (outcome: Omit<Outcome, 'seconds'>): void => {
        clearTimeout(timer);
        child.off('message', replied);
        child.off('exit', died);
        resolve({ ...outcome, seconds: seconds() });
      };
      const replied = (reply: BuildReply): void => {
        if (reply.built) done({ code: 0, stderr: '' });
        else if (reply.code === undefined) done({ code: 1, stderr: `kiln: internal error (please report it): ${reply.error}\n` });
        else done({ code: reply.code === 'INVALID_ARGUMENT' ? 125 : 1, stderr: `Error: ${reply.error}\n` });
      };
      const died = (code: number | null, signal: string | null): void => {
        this.child = undefined;
        done({ code: 'died', stderr: `the build worker died (${signal ?? code ?? ''}): ${this.stderr}` });
      };
      const timer = setTimeout(() => {
        this.stop();
        done({ code: 'timeout', stderr: this.stderr });
      }, BOUND_MS);
      child.on('message', replied);
      child.once('exit', died);
      child.send(request);
    });
  }

  stop(): void {
    const pid = this.running?.pid;
    this.running = undefined;
    this.child = undefined;
    try {
      if (pid !== undefined) process.kill(-pid, 'SIGKILL');
    } catch {
      // It has gone already.
    }
  }
}

/** The --build-arg and --label values of a case's arguments. */
function flagValues(args: readonly string[]): Pick<BuildRequest, 'buildArgs' | 'labels'> {
  const values = (flag: string): [string, string][] =>
    args.flatMap((arg, i) => {
      if (args[i - 1] !== flag) return [];
      const eq = arg.indexOf('=');
      return [[arg.slice(0, eq), arg.slice(eq + 1)]];
    });
  return { buildArgs: values('--build-arg'), labels: Object.fromEntries(values('--label')) };
}

/** Why an outcome is not a clean success or a clean error, or undefined when it is one of those. */
function fault(outcome: Outcome): string | undefined {
  if (outcome.code === 'timeout') return `no result in ${BOUND_MS / 1000} s`;
  if (outcome.code === 'died') return 'the build worker died';
  if (/internal error/.test(outcome.stderr)) return 'an internal error';
  if (/^\s+at .+:\d+:\d+\)?$/m.test(outcome.stderr)) return 'a stack trace';
  if (outcome.code !== 0 && outcome.code !== 1) return `exit code ${outcome.code}`;
  // The tty progress moves the cursor: what a terminal shows has no escape sequences.
  const shown = outcome.stderr.replace(/\p{Cc}\[\d*[A-Za-z]/gu, '');
  const errors = shown.split('\n').filter((line) => line.startsWith('Error: ')).length;
  if (outcome.code === 1 && errors !== 1) return `${errors} Error: lines`;
  return undefined;
}

/** What kind of error a refused build got: its message without the file, line and quoted words. */
function reason(stderr: string): string {
  const line = stderr.replace(/\p{Cc}\[\d*[A-Za-z]/gu, '').split('\n').find((l) => l.startsWith('Error: ')) ?? '';
  return line.replace(/^Error: (\S*Dockerfile[^:]*:\d+(:\d+)?: )?/, '').replace(/"[^"]*"|'[^']*'|\S*[/\d]\S*/g, '…').slice(0, 60);
}

describe('kiln build: fuzzed Dockerfiles', { skip }, () => {
  it(`${COUNT} mutated Dockerfiles: no internal error, no hang, no damaged store`, async (t) => {
    t.diagnostic(`seed ${SEED} (replay with KILN_FUZZ_SEED=${SEED})`);
    const indexes = ONLY === undefined ? Array.from({ length: COUNT }, (_v, i) => i) : [ONLY];
    const stores = await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        const store = await newKiln();
        await ok(store.kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
        return { ...store, worker: new BuildWorker(store.root) };
      }),
    );
    const contexts = new Map<string, Promise<string>>();
    const contextOf = (seed: BuildCase): Promise<string> => {
      const existing = contexts.get(seed.name) ?? writeContext(seed);
      contexts.set(seed.name, existing);
      return existing;
    };
    const dockerfiles = await tempDir('kiln-fuzz-');
    const faults: string[] = [];
    const tally = { built: 0, refused: 0, builtSeconds: 0, refusedSeconds: 0, slowest: 0 };
    const refusals = new Map<string, number>();
    let next = 0;
    const runs = Promise.all(
      stores.map(async (store, worker) => {
        await mkdir(join(dockerfiles, String(worker)));
        for (let index = indexes[next++]; index !== undefined; index = indexes[next++]) {
          const mutant = makeMutant(SEED, index);
          const file = join(dockerfiles, String(worker), `Dockerfile.${mutant.index}`);
          await writeFile(file, mutantBytes(mutant.dockerfile));
          // --target is left out: a mutant may rename the stage, and a missing target is the flag's error.
          const args = (mutant.seed.args ?? []).filter((arg, i, list) => arg !== '--target' && list[i - 1] !== '--target');
          const context = await contextOf(mutant.seed);
          const outcome = mutant.how === 'engine' ? await store.worker.build({ dockerfile: file, context, ...flagValues(args) }) : await runBounded(store.root, ['build', '--progress', mutant.how, ...args, '-f', file, context]);
          tally.slowest = Math.max(tally.slowest, outcome.seconds);
          if (outcome.code === 0) {
            tally.built++;
            tally.builtSeconds += outcome.seconds;
          } else {
            tally.refused++;
            tally.refusedSeconds += outcome.seconds;
            const kind = reason(outcome.stderr);
            refusals.set(kind, (refusals.get(kind) ?? 0) + 1);
          }
          const wrong = fault(outcome);
          if (wrong) {
            const shown = JSON.stringify(mutant.dockerfile.length > 600 ? `${mutant.dockerfile.slice(0, 600)}…` : mutant.dockerfile);
            faults.push(`mutant ${mutant.index} (KILN_FUZZ_SEED=${SEED} KILN_FUZZ_ONLY=${mutant.index}, case ${mutant.seed.name}, ${mutant.mutations.join(' + ')}, ${mutant.how === 'engine' ? 'in-process' : `--progress ${mutant.how}`}): ${wrong}\n  Dockerfile ${shown}\n  stderr: ${outcome.stderr.length > 2000 ? `${outcome.stderr.slice(0, 1000)}…${outcome.stderr.slice(-1000)}` : outcome.stderr}`);
          }
        }
      }),
    );
    try {
      await runs;
    } finally {
      for (const store of stores) store.worker.stop();
    }
    t.diagnostic(`${tally.built} built in ${tally.builtSeconds.toFixed(0)} s, ${tally.refused} refused in ${tally.refusedSeconds.toFixed(0)} s, slowest ${tally.slowest.toFixed(1)} s`);
    const common = [...refusals].sort((a, b) => b[1] - a[1]).slice(0, 12);
    t.diagnostic(`most common refusals: ${common.map(([kind, n]) => `${n}× ${kind}`).join('; ')}`);
    assert.deepEqual(faults, [], faults.join('\n\n'));
    for (const store of stores) {
      const check = await store.kiln(['system', 'check']);
      assert.equal(check.code, 0, `seed ${SEED}: ${check.stdout}${check.stderr}`);
      assert.doesNotMatch(check.stdout, /problem:/, `seed ${SEED}`);
    }
    // Some mutants stay valid and build, and some do not: the fuzz tests both paths.
    if (ONLY === undefined) assert.ok(tally.built > COUNT / 20 && tally.refused > COUNT / 20, JSON.stringify(tally));
  });
});
