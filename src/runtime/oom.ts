import { closeSync, constants, openSync, readSync } from 'node:fs';
import { isErrno } from '../errors.js';

/** Now on the kernel log's clock (CLOCK_MONOTONIC, which Node's hrtime reads), in microseconds. */
export function kernelLogClock(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * Whether the kernel's OOM killer killed a process of runtime container `id` since `since` (kernelLogClock):
 * Docker's State.OOMKilled and `oom` event. The runtime has removed the container's cgroup, and its OOM
 * counters with it, by the time its process has been waited for; the kernel log keeps one record per
 * kill naming the victim's cgroup, whose last part is the container's ID for runc and crun. Read from
 * /dev/kmsg, record by record, to its end (some ms for a few thousand records); false when it cannot
 * be read (not root, with dmesg_restrict).
 */
export function oomKilledSince(id: string, since: bigint): boolean {
  let fd: number;
  try {
    fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  const victim = new RegExp(`task_memcg=[^,]*/${id}(?:,|$)`, 'm');
  const record = Buffer.alloc(8192);
  try {
    for (;;) {
      let length: number;
      try {
        length = readSync(fd, record, 0, record.length, null);
      } catch (err) {
        if (isErrno(err, 'EPIPE')) continue; // records overwritten while read: the next one follows
        if (isErrno(err, 'EAGAIN')) return false; // the end
        throw err;
      }
      // "PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE": the message after a record's time is read only for a new one.
      const text = record.toString('latin1', 0, length);
      const time = /^\d+,\d+,(\d+)/.exec(text)?.[1];
      if (time !== undefined && BigInt(time) >= since && text.includes('oom-kill:') && victim.test(text)) return true;
    }
  } finally {
    closeSync(fd);
  }
}
