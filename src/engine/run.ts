import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../errors.js';
import { type Layer, chainIds } from '../image/image.js';
import { applyLayer, applyLayerOffThread } from '../layer/apply.js';
import { decompressStream } from '../layer/compression.js';
import type { TarWalker } from '../layer/scan.js';
import { layerCompression } from '../oci/mediatypes.js';
import { type RuntimeName, makeStdinPipe, prepareRuntime, runBundle, stdinOf } from '../runtime/runtime.js';
import { type ProcessOptions, runtimeSpec } from '../runtime/spec.js';
import { type Driver, Snapshotter, detectDriver, mount, unmount } from '../snapshot/snapshotter.js';
import type { ImageRow } from '../meta/db.js';
import type { Engine } from './engine.js';

export interface RunOptions extends Omit<ProcessOptions, 'hostname'> {
  readonly hostname?: string;
  /** `--rm`: remove the container when it exits; otherwise it stays for ps, diff, commit and rm. */
  readonly remove: boolean;
  readonly name?: string;
  /** `-d`: a detached kiln process supervises the container; run returns at once. */
  readonly detach?: boolean;
  readonly runtime: RuntimeName;
  /** `--storage-driver`; detected when absent. */
  readonly storageDriver?: Driver;
  /** `-i`: keep stdin open (for a detached container: a named pipe in its bundle, which `attach` writes to). */
  readonly interactive: boolean;
  /** With `interactive` and `detach`: the process's stdin ends when the first attach closes it (Docker's StdinOnce). */
  readonly stdinOnce?: boolean;
  /** The container's ID when the caller chose it (the Engine API's create, then start). */
  readonly id?: string;
  /** `--add-host HOST:IP`: more lines in the container's /etc/hosts. */
  readonly extraHosts?: readonly string[];
  /** Tells the user something kiln decided for them (a storage driver fallback). */
  readonly notice: (message: string) => void;
}

/** The container's /etc/hosts, as Docker writes it with host networking, then the `--add-host` lines. */
function hostsFile(hostname: string, extraHosts: readonly string[]): string {
  const extra = extraHosts.map((entry) => {
    const at = entry.search(/[:=]/);
    const address = entry.slice(at + 1).replace(/^\[(.*)\]$/, '$1'); // [::1] as Docker takes it too
    if (at <= 0 || isIP(address) === 0) throw new KilnError('INVALID_ARGUMENT', `invalid --add-host ${JSON.stringify(entry)}: use HOST:IP (an IPv4 or IPv6 address)`);
    return `${address}\t${entry.slice(0, at)}\n`;
  });
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n${extra.join('')}`;
}

/**
 * The snapshotter for a store: the driver asked for, or overlay where the kernel allows it here, else vfs
 * (and the user is told).
 */
export async function openSnapshotter(engine: Engine, notice: (message: string) => void, wanted?: Driver): Promise<Snapshotter> {
  const possible = await detectDriver(engine.store.root);
  if (wanted === 'overlay' && possible !== 'overlay') throw new KilnError('UNSUPPORTED', 'the overlay storage driver cannot be used here (overlayfs does not mount; kiln needs root for it): use --storage-driver vfs');
  const driver = wanted ?? possible;
  if (!wanted && driver === 'vfs') notice('kiln: overlayfs cannot be mounted here (not root, or no kernel support); using the vfs storage driver (full copies)');
  return new Snapshotter(engine.store.root, engine.store.db, driver);
}

/**
 * Unpacks an image into committed layer snapshots, one per chain ID, reusing those already there (two
 * images with the same base layers share them). Returns the key of the top layer's snapshot.
 */
export async function unpackImage(engine: Engine, snapshots: Snapshotter, nameOrId: string, what = nameOrId): Promise<string | undefined> {
  const image = await engine.store.image(engine.image(nameOrId));
  return unpackLayers(snapshots, image.layers, what);
}

/**
 * Unpacks layers (bottom first) into committed snapshots keyed by chain ID, skipping those already
 * there. `ready(i)` resolves when layer i's blob is in the store, so a pull can unpack each layer as soon
 * as it and those below it have arrived; `progress` is told when one starts and ends. Returns the top key.
 */
export async function unpackLayers(snapshots: Snapshotter, layers: readonly Layer[], what: string, ready?: (index: number) => Promise<void>, progress?: (index: number, state: 'extracting' | 'done') => void): Promise<string | undefined> {
  const chain = chainIds(layers.map((l) => l.diffId));
  let parent: string | undefined;
  for (const [i, layer] of layers.entries()) {
    const key = `${snapshots.driver}:${chain[i]}`;
    await ready?.(i);
    // One unpack per snapshot at a time in this process (parallel build stages share base layers; a
    // pull may be unpacking this layer as it downloads it).
    const lock = `${snapshots.root}\0${key}`;
    for (let running = unpacking.get(lock); running; running = unpacking.get(lock)) await running.catch(() => undefined);
    const early = detached.get(lock); // unpacked as it downloaded, before its parent was
    if (snapshots.has(key) && !existsSync(snapshots.dir(key))) {
      // The operation's failure sweeps it (and what stacks on it): see collectGarbage.
      throw new KilnError('CORRUPT', `layer ${i + 1} of ${what} was unpacked into ${snapshots.dir(key)}, which is gone (removed from outside kiln); kiln forgets that unpack now: try again, and the layer is unpacked anew`);
    }
    if (early !== undefined && !snapshots.has(key)) {
      detached.delete(lock);
      snapshots.commit(key, early, parent);
    } else if (!snapshots.has(key)) {
      const below = parent;
      const work = (async () => {
        progress?.(i, 'extracting');
        const temporary = `extract-${process.pid}-${randomBytes(6).toString('hex')}`;
        await snapshots.prepare(temporary, below);
        try {
          const stream = decompressStream(await layer.open(), layerCompression(layer.mediaType) ?? 'none');
          const dir = snapshots.dir(temporary);
          await snapshots.writing(dir, () => applyLayer(dir, stream, { whiteouts: snapshots.whiteouts, what: `layer ${i + 1} of ${what}` }));
          if (snapshots.has(key)) await snapshots.remove(temporary); // another process unpacked it meanwhile
          else snapshots.commit(key, temporary);
        } catch (err) {
          await snapshots.remove(temporary);
          throw err;
        }
      })();
      unpacking.set(lock, work);
      try {
        await work;
      } finally {
        unpacking.delete(lock);
      }
    }
    progress?.(i, 'done');
    parent = key;
  }
  return parent;
}

/**
 * Unpacks layer `index` from its tar as a pull reads it (one pass over the bytes instead of two): `read`
 * applies the tar to a new snapshot, `settle` commits it once the blob has been verified and stored, or
 * drops it. With overlay, a layer whose parent is not unpacked yet is unpacked all the same, and waits
 * (in `detached`) for `unpackLayers` to commit it on its parent, or for `discardDetached`. Undefined when
 * the layer cannot be unpacked this way now (vfs without its parent, or it is, or is being, unpacked).
 */
export function unpackWhileReading(snapshots: Snapshotter, layers: readonly Layer[], index: number, what: string): { read: TarWalker; settle(verified: boolean): Promise<void> } | undefined {
  const chain = chainIds(layers.map((l) => l.diffId));
  const key = `${snapshots.driver}:${chain[index]}`;
  const parent = index > 0 ? `${snapshots.driver}:${chain[index - 1]}` : undefined;
  const lock = `${snapshots.root}\0${key}`;
  const parentHere = parent === undefined || snapshots.has(parent);
  if (snapshots.has(key) || (!parentHere && snapshots.driver !== 'overlay') || unpacking.has(lock) || detached.has(lock)) return undefined;
  const temporary = `extract-${process.pid}-${randomBytes(6).toString('hex')}`;
  let prepared = false;
  let applied = false;
  let settled!: () => void;
  unpacking.set(lock, new Promise<void>((resolve) => (settled = resolve)));
  return {
    async read(tar) {
      await snapshots.prepare(temporary, parentHere ? parent : undefined);
      prepared = true;
      // A worker thread runs beside the download, decompression and hashing; starting one costs ~40 ms.
      const apply = (layers[index]?.size ?? 0) >= OFF_THREAD_LAYER ? applyLayerOffThread : applyLayer;
      const dir = snapshots.dir(temporary);
      const result = await snapshots.writing(dir, () => apply(dir, tar, { whiteouts: snapshots.whiteouts, what: `layer ${index + 1} of ${what}` }));
      applied = true;
      return result;
    },
    async settle(verified) {
      try {
        if (!verified || !applied || snapshots.has(key)) {
          if (prepared) await snapshots.remove(temporary);
        } else if (parentHere) snapshots.commit(key, temporary);
        else if (parent !== undefined && snapshots.has(parent)) snapshots.commit(key, temporary, parent);
        else detached.set(lock, temporary);
      } finally {
        unpacking.delete(lock);
        settled();
      }
    },
  };
}

/** Layers whose blob is at least this large are unpacked on a worker thread as they download. */
const OFF_THREAD_LAYER = 8 << 20;

/** Unpacks in progress in this process, by snapshotter root and key. */
const unpacking = new Map<string, Promise<void>>();

/** Layers unpacked (overlay) before their parent was: the temporary snapshot, by snapshotter root and key. */
const detached = new Map<string, string>();

/** Drops what `unpackWhileReading` unpacked of these layers that no parent took (a pull that failed). */
export async function discardDetached(snapshots: Snapshotter, layers: readonly Layer[]): Promise<void> {
  for (const id of chainIds(layers.map((l) => l.diffId))) {
    const lock = `${snapshots.root}\0${snapshots.driver}:${id}`;
    const temporary = detached.get(lock);
    if (temporary === undefined) continue;
    detached.delete(lock);
    await snapshots.remove(temporary);
  }
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'fervent', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'nifty', 'quirky', 'serene', 'vibrant', 'zealous'];
const NAMES = ['babbage', 'curie', 'darwin', 'euclid', 'hopper', 'kepler', 'lovelace', 'noether', 'pascal', 'ritchie', 'tesla', 'turing'];

/** A Docker-style random name (adjective_scientist) that no container has yet. */
function containerName(engine: Engine): string {
  const taken = new Set(engine.store.db.containers().map((c) => c.name));
  for (;;) {
    const pick = (list: readonly string[]): string => list[randomBytes(1)[0] as number % list.length] as string;
    const name = `${pick(ADJECTIVES)}_${pick(NAMES)}`;
    if (!taken.has(name)) return name;
    if (taken.size > 100) return `${name}${randomBytes(2).readUInt16BE(0)}`;
  }
}

export function containerKey(id: string): string {
  return `container:${id}`;
}

export function containerBundle(engine: Engine, id: string): string {
  return join(engine.store.root, 'containers', id);
}

/**
 * `docker run`: a writable snapshot on the image, the image's config turned into an OCI bundle, the
 * process run in the foreground. With `remove` the container and its snapshot go when it exits;
 * otherwise they stay (exited) for ps, diff, commit and rm.
 */
export async function runContainer(engine: Engine, nameOrId: string, options: RunOptions): Promise<{ id: string; exitCode: number }> {
  if (process.getuid?.() !== 0) throw new KilnError('UNSUPPORTED', 'kiln run needs root (rootless containers are not supported yet)');
  // The image is held while the container runs in the foreground (a --rm one has no record that would
  // keep it), and until a detached one's record does.
  return engine.store.withLease((lease) => runHeld(engine, engine.holdImage(lease, nameOrId), nameOrId, options));
}

async function runHeld(engine: Engine, row: ImageRow, nameOrId: string, options: RunOptions): Promise<{ id: string; exitCode: number }> {
  const config = engine.store.configOf(row.id).config ?? {};
  if (options.name !== undefined) checkNewContainerName(engine, options.name);
  const id = options.id ?? randomBytes(32).toString('hex');
  const hostname = options.hostname ?? id.slice(0, 12);
  const hosts = hostsFile(hostname, options.extraHosts ?? []);
  const snapshots = await openSnapshotter(engine, options.notice, options.storageDriver);
  const top = await unpackImage(engine, snapshots, row.id, nameOrId);
  const key = containerKey(id);
  const bundle = containerBundle(engine, id);
  const rootfs = join(bundle, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  // Who owns this bundle: a crash (kill -9) leaves it behind, and prune tells the dead from the running by this.
  await writeFile(join(bundle, OWNER_FILE), String(process.pid));
  let mounted = false;
  let detached = false;
  try {
    const [spec] = await snapshots.prepare(key, top);
    if (!spec) throw new KilnError('INTERNAL', `snapshot ${key} has no mounts`);
    await mount(spec, rootfs);
    mounted = true;
    const files = { hosts: join(bundle, 'hosts'), resolvConf: join(bundle, 'resolv.conf'), hostname: join(bundle, 'hostname') };
    await writeFile(files.hosts, hosts);
    await writeFile(files.resolvConf, options.network === 'none' ? '' : await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    await writeFile(files.hostname, `${hostname}\n`);
    const runtimeSpecification = await runtimeSpec(config, rootfs, files, { ...options, hostname });
    const { args } = (runtimeSpecification as { process: { args: string[] } }).process;
    if (!options.remove || options.detach) {
      engine.store.db.addContainer({ id, name: options.name ?? containerName(engine), imageId: row.id, imageName: nameOrId, command: args, driver: snapshots.driver, createdAt: Date.now() });
      engine.store.db.setContainerPid(id, process.pid);
    }
    const prepared = await prepareRuntime(options.runtime);
    if (prepared) options.notice(prepared);
    if (options.detach) {
      await writeFile(join(bundle, 'config.json'), JSON.stringify(runtimeSpecification, null, 2));
      if (options.interactive) await makeStdinPipe(bundle, options.stdinOnce ?? false);
      spawnSupervisor(engine, id, options.runtime, options.remove);
      detached = true;
      return { id, exitCode: 0 };
    }
    const exitCode = await runBundle(options.runtime, bundle, id, runtimeSpecification, { stdin: options.interactive ? 'inherit' : 'ignore', keepLogs: !options.remove, tty: options.tty });
    if (!options.remove) {
      engine.store.db.finishContainer(id, exitCode);
      engine.store.db.setContainerPid(id, null);
    }
    return { id, exitCode };
  } finally {
    if (!detached) await cleanUp(engine, snapshots, id, mounted && rootfs, options.remove);
  }
}

/** The hidden CLI command a detached container's supervisor runs. */
export const SUPERVISE_COMMAND = '__supervise';
/** The file in a container's bundle naming the pid of the kiln process that runs it. */
export const OWNER_FILE = 'owner';
const KILN_BIN = fileURLToPath(new URL('../../../bin/kiln', import.meta.url));

/** Refuses a name Docker would refuse for a new container: badly formed, or taken. */
export function checkNewContainerName(engine: Engine, name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new KilnError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  if (engine.store.db.containers().some((c) => c.name === name)) throw new KilnError('CONFLICT', `Conflict. The container name "/${name}" is already in use; remove that container or choose another name`);
}

/**
 * Starts the detached kiln process that runs a container's prepared bundle (its rootfs mounted), and
 * records it as the container's supervisor.
 */
export function spawnSupervisor(engine: Engine, id: string, runtime: RuntimeName, remove: boolean): void {
  const supervisor = spawn(process.execPath, [KILN_BIN, '--root', engine.store.root, SUPERVISE_COMMAND, id, runtime, remove ? 'rm' : 'keep'], { detached: true, stdio: 'ignore' });
  supervisor.unref();
  engine.store.db.setContainerPid(id, supervisor.pid ?? null);
}

/** After the process: unmount, and for --rm forget the container, its snapshot and bundle. */
async function cleanUp(engine: Engine, snapshots: Snapshotter, id: string, mountedRootfs: string | false, remove: boolean): Promise<void> {
  if (mountedRootfs !== false) await unmount(mountedRootfs).catch(() => undefined);
  if (remove) engine.store.db.deleteContainer(id);
  if (remove || !engine.store.db.containers().some((c) => c.id === id)) {
    const key = containerKey(id);
    if (snapshots.list().some((s) => s.key === key)) await snapshots.remove(key);
    await rm(containerBundle(engine, id), { recursive: true, force: true });
  }
}

/**
 * The detached side of `run -d`: runs the prepared bundle with its output to the container's logs,
 * records the exit code, then cleans up as a foreground run would.
 */
export async function superviseContainer(engine: Engine, id: string, runtime: RuntimeName, remove: boolean): Promise<void> {
  const container = engine.store.db.containers().find((c) => c.id === id);
  if (!container) throw new KilnError('NOT_FOUND', `No such container: ${id}`);
  const snapshots = new Snapshotter(engine.store.root, engine.store.db, container.driver === 'vfs' ? 'vfs' : 'overlay');
  const bundle = containerBundle(engine, id);
  try {
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process?: { terminal?: boolean } };
    await writeFile(join(bundle, OWNER_FILE), String(process.pid));
    const exitCode = await runBundle(runtime, bundle, id, spec, { stdin: stdinOf(bundle), keepLogs: true, tty: spec.process?.terminal ?? false });
    engine.store.db.finishContainer(id, exitCode);
  } finally {
    engine.store.db.setContainerPid(id, null);
    await cleanUp(engine, snapshots, id, join(bundle, 'rootfs'), remove);
  }
}
