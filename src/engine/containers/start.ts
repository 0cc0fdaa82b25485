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
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../../errors.js';
import type { ContainerRow } from '../../meta/db.js';
import { type RuntimeName, prepareRuntime, runBundle, stdinOf } from '../../runtime/runtime.js';
import { runtimeSpec } from '../../runtime/spec.js';
import { mount, unmount, unmountStale } from '../../snapshot/snapshotter.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { joinNetworks, leaveNetworks } from '../networks.js';
import type { VolumeUse } from '../volumes.js';
import { runtimeMounts } from './mounts.js';
import { type ContainerSettings, containerBundle, containerKey, currentRow, findContainer, isRunning, settingsOf, snapshotterFor } from './records.js';
import { destroyContainer } from './remove.js';

/** The hidden CLI command a detached container's supervisor runs. */
export const SUPERVISE_COMMAND = '__supervise';
const KILN_BIN = fileURLToPath(new URL('../../../../bin/kiln', import.meta.url));

/**
 * Marks a bundle whose container was killed or stopped before its supervisor had the runtime create it:
 * the supervisor then does not start it (see killContainer). A start removes it.
 */
export const STOP_REQUESTED = 'stop-requested';

/** The exit code of a container whose start was stopped before its process ran (a SIGKILL's). */
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
    await writeFile(files.hostname, `${settings.hostname ?? container.id.slice(0, 12)}\n`);
    const config = engine.store.configOf(container.imageId).config ?? {};
    const { entrypoint } = settings;
    const spec = await runtimeSpec(config, rootfs, files, {
      ...(entrypoint !== undefined ? { entrypoint: entrypoint[0] ?? '' } : {}),
      cmd: [...(entrypoint?.slice(1) ?? []), ...settings.cmd],
      env: settings.env,
      ...(settings.user ? { user: settings.user } : {}),
      ...(settings.workdir ? { workdir: settings.workdir } : {}),
      hostname: settings.hostname ?? container.id.slice(0, 12),
      network: network.namespace,
      mounts,
      tty: settings.tty,
      ...(settings.consoleSize ? { consoleSize: settings.consoleSize } : {}),
      readOnly: settings.readOnly,
      capAdd: settings.capAdd,
      capDrop: settings.capDrop,
      privileged: settings.privileged,
      tmpfs: settings.tmpfs,
    });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
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
    await rm(join(containerBundle(engine, container.id), STOP_REQUESTED), { force: true });
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
    const exitCode = await runBundle(settings.runtime, bundle, id, spec, { stdin: options.interactive ? 'inherit' : 'ignore', keepLogs: !settings.autoRemove, tty: settings.tty });
    engine.store.db.finishContainer(id, exitCode);
    recordEvent(engine, 'container', 'die', id, { image: settings.image, name: container.name, exitCode: String(exitCode), ...settings.labels });
    return exitCode;
  } finally {
    await release(engine, id);
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

/**
 * The detached side of a start: runs the prepared bundle with its output to the container's log,
 * records the exit code, then releases what the start set up (and the container, with --rm: a follower
 * of its log holds the file open and reads to its end all the same, and `wait` finds its exit code in
 * its `die` event).
 */
export async function superviseContainer(engine: Engine, id: string, runtime: RuntimeName): Promise<void> {
  const container = currentRow(engine, id);
  if (!container) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
  const settings = settingsOf(container);
  const bundle = containerBundle(engine, id);
  let exitCode = KILLED_EXIT;
  try {
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process?: { terminal?: boolean } };
    if (!existsSync(join(bundle, STOP_REQUESTED))) exitCode = await runBundle(runtime, bundle, id, spec, { stdin: stdinOf(bundle), keepLogs: true, tty: spec.process?.terminal ?? false });
    engine.store.db.finishContainer(id, exitCode);
  } catch (err) {
    exitCode = 128;
    engine.store.db.finishContainer(id, exitCode, Date.now(), err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    await release(engine, id);
    engine.store.db.setContainerPid(id, null); // after the release: a kill waits for this (see `released`)
    recordEvent(engine, 'container', 'die', id, { image: settings.image, name: container.name, exitCode: String(exitCode), ...settings.labels });
    if (settings.autoRemove) await destroyContainer(engine, id, true);
  }
}
