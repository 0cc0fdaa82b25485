import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { loadImages } from '../../src/engine/archive.js';
import { Engine } from '../../src/engine/engine.js';
import { OWNER_FILE, containerBundle, containerKey } from '../../src/engine/containers.js';
import { openSnapshotter, unpackImage } from '../../src/engine/snapshots.js';
import { buildContainerIds } from '../helpers/runtime.js';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';
import { registryUnavailable, startRegistry } from '../helpers/registry.js';

/** `system check` of a store, in this process (it is the same engine call the CLI makes). */
async function checkStore(root: string): Promise<{ problems: readonly string[] }> {
  const engine = await Engine.open(root);
  try {
    return await engine.check();
  } finally {
    engine.close();
  }
}

/** Runs kiln on the store `root` and kills it (SIGKILL) after `afterMs`: fault injection, not synchronisation. */
async function killAfter(root: string, args: readonly string[], afterMs: number): Promise<void> {
  const child = spawn(process.execPath, [kilnBin, '--root', root, ...args], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await delay(afterMs);
  child.kill('SIGKILL');
  await exited;
}

const noRootfs = await fixturesUnavailable('busybox-rootfs.tar');

describe('kill -9 at any moment leaves a clean store', () => {
  it('during load and import, `system check` finds no damage and prune frees the left-overs', async () => {
    // An archive big enough that a load takes a while: 48 MB of incompressible files in one layer.
    const work = await tempDir();
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    for (let i = 0; i < 6; i++) await writeFile(join(rootfs, `f${i}`), randomBytes(8 << 20));
    const source = await newKiln();
    await ok(source.kiln(['import', rootfs, 'big:1']));
    const archive = join(work, 'big.tar');
    await ok(source.kiln(['save', '-o', archive, 'big:1']));

    const { root, kiln } = await newKiln();
    // Kill points spread over the whole operation (fault injection, not synchronisation: every
    // point must leave the store consistent, whatever the operation had reached).
    for (const [args, afterMs] of [
      [['load', '-i', archive], 100],
      [['load', '-i', archive], 180],
      [['load', '-i', archive], 260],
      [['import', rootfs, 'crash:1'], 120],
      [['import', rootfs, 'crash:1'], 220],
    ] as const) {
      await killAfter(root, [...args], afterMs);
      const check = await ok(kiln(['system', 'check']));
      assert.match(check.stdout, /: clean\n$/, `after killing ${args.join(' ')} at ${afterMs} ms`);
      assert.doesNotMatch(check.stdout, /^problem:/m);
    }
    await ok(kiln(['system', 'prune', '-a', '-f']));
    const final = await ok(kiln(['system', 'check']));
    assert.equal(final.stdout, '0 blobs verified, 0 images, 0 names: clean\n');
    // And the store still works: the archive loads completely.
    await ok(kiln(['load', '-i', archive]));
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^3 blobs verified, 1 images, 1 names: clean\n$/);
  });
});

describe('kill -9 during a prune', { skip: (process.getuid?.() !== 0 && 'unpacking images into snapshots needs root') || noRootfs }, () => {
  it('at 20 points leaves a store that checks clean, and the next prune and run work', async () => {
    // Images whose removal is some work: five of 400 files each, unpacked into snapshots, saved once.
    const source = await newKiln();
    const work = await tempDir();
    const names: string[] = [];
    for (let i = 0; i < 5; i++) {
      const dir = join(work, `tree${i}`);
      await mkdir(dir);
      for (let f = 0; f < 400; f++) await writeFile(join(dir, `f${f}`), `${i}:${f}\n`);
      await ok(source.kiln(['import', dir, `tree:${i}`]));
      names.push(`tree:${i}`);
    }
    const archive = join(work, 'trees.tar');
    await ok(source.kiln(['save', '-o', archive, ...names]));
    const { root, kiln } = await newKiln();
    const base = await fixture('busybox-rootfs.tar');
    await ok(kiln(['import', base, 'base:1']));
    const fill = async (): Promise<void> => {
      const engine = await Engine.open(root);
      try {
        await loadImages(engine, { path: archive }, () => undefined);
        const snapshots = await openSnapshotter(engine, () => undefined);
        for (const name of names) await unpackImage(engine, snapshots, name);
      } finally {
        engine.close();
      }
    };
    // How long an uninterrupted prune takes here, so that the kill points spread over all of it.
    await fill();
    const started = Date.now();
    await ok(kiln(['image', 'prune', '-a', '-f']));
    const whole = Date.now() - started;
    for (let point = 0; point < 20; point++) {
      await fill();
      const command = point % 2 === 0 ? ['image', 'prune', '-a', '-f'] : ['system', 'prune', '-a', '-f'];
      const afterMs = Math.round(60 + ((whole + 60) * point) / 19);
      await killAfter(root, command, afterMs);
      const report = await checkStore(root);
      assert.deepEqual(report.problems, [], `after killing ${command.join(' ')} at ${afterMs} ms (a whole prune takes ${whole} ms)`);
    }
    await ok(kiln(['system', 'prune', '-a', '-f']));
    assert.equal((await ok(kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
    assert.deepEqual(await readdir(join(root, 'snapshots')), []);
    await ok(kiln(['import', base, 'base:1']));
    assert.equal((await ok(kiln(['run', '--rm', 'base:1', 'echo', 'still works']))).stdout, 'still works\n');
  });

  it('a layer snapshot whose directory was removed from outside is a clear error, and forgotten so that the next run unpacks it again', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
    await ok(kiln(['run', '--rm', 'base:1', 'true']));
    const [dir] = await readdir(join(root, 'snapshots'));
    await rm(join(root, 'snapshots', dir ?? ''), { recursive: true });
    const failed = await kiln(['run', '--rm', 'base:1', 'true']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^Error: layer 1 of base:1 was unpacked into .*, which is gone \(removed from outside kiln\); kiln forgets that unpack now: try again/);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
    assert.equal((await ok(kiln(['run', '--rm', 'base:1', 'echo', 'mended']))).stdout, 'mended\n');
  });
});

describe('kill -9 during a layer unpack', { skip: (process.getuid?.() !== 0 && 'kiln run needs root') || noRootfs }, () => {
  it('leaves a store that checks clean, and the next run works', async () => {
    const work = await tempDir();
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    for (let i = 0; i < 400; i++) await writeFile(join(rootfs, `f${i}`), randomBytes(100_000));
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
    await ok(kiln(['import', rootfs, 'big:1']));
    for (const afterMs of [150, 300]) {
      await killAfter(root, ['run', '--rm', 'big:1', 'true'], afterMs);
      const check = await kiln(['system', 'check']);
      assert.match(check.stdout, /: clean\n$/, `after killing run at ${afterMs} ms:\n${check.stdout}${check.stderr}`);
    }
    assert.equal((await ok(kiln(['run', '--rm', 'base:1', 'echo', 'still works']))).stdout, 'still works\n');
    // What the killed runs left (a mounted rootfs, a writable snapshot) goes with a prune.
    await ok(kiln(['system', 'prune', '-a', '-f']));
    assert.deepEqual(await readdir(join(root, 'containers')).catch(() => []), []);
    assert.equal((await ok(kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
  });
});

describe('kill -9 between recording a temporary snapshot and making its directory', () => {
  it('is a left-over for prune, not damage', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['images'])); // creates the store
    const gone = spawn(process.execPath, ['-e', '0']);
    const pid = await new Promise<number>((resolve) => gone.on('exit', () => resolve(gone.pid ?? 0)));
    const engine = await Engine.open(root);
    engine.store.db.addSnapshot(`extract-${pid}-0123456789ab`, undefined, 'active', 'overlay', { pid, purpose: 'extract' });
    engine.store.db.addSnapshot(`build-${pid}-1`, undefined, 'active', 'overlay', { pid, purpose: 'build' });
    // A run killed there: its bundle, owned by the dead process, and its container snapshot's record.
    const id = 'ab'.repeat(32);
    await mkdir(join(containerBundle(engine, id), 'rootfs'), { recursive: true });
    await writeFile(join(containerBundle(engine, id), OWNER_FILE), String(pid));
    engine.store.db.addSnapshot(containerKey(id), undefined, 'active', 'overlay');
    engine.close();
    const check = await ok(kiln(['system', 'check']));
    assert.match(check.stdout, new RegExp(`^reclaimable: unfinished layer unpack extract-${pid}-0123456789ab$`, 'm'));
    assert.match(check.stdout, new RegExp(`^reclaimable: unfinished snapshot container:${id} \\(its directory was never made\\)$`, 'm'));
    assert.match(check.stdout, /: clean\n$/);
    await ok(kiln(['system', 'prune', '-f']));
    assert.equal((await ok(kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
  });
});

describe('kill -9 during a pull', { skip: registryUnavailable() ?? ((process.getuid?.() !== 0 && 'builds and unpacking need root') || noRootfs) }, () => {
  it('at any point leaves a store that checks clean, and the next pull and run work', async () => {
    const registry = await startRegistry();
    try {
      // Three layers of 16 MB each (incompressible), so that all three download and unpack at once.
      const context = await tempDir();
      for (const dir of ['a', 'b', 'c']) {
        await mkdir(join(context, dir));
        for (let i = 0; i < 4; i++) await writeFile(join(context, dir, `f${i}`), randomBytes(4 << 20));
      }
      await writeFile(join(context, 'Dockerfile'), 'FROM base:1\nCOPY a /a\nCOPY b /b\nCOPY c /c\n');
      const source = await newKiln();
      await ok(source.kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
      const name = `${registry.host}/crash/layers:1`;
      await ok(source.kiln(['build', '-q', '-t', name, context]));
      await ok(source.kiln(['push', '-q', name]));
      const { root, kiln } = await newKiln();
      for (const afterMs of [120, 250, 400, 600]) {
        await killAfter(root, ['pull', '-q', name], afterMs);
        const check = await ok(kiln(['system', 'check']));
        assert.match(check.stdout, /: clean\n$/, `after killing pull at ${afterMs} ms:\n${check.stdout}`);
      }
      await ok(kiln(['pull', '-q', name]));
      assert.equal((await ok(kiln(['run', '--rm', name, 'sh', '-c', 'ls /a /b /c | grep -c f']))).stdout, '12\n');
      await ok(kiln(['system', 'prune', '-f']));
      assert.match((await ok(kiln(['system', 'check']))).stdout, /^\d+ blobs verified, 1 images, 2 names: clean\n$/);
    } finally {
      await registry.stop();
    }
  });
});

describe('kill -9 during a commit', { skip: (process.getuid?.() !== 0 && 'kiln run needs root') || noRootfs }, () => {
  it('leaves a store that checks clean, and the next commit works', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
    await ok(kiln(['run', '--name', 'big', 'base:1', 'sh', '-c', 'for i in 1 2 3 4 5 6; do head -c 8000000 /dev/urandom > /f$i; done']));
    for (const afterMs of [120, 240]) {
      await killAfter(root, ['commit', 'big', 'crashed:1'], afterMs);
      assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/, `after killing commit at ${afterMs} ms`);
    }
    await ok(kiln(['commit', 'big', 'committed:1']));
    assert.equal((await ok(kiln(['run', '--rm', 'committed:1', 'sh', '-c', 'ls /f* | wc -l']))).stdout.trim(), '6');
  });
});

describe('kill -9 during a build', { skip: (process.getuid?.() !== 0 && 'kiln build needs root') || noRootfs }, () => {
  it('in the middle of a RUN step: no runtime container, process or mount outlives it, check finds no damage, prune removes the rest, and the build then succeeds', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    const context = await tempDir();
    // The RUN step signals through its cache mount that it runs, then waits (for the kill).
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nCOPY Dockerfile /\nRUN --mount=type=cache,target=/signal,id=crash touch /signal/running; exec sleep 2999\n');
    const child = spawn(process.execPath, [kilnBin, '--root', root, 'build', '-q', context], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const signal = async (): Promise<boolean> => {
      for (const dir of await readdir(join(root, 'cache-mounts')).catch(() => [] as string[])) {
        if ((await readdir(join(root, 'cache-mounts', dir))).includes('running')) return true;
      }
      return false;
    };
    // Waiting for a condition the step itself reports (polled), not for a guessed time.
    for (let i = 0; i < 600 && !(await signal()); i++) await delay(50);
    assert.ok(await signal(), 'the RUN step never started');
    const pid = child.pid ?? 0;
    child.kill('SIGKILL');
    await exited;
    // The killed kiln's guard stops its runtime container (the step's process with it) and unmounts
    // what it mounted; it works on its own, so its result is polled for, with a bound.
    const leftovers = async (): Promise<string[]> => [
      ...(await buildContainerIds()).filter((id) => id.startsWith(`kiln-build-${pid}-`)),
      ...(await readFile('/proc/mounts', 'utf8')).split('\n').filter((line) => line.includes(root)),
      ...(await runIn('pgrep', ['-f', '-x', 'sleep 2999'])).split('\n').filter(Boolean),
    ];
    for (let i = 0; i < 200 && (await leftovers()).length > 0; i++) await delay(50);
    await ok(kiln(['images'])); // the next command
    assert.deepEqual(await leftovers(), []);
    const check = await ok(kiln(['system', 'check']));
    assert.doesNotMatch(check.stdout, /^problem:/m);
    assert.match(check.stdout, /reclaimable: build work/);
    await ok(kiln(['system', 'prune', '-f']));
    const after = await ok(kiln(['system', 'check']));
    assert.doesNotMatch(after.stdout, /^(problem|reclaimable): (build|unfinished)/m);
    assert.equal((await readFile('/proc/mounts', 'utf8')).includes(join(root, 'builds')), false);
    // The step's runtime container (owned by the killed kiln) is gone; other tests' may run meanwhile.
    const orphaned = (await buildContainerIds()).filter((id) => id.startsWith('kiln-build-') && !processAliveHere(Number(/^kiln-build-(\d+)-/.exec(id)?.[1] ?? 0)));
    assert.deepEqual(orphaned, []);
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nCOPY Dockerfile /\nRUN echo done > /done\n');
    await ok(kiln(['build', '-q', '-t', 'after:1', context]));
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });
});

function processAliveHere(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runIn(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}
