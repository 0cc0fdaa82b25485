/**
 * Starting a container. Every start builds its bundle anew from its settings: the writable snapshot
 * mounted, its networks joined, its mounts (binds, volumes filled on first use, tmpfs) and generated
 * files (/etc/hostname, /etc/hosts, /etc/resolv.conf) made, the OCI spec written. Then its process runs:
 * under a detached kiln supervisor (`start`, `run -d`), or in this process (`kiln run`). Once the
 * process has exited, whichever ran it records the exit and undoes the rest (`release`).
 *
 * Lifecycle of the record: `claim` marks it running by this process (a second start then finds it
 * running); the supervisor takes it over (its pid); the exit is recorded with the exit code. A start that
 * fails before the process runs puts the record back as it was, with the error (inspect's State.Error).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../../errors.js';
import type { ContainerRow } from '../../meta/db.js';
import { watchOomKills } from '../../runtime/oom.js';
import { type RuntimeName, initBinary, prepareRuntime, runBundle, stdinOf } from '../../runtime/runtime.js';
import { parseSpec, runtimeSpec, securityOptions, specJson } from '../../runtime/spec.js';
import { mount, unmount, unmountStale } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { effectiveHealthcheck, monitorHealth, startingHealth } from './health.js';
import { joinNetworks, leaveNetworks } from '../networks.js';
import type { VolumeUse } from '../volumes.js';
import { runtimeMounts } from './mounts.js';
import { type ContainerSettings, FOLLOW_MS, containerBundle, containerKey, currentRow, findContainer, isRunning, settingsOf, snapshotterFor } from './records.js';
import { destroyContainer } from './remove.js';
import { shortId } from '../../oci/digest.js';

/** The hidden CLI command a detached container's supervisor runs. */
export const SUPERVISE_COMMAND = '__supervise';
const KILN_BIN = fileURLToPath(new URL('../../../../bin/kiln', import.meta.url));

/**
 * The file in a bundle that decides, once per run, whether the runtime runs the container: made
 * exclusively by whichever comes first, the process about to run the runtime (a supervisor, or `kiln run`
 * in the foreground) or a kill or stop (see `claimLaunch`). Named by the run's start time, so that a claim
 * on one run never counts for the next; removed once the run's exit is recorded.
 */
function launchClaim(bundle: string, run: ContainerRow): string {
  return join(bundle, `launch-claim.${run.startedAt ?? 0}`);
}

/**
 * Claims the launch of a container's run (`run`: its record while it runs) for `by`: true when this call
 * made the claim, false when the other side had (or the bundle is gone). A stop that wins knows the
 * runtime will never run the container.
 */
export async function claimLaunch(bundle: string, run: ContainerRow, by: 'runtime' | 'stop'): Promise<boolean> {
  return writeFile(launchClaim(bundle, run), by, { flag: 'wx' }).then(
    () => true,
    () => false,
  );
}

/** The exit code of a container whose run was stopped before its process ran (a SIGKILL's). */
const KILLED_EXIT = 137;

/**
 * Marks the container running by this process, unless it runs: in one transaction, so that of two
 * starts one wins. Returns the record as it was, or undefined when it was running.
 */
function claim(engine: Engine, id: string): ContainerRow | undefined {
  return engine.store.db.transaction(() => {
    const row = currentRow(engine, id);
    if (!row) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
    if (isRunning(row)) return undefined;
    engine.store.db.restartContainer(id, process.pid);
    return row;
  });
}

/**
 * Builds a claimed container's bundle for its process (see the top); on failure, undoes what it did.
 * Returns the runtime spec.
 */
async function prepare(engine: Engine, container: ContainerRow, settings: ContainerSettings): Promise<object> {
  const bundle = containerBundle(engine, container.id);
  const rootfs = join(bundle, 'rootfs');
  const [snapshot] = snapshotterFor(engine, container).mounts(containerKey(container.id));
  if (!snapshot || !existsSync(bundle)) throw new KilnError('CONFLICT', `container ${container.name} cannot start: its snapshot or bundle is gone (remove it and create it anew)`);
  try {
    await unmountStale(rootfs); // a run that was killed may have left it mounted
    await mkdir(rootfs, { recursive: true });
    await mount(snapshot, rootfs);
    const network = await joinNetworks(engine, container, settings);
    const uses: VolumeUse[] = [];
    const mounts = await runtimeMounts(engine, settings.mounts, rootfs, uses);
    const files = { hosts: join(bundle, 'hosts'), resolvConf: join(bundle, 'resolv.conf'), hostname: join(bundle, 'hostname') };
    if (network.hosts !== null) await writeFile(files.hosts, network.hosts);
    await writeFile(files.resolvConf, network.resolvConf);
    await writeFile(files.hostname, `${settings.hostname ?? shortId(container.id)}\n`);
    const config = engine.store.configOf(container.imageId).config ?? {};
    await startingHealth(engine, container, config);
    const { entrypoint } = settings;
    const spec = runtimeSpec(config, rootfs, files, {
      ...(entrypoint !== undefined ? { entrypoint: entrypoint[0] ?? '' } : {}),
      cmd: [...(entrypoint?.slice(1) ?? []), ...settings.cmd],
      env: settings.env,
      ...(settings.user ? { user: settings.user } : {}),
      ...(settings.workdir ? { workdir: settings.workdir } : {}),
      hostname: settings.hostname ?? shortId(container.id),
      network: network.namespace,
      mounts,
      tty: settings.tty,
      ...(settings.consoleSize ? { consoleSize: settings.consoleSize } : {}),
      readOnly: settings.readOnly,
      capAdd: settings.capAdd,
      capDrop: settings.capDrop,
      privileged: settings.privileged,
      security: securityOptions(settings.securityOpt),
      resources: settings.resources,
      ulimits: settings.ulimits,
      ...(settings.init ? { init: initBinary() } : {}),
      groupAdd: settings.groupAdd,
      hostNamespaces: (['pid', 'ipc', 'uts'] as const).filter((type) => settings[`${type}Mode`] === 'host'),
      noShm: settings.ipcMode === 'none',
      sysctls: settings.sysctls,
      devices: settings.devices,
      shmSize: settings.shmSize,
      tmpfs: settings.tmpfs,
    });
    await writeFile(join(bundle, 'config.json'), specJson(spec));
    for (const use of uses) recordEvent(engine, 'volume', 'mount', use.name, { container: container.id, destination: use.path });
    return spec;
  } catch (err) {
    await release(engine, container.id);
    throw err;
  }
}

/** Undoes a start once the process has gone: the container leaves its networks and its root is unmounted. */
async function release(engine: Engine, id: string): Promise<void> {
  await leaveNetworks(engine, id);
  await unmount(join(containerBundle(engine, id), 'rootfs')).catch(() => undefined);
}

/**
 * `docker start`: runs a created or stopped container, detached, on its writable layer as it was left;
 * its logs go on after the earlier runs'. `runtime` overrides the one it was created with. Returns false
 * when it was running (Docker's 304).
 */
export async function startContainer(engine: Engine, nameOrId: string, runtime?: RuntimeName): Promise<boolean> {
  const container = findContainer(engine, nameOrId);
  const before = claim(engine, container.id);
  if (!before) return false;
  const settings = settingsOf(container);
  try {
    await prepareRuntime(runtime ?? settings.runtime);
    await prepare(engine, container, settings);
    spawnSupervisor(engine, container.id, runtime ?? settings.runtime);
  } catch (err) {
    engine.store.db.failContainerStart(before, err instanceof Error ? err.message : String(err));
    throw err;
  }
  recordEvent(engine, 'container', 'start', container.id, { image: settings.image, name: container.name, ...settings.labels });
  return true;
}

/**
 * Runs a created container's process in this process (`kiln run` without -d): stdio passes through,
 * the exit is recorded, and with --rm the container goes once it has exited. Returns its exit code.
 */
export async function runContainerHere(engine: Engine, id: string, options: { readonly interactive: boolean; readonly notice: (message: string) => void }): Promise<number> {
  const container = currentRow(engine, id);
  if (!container || !claim(engine, id)) throw new KilnError('CONFLICT', `container ${id} is running already`);
  const settings = settingsOf(container);
  const bundle = containerBundle(engine, id);
  try {
    const prepared = await prepareRuntime(settings.runtime);
    if (prepared) options.notice(prepared);
    const spec = await prepare(engine, container, settings);
    recordEvent(engine, 'container', 'start', id, { image: settings.image, name: container.name, ...settings.labels });
    const launched = await claimLaunch(bundle, currentRow(engine, id) ?? container, 'runtime'); // else a kill came first, and waits for this exit
    const exitCode = launched ? await watched(engine, container, () => runBundle(settings.runtime, bundle, id, spec, { stdin: options.interactive ? 'inherit' : 'ignore', keepLogs: !settings.autoRemove, tty: settings.tty })) : KILLED_EXIT;
    engine.store.db.finishContainer(id, exitCode);
    recordEvent(engine, 'container', 'die', id, { image: settings.image, name: container.name, exitCode: String(exitCode), ...settings.labels });
    return exitCode;
  } finally {
    await release(engine, id);
    await rm(launchClaim(bundle, currentRow(engine, id) ?? container), { force: true });
    engine.store.db.setContainerPid(id, null); // after the release: a kill waits for this (see `released`)
    if (settings.autoRemove) await destroyContainer(engine, id, true);
  }
}

/**
 * Starts the detached kiln process that runs a container's prepared bundle (its rootfs mounted), and
 * records it as the container's supervisor.
 */
export function spawnSupervisor(engine: Engine, id: string, runtime: RuntimeName): void {
  const supervisor = spawn(process.execPath, [KILN_BIN, '--root', engine.store.root, SUPERVISE_COMMAND, id, runtime], { detached: true, stdio: 'ignore' });
  supervisor.unref();
  engine.store.db.setContainerPid(id, supervisor.pid ?? null);
}

/** Whether `pid` is the supervisor of container `id` (and not, say, the process that is starting it). */
export function isSupervisorOf(pid: number, id: string): boolean {
  const args = readCmdline(pid);
  return args.includes(SUPERVISE_COMMAND) && args.includes(id);
}

function readCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/**
 * The detached side of a start: runs the prepared bundle with its output to the container's log,
 * records the exit code, then releases what the start set up (and the container, with --rm: a follower
 * of its log holds the file open and reads to its end all the same, and `wait` finds its exit code in
 * its `die` event). When a kill or stop claimed the launch first, it does nothing: that kill ends it
 * and records the exit (`endUnlaunched`), not waiting for it to get here.
 */
export async function superviseContainer(engine: Engine, id: string, runtime: RuntimeName): Promise<void> {
  const container = currentRow(engine, id);
  if (!container) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
  const bundle = containerBundle(engine, id);
  let exitCode = 128;
  let stopFirst = false;
  try {
    const spec = parseSpec(await readFile(join(bundle, 'config.json'), 'utf8')) as { process?: { terminal?: boolean } };
    stopFirst = !(await claimLaunch(bundle, container, 'runtime'));
    if (stopFirst) return;
    exitCode = await watched(engine, container, () => runBundle(runtime, bundle, id, spec, { stdin: stdinOf(bundle), keepLogs: true, tty: spec.process?.terminal ?? false }));
    engine.store.db.finishContainer(id, exitCode);
  } catch (err) {
    engine.store.db.finishContainer(id, exitCode, Date.now(), err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    if (!stopFirst) await afterExit(engine, container, exitCode);
  }
}

/**
 * Ends a detached container's run whose launch a kill or stop has claimed (`claimLaunch`), so that its runtime
 * never runs: its supervisor is killed (waited for while a start is still preparing it, or is gone already
 * and nothing is left), the exit recorded as a SIGKILL's, as Docker's for a killed container, and what the
 * start set up released. A container run in the foreground (`kiln run`) records its own exit instead.
 */
export async function endUnlaunched(engine: Engine, run: ContainerRow): Promise<void> {
  const { id } = run;
  for (;;) {
    const row = currentRow(engine, id);
    if (!row || !isRunning(row) || row.pid === null || row.startedAt !== run.startedAt) return; // that run is over
    if (isSupervisorOf(row.pid, id)) {
      try {
        process.kill(row.pid, 'SIGKILL');
      } catch {
        // it has found the launch claimed and gone, doing nothing
      }
      engine.store.db.finishContainer(id, KILLED_EXIT);
      await afterExit(engine, row, KILLED_EXIT);
      return;
    }
    await delay(FOLLOW_MS); // the start is still preparing the bundle (another process): no event for its end
  }
}

/**
 * Runs a container's process, with what dockerd watches while it runs: its health check, if it has one
 * (see health.ts), and the kernel's OOM killer: Docker's `oom` event (before its `die`) is recorded when
 * it killed one of the container's processes, inspect's State.OOMKilled until the next start. The kernel
 * log is read only after an exit by SIGKILL or from a container with a memory limit (an OOM kill
 * elsewhere names no cgroup of the container's).
 */
async function watched(engine: Engine, container: ContainerRow, run: () => Promise<number>): Promise<number> {
  const oom = watchOomKills();
  try {
    const settings = settingsOf(container);
    const image = engine.store.configOf(container.imageId).config ?? {};
    const check = effectiveHealthcheck(settings.healthcheck, image);
    const health = check ? monitorHealth(engine, container, check, image.Shell) : undefined;
    let exitCode: number;
    try {
      exitCode = await run();
    } finally {
      await health?.stop();
    }
    if ((exitCode === KILLED_EXIT || (settings.resources.memory ?? 0) > 0) && oom.killed(container.id)) {
      recordEvent(engine, 'container', 'oom', container.id, { image: settings.image, name: container.name, ...settings.labels });
    }
    return exitCode;
  } finally {
    oom.close();
  }
}

/** What follows a detached container's recorded exit: its release, its `die` event, and with --rm the container gone. */
async function afterExit(engine: Engine, container: ContainerRow, exitCode: number): Promise<void> {
  const settings = settingsOf(container);
  await release(engine, container.id);
  await rm(launchClaim(containerBundle(engine, container.id), container), { force: true });
  engine.store.db.setContainerPid(container.id, null); // after the release: a kill waits for this (see `released`)
  recordEvent(engine, 'container', 'die', container.id, { image: settings.image, name: container.name, exitCode: String(exitCode), ...settings.labels });
  if (settings.autoRemove) await destroyContainer(engine, container.id, true);
}
