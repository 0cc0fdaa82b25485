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
