import { closeSync, constants, openSync, readSync } from 'node:fs';
import { isErrno } from '../errors.js';
import { sys } from '../sys.js';

/** The kernel log from the moment it was opened, to look in for the OOM kills of a container (see watchOomKills). */
export interface OomWatch {
  /** Whether the kernel's OOM killer killed a process of runtime container `id` since the watch began. */
  killed(id: string): boolean;
  close(): void;
}

/**
 * Watches for the kernel's OOM killer from now on: Docker's State.OOMKilled and `oom` event. The runtime
 * has removed the container's cgroup, and its OOM counters with it, by the time its process has been
 * waited for; the kernel log keeps one record per kill naming the victim's cgroup, whose last part is the
 * container's ID for runc and crun. The log is read from where it ended when the watch began (native/sys's
 * kmsgend; without it, read to its end now, some ms for a few thousand records): its records' times are
 * on the kernel's own clock, which drifts from Node's (42 ms behind after 17 hours here), so a kill soon
 * after a start was taken for an older one. Finds nothing when the log cannot be read (not root, with
 * dmesg_restrict).
 */
export function watchOomKills(): OomWatch {
  let fd: number | undefined;
  try {
    const end = sys()?.kmsgend;
    if (end) fd = end();
    else {
      fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
      for (const _record of records(fd)); // read to the log's end: the watch sees what follows
    }
  } catch {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  }
  return {
    killed: (id) => {
      if (fd === undefined) return false;
      const victim = new RegExp(`task_memcg=[^,]*/${id}(?:,|$)`, 'm');
      for (const text of records(fd)) if (text.includes('oom-kill:') && victim.test(text)) return true;
      return false;
    },
    close: () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** The kernel log's records from `fd`'s place to the log's end ("PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE"). */
function* records(fd: number): Generator<string> {
  const record = Buffer.alloc(8192);
  for (;;) {
    let length: number;
    try {
      length = readSync(fd, record, 0, record.length, null);
    } catch (err) {
      if (isErrno(err, 'EPIPE')) continue; // records overwritten while read: the next one follows
      if (isErrno(err, 'EAGAIN')) return; // the end
      throw err;
    }
    yield record.toString('latin1', 0, length);
  }
}
