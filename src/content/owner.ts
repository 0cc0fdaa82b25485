import { readFileSync } from 'node:fs';

/**
 * True when the process that owns something in the store is gone: a lease, an ingest or scratch file, a
 * temporary snapshot, a build's work directory or runtime container, a container's starter, a cache
 * mount's lock. This process never is; what is not a pid (0, NaN) always is, as nothing runs under it.
 * A pid reused since keeps its owner's things a little longer: harmless.
 */
export function ownerGone(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
  // A zombie has exited: an init that reaps slowly (some VMs' and containers') leaves a killed kiln one for a while.
  return /\) Z /.test(statLine(pid));
}

/** /proc/PID/stat, or '' where there is none. */
function statLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}
