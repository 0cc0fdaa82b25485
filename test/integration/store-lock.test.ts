import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Engine } from '../../src/engine/engine.js';
import { sha256 } from '../../src/oci/digest.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { type RunResult, kilnBin, newKiln, ok } from '../helpers/kiln.js';

/** Starts kiln; its stderr so far can be read while it runs. */
function start(root: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): { stderr: () => string; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [kilnBin, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const done = new Promise<RunResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), stdoutBytes: Buffer.concat(out) })));
  return { stderr: () => Buffer.concat(err).toString(), done };
}

/** Waits (polling, with a bound) until `condition` holds: the other process reports a state, it has no event. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await delay(50);
  assert.ok(condition(), what);
}

describe("the store's write lock", { skip: await fixturesUnavailable('busybox-rootfs.tar') }, () => {
  it('another process holding it is waited for, and said so; too long a hold is one line, not a crash', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
    // Another writer holds the database's write lock (as a long transaction in another kiln would).
    const holder = new Database(join(root, 'kiln.db'));
    try {
      holder.exec('BEGIN IMMEDIATE');
      const waiting = start(root, ['tag', 'base:1', 'other:1']);
      await until(() => waiting.stderr().includes('waiting for it'), 'kiln never said it waits for the lock');
      assert.equal(waiting.stderr(), `kiln: another kiln process is writing to the store at ${root}; waiting for it\n`);
      holder.exec('COMMIT');
      const waited = await waiting.done;
      assert.equal(waited.code, 0, waited.stderr);

      holder.exec('BEGIN IMMEDIATE');
      const impatient = await start(root, ['tag', 'base:1', 'third:1'], { KILN_LOCK_TIMEOUT_SECONDS: '3' }).done;
      holder.exec('COMMIT');
      assert.equal(impatient.code, 1);
      assert.match(impatient.stderr, new RegExp(`Error: the store at ${root} stayed locked by another kiln process for [3-9] s .*; try again when it has finished\\n$`));
      assert.doesNotMatch(impatient.stderr, /internal error|\n\s+at /);
    } finally {
      holder.close();
    }
    assert.deepEqual((await ok(kiln(['images', '--format', '{{.Repository}}:{{.Tag}}']))).stdout.split('\n').filter(Boolean).sort(), ['base:1', 'other:1']);
  });

  it('a prune with thousands of snapshots to remove lets other writers in as it goes', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'base:1']));
    // 2,000 left-over layer snapshots that no image needs, 20 files each: what a store that lived long has.
    const engine = await Engine.open(root);
    try {
      for (let i = 0; i < 2000; i++) {
        const dir = engine.store.db.addSnapshot(`overlay:${sha256(`left-over ${i}`)}`, undefined, 'committed', 'overlay');
        await mkdir(join(root, 'snapshots', String(dir), 'fs'), { recursive: true });
        for (let f = 0; f < 20; f++) await writeFile(join(root, 'snapshots', String(dir), 'fs', `f${f}`), 'x');
      }
    } finally {
      engine.close();
    }
    const prune = start(root, ['system', 'prune', '-f']);
    // Tags written while it runs: each gets the lock between two of the prune's batches.
    const tags: RunResult[] = [];
    for (let i = 0; i < 5; i++) tags.push(await start(root, ['tag', 'base:1', `during:${i}`]).done);
    assert.equal((await prune.done).code, 0);
    for (const tag of tags) {
      assert.equal(tag.code, 0, tag.stderr);
      assert.doesNotMatch(tag.stderr, /waiting for it/);
    }
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });
});
