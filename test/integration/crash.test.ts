import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Engine } from '../../src/engine/engine.js';
import { OWNER_FILE, containerBundle, containerKey } from '../../src/engine/run.js';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { fixturesDir, tempDir } from '../helpers/paths.js';
import { registryUnavailable, startRegistry } from '../helpers/registry.js';

/** Runs kiln on the store `root` and kills it (SIGKILL) after `afterMs`: fault injection, not synchronisation. */
async function killAfter(root: string, args: readonly string[], afterMs: number): Promise<void> {
  const child = spawn(process.execPath, [kilnBin, '--root', root, ...args], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await delay(afterMs);
  child.kill('SIGKILL');
  await exited;
}

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

describe('kill -9 during a layer unpack', { skip: process.getuid?.() !== 0 && 'kiln run needs root' }, () => {
  it('leaves a store that checks clean, and the next run works', async () => {
    const work = await tempDir();
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    for (let i = 0; i < 400; i++) await writeFile(join(rootfs, `f${i}`), randomBytes(100_000));
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', join(fixturesDir, 'busybox-rootfs.tar'), 'base:1']));
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
    for (const key of [`extract-${pid}-0123456789ab`, `build-${pid}-1`]) engine.store.db.addSnapshot(key, undefined, 'active', 'overlay');
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

describe('kill -9 during a pull', { skip: registryUnavailable() ?? (process.getuid?.() !== 0 && 'builds and unpacking need root') }, () => {
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
      await ok(source.kiln(['import', join(fixturesDir, 'busybox-rootfs.tar'), 'base:1']));
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

describe('kill -9 during a commit', { skip: process.getuid?.() !== 0 && 'kiln run needs root' }, () => {
  it('leaves a store that checks clean, and the next commit works', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', join(fixturesDir, 'busybox-rootfs.tar'), 'base:1']));
    await ok(kiln(['run', '--name', 'big', 'base:1', 'sh', '-c', 'for i in 1 2 3 4 5 6; do head -c 8000000 /dev/urandom > /f$i; done']));
    for (const afterMs of [120, 240]) {
      await killAfter(root, ['commit', 'big', 'crashed:1'], afterMs);
      assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/, `after killing commit at ${afterMs} ms`);
    }
    await ok(kiln(['commit', 'big', 'committed:1']));
    assert.equal((await ok(kiln(['run', '--rm', 'committed:1', 'sh', '-c', 'ls /f* | wc -l']))).stdout.trim(), '6');
  });
});

describe('kill -9 during a build', { skip: process.getuid?.() !== 0 && 'kiln build needs root' }, () => {
  it('in the middle of a RUN step: check finds no damage, prune removes the runtime container, mount and snapshot, and the build then succeeds', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', join(fixturesDir, 'busybox-rootfs.tar'), 'busybox:latest']));
    const context = await tempDir();
    // The RUN step signals through its cache mount that it runs, then waits (for the kill).
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nCOPY Dockerfile /\nRUN --mount=type=cache,target=/signal,id=crash touch /signal/running; sleep 300\n');
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
    child.kill('SIGKILL');
    await exited;
    const check = await ok(kiln(['system', 'check']));
    assert.doesNotMatch(check.stdout, /^problem:/m);
    assert.match(check.stdout, /reclaimable: build work/);
    await ok(kiln(['system', 'prune', '-f']));
    const after = await ok(kiln(['system', 'check']));
    assert.doesNotMatch(after.stdout, /^(problem|reclaimable): (build|unfinished)/m);
    assert.equal((await readFile('/proc/mounts', 'utf8')).includes(join(root, 'builds')), false);
    // The step's runtime container (owned by the killed kiln) is gone; other tests' may run meanwhile.
    const orphaned = (await runIn('runc', ['list', '-q'])).split('\n').filter((id) => id.startsWith('kiln-build-') && !processAliveHere(Number(/^kiln-build-(\d+)-/.exec(id)?.[1] ?? 0)));
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
