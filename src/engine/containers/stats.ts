/**
 * `docker stats`: a running container's CPU, memory and PIDs from its cgroups, as runc reports them
 * (`runc events --stats`), in the Engine API's types.StatsJSON. CPU percentages are the client's sum:
 * each sample carries the one before it (precpu_stats), taken a second earlier, as dockerd's are.
 */
import { readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { KilnError } from '../../errors.js';
import type { ContainerRow } from '../../meta/db.js';
import type { Engine } from '../engine.js';
import { notRunning, runtimeOf } from './lifecycle.js';
import { findContainer, isRunning } from './records.js';
import { execFileAsync } from '../../exec-file.js';

/** How often a stream samples, and how far apart a one-off's two samples are: dockerd's second. */
const INTERVAL_MS = 1000;
const ZERO_TIME = '0001-01-01T00:00:00Z';

interface RuncStats {
  readonly cpu?: { readonly usage?: { readonly total?: number; readonly percpu?: number[]; readonly kernel?: number; readonly user?: number }; readonly throttling?: { readonly periods?: number; readonly throttled_periods?: number; readonly throttled_time?: number } };
  readonly memory?: { readonly usage?: { readonly usage?: number; readonly max?: number; readonly limit?: number }; readonly raw?: Readonly<Record<string, number>> };
  readonly pids?: { readonly current?: number; readonly limit?: number };
}

interface Sample {
  readonly read: string;
  readonly system: number;
  readonly data: RuncStats;
}

/** The host's CPU time in nanoseconds, as dockerd's system_cpu_usage (the `cpu` line of /proc/stat, in clock ticks of 10 ms). */
async function systemCpuNanos(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n').find((l) => l.startsWith('cpu '));
  const ticks = (line ?? '').trim().split(/\s+/).slice(1, 8).reduce((sum, value) => sum + Number(value), 0);
  return ticks * 10_000_000;
}

async function sample(engine: Engine, container: ContainerRow): Promise<Sample | undefined> {
  const current = engine.store.db.container(container.id);
  if (!current || !isRunning(current)) return undefined;
  const runtime = await runtimeOf(engine, current);
  if (runtime !== 'runc') throw new KilnError('UNSUPPORTED', `stats of container ${container.name}: its runtime ${runtime} does not report them (runc does)`);
  const { stdout } = await execFileAsync('runc', ['events', '--stats', container.id]).catch((err: Error & { stderr?: string }) => {
    throw new KilnError('FAILED', `cannot read the stats of container ${container.name}: ${(err.stderr ?? err.message).trim()}`);
  });
  return { read: new Date().toISOString(), system: await systemCpuNanos(), data: ((JSON.parse(stdout) as { data?: RuncStats }).data ?? {}) };
}

function cpuJson(s: Sample | undefined): object {
  const usage = s?.data.cpu?.usage;
  const throttling = s?.data.cpu?.throttling;
  return {
    cpu_usage: { total_usage: usage?.total ?? 0, ...(usage?.percpu ? { percpu_usage: usage.percpu } : {}), usage_in_kernelmode: usage?.kernel ?? 0, usage_in_usermode: usage?.user ?? 0 },
    ...(s ? { system_cpu_usage: s.system, online_cpus: cpus().length } : {}),
    throttling_data: { periods: throttling?.periods ?? 0, throttled_periods: throttling?.throttled_periods ?? 0, throttled_time: throttling?.throttled_time ?? 0 },
  };
}

/** A sample as types.StatsJSON, with the one before it as precpu_stats. */
function statsJson(container: ContainerRow, s: Sample | undefined, before: Sample | undefined): object {
  const memory = s?.data.memory;
  // An unlimited cgroup reports the largest page-aligned int64: Docker shows the host's memory then.
  const limit = memory?.usage?.limit !== undefined && memory.usage.limit < 2 ** 62 ? memory.usage.limit : totalmem();
  const nullIo = Object.fromEntries(['io_service_bytes_recursive', 'io_serviced_recursive', 'io_queue_recursive', 'io_service_time_recursive', 'io_wait_time_recursive', 'io_merged_recursive', 'io_time_recursive', 'sectors_recursive'].map((key) => [key, null]));
  return {
    read: s?.read ?? ZERO_TIME,
    preread: before?.read ?? ZERO_TIME,
    pids_stats: s ? { current: s.data.pids?.current ?? 0, ...(s.data.pids?.limit ? { limit: s.data.pids.limit } : {}) } : {},
    blkio_stats: nullIo,
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuJson(s),
    precpu_stats: cpuJson(before),
    memory_stats: s ? { usage: memory?.usage?.usage ?? 0, max_usage: memory?.usage?.max ?? 0, stats: memory?.raw ?? {}, limit } : {},
    name: `/${container.name}`,
    id: container.id,
  };
}

export interface StatsOptions {
  /** Follow, a sample a second, until the container stops or `signal` aborts; else one sample. */
  readonly stream: boolean;
  /** One sample at once, without the one before it (no CPU percentage). */
  readonly oneShot?: boolean;
  readonly signal?: AbortSignal;
}

/** `docker stats`: samples to `send` (for a container that is not running, one of zeros, as dockerd's). */
export async function containerStats(engine: Engine, nameOrId: string, send: (stats: object) => void, options: StatsOptions): Promise<void> {
  const container = findContainer(engine, nameOrId);
  if (options.stream && !isRunning(container)) throw notRunning(container);
  let before: Sample | undefined;
  if (!options.stream && !options.oneShot) {
    before = await sample(engine, container);
    if (before) await delay(INTERVAL_MS, undefined, { signal: options.signal }).catch(() => undefined);
  }
  for (;;) {
    const now = await sample(engine, container);
    send(statsJson(container, now, before));
    if (!options.stream || !now || options.signal?.aborted) return;
    before = now;
    await delay(INTERVAL_MS, undefined, { signal: options.signal }).catch(() => undefined);
    if (options.signal?.aborted) return;
  }
}
