/**
 * Where `RUN --mount=type=cache` directories live, and BuildKit's sharing modes for them:
 * - `shared` (the default): RUNs use the directory at the same time;
 * - `locked`: a RUN has it alone: it waits until no other RUN uses it, and the others wait for it (as
 *   apt's and other package managers' caches need);
 * - `private`: a RUN never waits: it gets a directory of that cache that no other RUN uses, a new one
 *   if need be (kept for later builds like the first one).
 * Lifecycle: `acquire` before the RUN, `release` after it. Within this process every use counts.
 * Across processes (two builds at once), `locked` and `private` uses also hold a lock file beside the
 * directory (`<dir>.lock`, with the holder's pid, taken over once its holder has died), which other
 * processes' locked and private uses respect; their shared uses do not see it.
 */
import { mkdir, open, readFile, rm, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { isErrno } from '../errors.js';
import { ownerGone } from '../content/owner.js';
import { storePaths } from '../content/paths.js';
import { sha256 } from '../oci/digest.js';

export type Sharing = 'shared' | 'private' | 'locked';

export interface CacheMountRequest {
  /** The cache's id (by default its target path). */
  readonly id: string;
  readonly sharing: Sharing;
  /** The directory's mode and owner when it is made. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

export interface HeldCacheMount {
  readonly dir: string;
  release(): Promise<void>;
}

/** How often a RUN waiting for another process's locked cache looks again (a lock file has no event). */
const FOREIGN_LOCK_POLL_MS = 100;

/** One per store in this process (`kiln serve` runs builds side by side): the uses it counts are all of them. */
const perStore = new Map<string, CacheMounts>();

/** The cache mounts of the store at `storeRoot` (their directories are in its `cache-mounts`). */
export function cacheMountsOf(storeRoot: string): CacheMounts {
  let mounts = perStore.get(storeRoot);
  if (!mounts) perStore.set(storeRoot, (mounts = new CacheMounts(storePaths(storeRoot).cacheMounts)));
  return mounts;
}

class CacheMounts {
  /** In this process: how many RUNs use each directory, and whether one of them has it alone. */
  private readonly users = new Map<string, { shared: number; alone: boolean }>();
  private waiters: (() => void)[] = [];

  constructor(private readonly root: string) {}

  async acquire(request: CacheMountRequest): Promise<HeldCacheMount> {
    const base = join(this.root, sha256(request.id).slice(7, 39));
    await mkdir(this.root, { recursive: true }); // where the lock files go
    let held: { dir: string; lock: boolean };
    if (request.sharing === 'shared') {
      while (!this.enter(base, false)) await this.released();
      held = { dir: base, lock: false };
    } else if (request.sharing === 'locked') held = { dir: base, lock: await this.waitAlone(base) };
    else held = await this.firstFree(base);
    await mkdir(held.dir, { recursive: true, mode: request.mode ?? 0o755 });
    if (request.uid !== undefined || request.gid !== undefined) await chown(held.dir, request.uid ?? 0, request.gid ?? 0);
    let released = false;
    return {
      dir: held.dir,
      release: async () => {
        if (released) return;
        released = true;
        const use = this.users.get(held.dir);
        if (use) {
          if (request.sharing === 'shared') use.shared--;
          else use.alone = false;
          if (use.shared === 0 && !use.alone) this.users.delete(held.dir);
        }
        if (held.lock) await rm(`${held.dir}.lock`, { force: true });
        const waiters = this.waiters;
        this.waiters = [];
        for (const wake of waiters) wake();
      },
    };
  }

  /** Registers a use now when `alone` is false (shared), or when nobody uses `dir` (true). */
  private enter(dir: string, alone: boolean): boolean {
    const use = this.users.get(dir) ?? { shared: 0, alone: false };
    if (alone ? use.alone || use.shared > 0 : use.alone) return false;
    if (alone) use.alone = true;
    else use.shared++;
    this.users.set(dir, use);
    return true;
  }

  /** Waits until `dir` is this RUN's alone, here and in other processes. Returns true (a lock file is held). */
  private async waitAlone(dir: string): Promise<boolean> {
    for (;;) {
      if (this.enter(dir, true)) {
        if (await takeLockFile(`${dir}.lock`)) return true;
        this.users.delete(dir); // another process has it: look again later
        await delay(FOREIGN_LOCK_POLL_MS);
        continue;
      }
      await this.released();
    }
  }

  /** Resolves when a use of any directory ends. */
  private released(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** The first of `base`, `base-1`, `base-2`… that nobody uses, taken. */
  private async firstFree(base: string): Promise<{ dir: string; lock: boolean }> {
    for (let n = 0; ; n++) {
      const dir = n === 0 ? base : `${base}-${n}`;
      if (!this.enter(dir, true)) continue;
      if (await takeLockFile(`${dir}.lock`)) return { dir, lock: true };
      this.users.delete(dir);
    }
  }
}

/** Creates `path` holding this process's pid, unless a live process holds it; a dead holder's is taken over. */
async function takeLockFile(path: string): Promise<boolean> {
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return true;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const holder = Number(await readFile(path, 'utf8').catch(() => ''));
    // An empty file is a holder between its open and its write: alive, as far as anyone can tell.
    if (holder === 0 || !ownerGone(holder)) return false;
    await rm(path, { force: true });
  }
}
