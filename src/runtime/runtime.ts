import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { KilnError } from '../errors.js';

const run = promisify(execFile);

export type RuntimeName = 'runc' | 'crun';

const HUGETLB = '/sys/fs/cgroup/hugetlb';

/**
 * crun 1.8 refuses to start on a hybrid cgroup host (v1 controllers plus a v2 `unified` mount) unless the
 * hugetlb controller is mounted as a v1 hierarchy too. kiln mounts it (root only) and says so; runc
 * needs nothing. Returns what kiln did, for the caller to tell the user.
 */
export async function prepareRuntime(runtime: RuntimeName): Promise<string | undefined> {
  if (runtime !== 'crun') return undefined;
  const hybrid = existsSync('/sys/fs/cgroup/unified') && existsSync('/sys/fs/cgroup/memory');
  if (!hybrid) return undefined;
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  if (mounts.split('\n').some((line) => line.split(' ')[1] === HUGETLB)) return undefined;
  await mkdir(HUGETLB, { recursive: true });
  await run('mount', ['-t', 'cgroup', '-o', 'hugetlb', 'cgroup', HUGETLB]).catch((err: Error) => {
    throw new KilnError('UNSUPPORTED', `crun needs the hugetlb cgroup controller mounted on this hybrid-cgroup host, and mounting it failed (${err.message.trim()}); use --runtime runc`);
  });
  return `kiln: mounted the hugetlb cgroup v1 controller at ${HUGETLB}, which crun needs on this hybrid-cgroup host (runc does not)`;
}

/**
 * Runs a bundle's process in the OCI runtime in the foreground: stdio passes through, the exit code comes
 * back, SIGINT/SIGTERM sent to kiln reach the container's process (runc forwards what it receives).
 * `runc run` removes the container's runtime state when the process exits.
 */
export interface BundleStdio {
  readonly stdin: 'inherit' | 'ignore';
  readonly keepLogs: boolean;
  readonly tty?: boolean;
  /** Where the process's output goes instead of kiln's own stdout/stderr (a build step's log). */
  readonly output?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export async function runBundle(runtime: RuntimeName, bundle: string, id: string, spec: object, stdio: BundleStdio): Promise<number> {
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  // With a terminal, runc itself allocates the pseudo-terminal and relays it to the one kiln runs in,
  // so every stream is inherited as it is (no logs are kept for such a run).
  const child = stdio.tty
    ? spawn(runtime, ['run', '--bundle', bundle, id], { stdio: 'inherit' })
    : spawn(runtime, ['run', '--bundle', bundle, id], { stdio: [stdio.stdin, stdio.keepLogs || stdio.output ? 'pipe' : 'inherit', 'pipe'] });
  const write = stdio.output ?? ((stream: 'stdout' | 'stderr', chunk: Buffer) => process[stream].write(chunk));
  // A kept container's output is also written to its bundle, for `kiln logs`.
  const stdoutLog = stdio.keepLogs && !stdio.tty ? createWriteStream(logPath(bundle, 'stdout')) : undefined;
  const stderrLog = stdio.keepLogs && !stdio.tty ? createWriteStream(logPath(bundle, 'stderr')) : undefined;
  child.stdout?.on('data', (chunk: Buffer) => {
    write('stdout', chunk);
    stdoutLog?.write(chunk);
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 65536) stderr += chunk.toString();
    write('stderr', chunk);
    stderrLog?.write(chunk);
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (err) =>
        reject(new KilnError('NOT_FOUND', `cannot start the OCI runtime ${runtime}: ${err.message} (install Debian's ${runtime} package, or pick another with --runtime)`)),
      );
      child.on('exit', (code, signal) => {
        if (/cgroups in hybrid mode not supported/.test(stderr)) {
          reject(new KilnError('UNSUPPORTED', `${runtime} refuses this machine's hybrid cgroup setup; use --runtime runc, or mount the hugetlb controller: mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`));
        } else if (/executable file not found|no such file or directory/.test(stderr) && code !== 0) {
          resolve(127); // Docker's codes when the command cannot be found or run
        } else if (/permission denied/.test(stderr) && code !== 0) {
          resolve(126);
        } else resolve(code ?? 128 + (signal ? (({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }) as Record<string, number>)[signal] ?? 1 : 1));
      });
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    for (const log of [stdoutLog, stderrLog]) if (log) await new Promise((resolve) => log.end(resolve));
  }
}

/** Where a kept container's output is logged. */
export function logPath(bundle: string, stream: 'stdout' | 'stderr'): string {
  return join(bundle, `${stream}.log`);
}
