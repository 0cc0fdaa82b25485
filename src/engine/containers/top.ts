/**
 * `docker top`: the container's processes as the host's `ps` shows them. The runtime names the
 * container's PIDs (`ps --format json`); the host's `ps` output is cut to their lines, as dockerd does.
 */
import { KilnError } from '../../errors.js';
import type { Engine } from '../engine.js';
import { findContainer, isRunning } from './records.js';
import { notRunning, runtimeOf } from './lifecycle.js';
import { execFileAsync } from '../../exec-file.js';

export interface ContainerTop {
  readonly Titles: string[];
  readonly Processes: string[][];
}

/** `ps` output cut to the lines of `pids`: each line's fields as many as the header's, the last holding the rest (the command). */
export function psLines(output: string, pids: ReadonlySet<number>): ContainerTop {
  const [header = '', ...lines] = output.split('\n');
  const titles = header.trim().split(/\s+/);
  const pidColumn = titles.indexOf('PID');
  if (pidColumn < 0) throw new KilnError('INVALID_ARGUMENT', `Couldn't find PID field in ps output`);
  const processes: string[][] = [];
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    if (line.trim() === '' || !pids.has(Number(fields[pidColumn]))) continue;
    processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
  }
  return { Titles: titles, Processes: processes };
}

/** `docker top CONTAINER [ps OPTIONS]` (`-ef` unless given). */
export async function topContainer(engine: Engine, nameOrId: string, psArgs = '-ef'): Promise<ContainerTop> {
  const container = findContainer(engine, nameOrId);
  if (!isRunning(container)) throw notRunning(container);
  const runtime = await runtimeOf(engine, container);
  const { stdout: listed } = await execFileAsync(runtime, ['ps', '--format', 'json', container.id]).catch((err: Error & { stderr?: string }) => {
    throw new KilnError('FAILED', `cannot list the processes of container ${container.name}: ${(err.stderr ?? err.message).trim()}`);
  });
  const pids = new Set((JSON.parse(listed) as number[] | null) ?? []);
  const args = psArgs.trim().split(/\s+/).filter((arg) => arg !== '');
  const { stdout } = await execFileAsync('ps', args, { maxBuffer: 64 << 20 }).catch((err: Error & { stderr?: string }) => {
    throw new KilnError('INVALID_ARGUMENT', `Error running ps: ${(err.stderr ?? err.message).trim()}`);
  });
  return psLines(stdout, pids);
}
