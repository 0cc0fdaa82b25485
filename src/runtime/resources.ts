import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { KilnError } from '../errors.js';

/**
 * A container's resource limits, as Docker's HostConfig names them (bytes, CPUs in billionths, CFS
 * microseconds): 0 or absent is no limit; a MemorySwap of -1 is unlimited swap.
 */
export interface ResourceLimits {
  readonly memory?: number;
  /** Memory and swap together. */
  readonly memorySwap?: number;
  readonly memoryReservation?: number;
  readonly nanoCpus?: number;
  readonly cpuShares?: number;
  readonly cpuPeriod?: number;
  readonly cpuQuota?: number;
  readonly cpusetCpus?: string;
  readonly cpusetMems?: string;
  /** 0 or -1: no limit. */
  readonly pidsLimit?: number;
}

/** Docker's smallest memory limit and reservation. */
const MIN_MEMORY = 6 * 1024 * 1024;

/**
 * Checks limits as dockerd does, with its words, and fills in what it fills in: a memory limit without a
 * swap limit lets as much swap again (MemorySwap twice Memory).
 */
export function resourceLimits(limits: ResourceLimits): ResourceLimits {
  const { memory = 0, memorySwap = 0, memoryReservation = 0, nanoCpus = 0, cpuPeriod = 0, cpuQuota = 0 } = limits;
  const refuse = (why: string): never => {
    throw new KilnError('INVALID_ARGUMENT', why);
  };
  if (memory < 0 || memoryReservation < 0 || nanoCpus < 0 || cpuPeriod < 0 || (limits.cpuShares ?? 0) < 0) refuse('resource limits cannot be negative (only --memory-swap and --pids-limit take -1, for no limit)');
  if (memory > 0 && memory < MIN_MEMORY) refuse('Minimum memory limit allowed is 6MB');
  if (memory === 0 && memorySwap > 0) refuse('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (memory > 0 && memorySwap > 0 && memorySwap < memory) refuse('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (memoryReservation > 0 && memoryReservation < MIN_MEMORY) refuse('Minimum memory reservation allowed is 6MB');
  if (memory > 0 && memoryReservation > memory) refuse('Minimum memory limit can not be less than memory reservation limit, see usage');
  if (nanoCpus > 0 && cpuPeriod > 0) refuse('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nanoCpus > 0 && cpuQuota > 0) refuse('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  const count = cpus().length;
  if (nanoCpus > count * 1e9) refuse(`Range of CPUs is from 0.01 to ${count}.00, as there are only ${count} CPUs available`);
  if (cpuPeriod !== 0 && (cpuPeriod < 1000 || cpuPeriod > 1_000_000)) refuse('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if (cpuQuota > 0 && cpuQuota < 1000) refuse('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  return memory > 0 && memorySwap === 0 ? { ...limits, memorySwap: memory * 2 } : limits;
}

/** Whether this host's cgroups limit swap (cgroup v1's memsw files, or v2's memory.swap.max), which a swap limit needs. */
function swapLimitable(): boolean {
  return existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes') || (!existsSync('/sys/fs/cgroup/memory') && existsSync('/sys/fs/cgroup/cgroup.controllers'));
}

/** The OCI spec's `linux.resources` for the limits set, or undefined for none. */
export function linuxResources(limits: ResourceLimits): object | undefined {
  const { memory = 0, memorySwap = 0, memoryReservation = 0, nanoCpus = 0, cpuShares = 0, cpuPeriod = 0, cpuQuota = 0, cpusetCpus = '', cpusetMems = '', pidsLimit = 0 } = limits;
  // --cpus is a CFS quota over Docker's 100 ms period.
  const period = nanoCpus > 0 ? 100_000 : cpuPeriod;
  const quota = nanoCpus > 0 ? Math.round((nanoCpus * 100_000) / 1e9) : cpuQuota;
  const memoryPart = {
    ...(memory > 0 ? { limit: memory } : {}),
    ...(memory > 0 && memorySwap !== 0 && swapLimitable() ? { swap: memorySwap } : {}),
    ...(memoryReservation > 0 ? { reservation: memoryReservation } : {}),
  };
  const cpuPart = { ...(cpuShares > 0 ? { shares: cpuShares } : {}), ...(period > 0 ? { period } : {}), ...(quota > 0 ? { quota } : {}), ...(cpusetCpus ? { cpus: cpusetCpus } : {}), ...(cpusetMems ? { mems: cpusetMems } : {}) };
  const resources = {
    ...(Object.keys(memoryPart).length > 0 ? { memory: memoryPart } : {}),
    ...(Object.keys(cpuPart).length > 0 ? { cpu: cpuPart } : {}),
    ...(pidsLimit > 0 ? { pids: { limit: pidsLimit } } : {}),
  };
  return Object.keys(resources).length > 0 ? resources : undefined;
}

/** A process resource limit (`--ulimit nofile=1024:2048`), as HostConfig.Ulimits has it: -1 is unlimited. */
export interface Ulimit {
  readonly name: string;
  readonly soft: number;
  readonly hard: number;
}

/** The limits Docker names, each setrlimit(2)'s RLIMIT_ and the name in capitals. */
const ULIMIT_NAMES = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

/**
 * Checks ulimits as the docker CLI does, with its words (which dockerd leaves to the runtime, failing at
 * start), and more: a value below -1 (which Docker passes on as a huge one). One per name, the last
 * given, in name order as the docker CLI sends them.
 */
export function checkUlimits(ulimits: readonly Ulimit[]): Ulimit[] {
  const byName = new Map<string, Ulimit>();
  for (const ulimit of ulimits) {
    const { name, soft, hard } = ulimit;
    if (!ULIMIT_NAMES.has(name)) throw new KilnError('INVALID_ARGUMENT', `invalid ulimit type: ${name} (one of ${[...ULIMIT_NAMES].join(', ')})`);
    for (const value of [soft, hard]) {
      if (!Number.isSafeInteger(value) || value < -1) throw new KilnError('INVALID_ARGUMENT', `invalid ulimit ${name}: ${value} (a limit is a whole number, or -1 for unlimited)`);
    }
    if (soft === -1 && hard !== -1) throw new KilnError('INVALID_ARGUMENT', `ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: ${hard}`);
    if (hard !== -1 && soft > hard) throw new KilnError('INVALID_ARGUMENT', `ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    byName.set(name, ulimit);
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * The OCI spec's `process.rlimits`. Unlimited is 2^64-1, which a JavaScript number cannot hold: it is
 * the string RLIM_INFINITY here, and specJson writes the number.
 */
export function ociRlimits(ulimits: readonly Ulimit[]): { type: string; soft: number | string; hard: number | string }[] {
  const value = (n: number): number | string => (n === -1 ? RLIM_INFINITY : n);
  return ulimits.map(({ name, soft, hard }) => ({ type: `RLIMIT_${name.toUpperCase()}`, soft: value(soft), hard: value(hard) }));
}

/** Stands for an unlimited rlimit in a spec until specJson writes it (see ociRlimits). */
export const RLIM_INFINITY = 'RLIM_INFINITY';
