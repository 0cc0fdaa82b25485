import assert from 'node:assert/strict';
import { closeSync, existsSync, readFileSync, writeSync } from 'node:fs';
import { describe, it } from 'node:test';
import { spawnPiped } from '../../src/builder/spawn.js';
import { sys } from '../../src/sys.js';
import type { RuntimeChild } from '../../src/runtime/runtime.js';

/** The child's output and how it ended, as runBundle reads them. */
function ended(child: RuntimeChild): Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ stdout, stderr, code, signal }));
  });
}

describe('spawnPiped (native/sys posix_spawn)', { skip: !sys()?.spawn && 'native/sys is not built with spawn (npm run install)' }, () => {
  it('gives both streams read to their end, then the exit code; stdin is empty', async () => {
    const child = spawnPiped('sh', ['-c', 'cat; echo out; echo err >&2; exit 7']);
    assert.ok(child);
    assert.deepEqual(await ended(child), { stdout: 'out\n', stderr: 'err\n', code: 7, signal: null });
  });

  it('tells a signal that ended the process, by name; signals Node ignores are at their defaults in the child', async () => {
    const child = spawnPiped('sh', ['-c', 'kill -PIPE $$']);
    assert.ok(child);
    assert.deepEqual(await ended(child), { stdout: '', stderr: '', code: null, signal: 'SIGPIPE' });
    const killed = spawnPiped('sleep', ['30']);
    assert.ok(killed);
    const result = ended(killed);
    assert.equal(killed.kill('SIGKILL'), true);
    assert.equal((await result).signal, 'SIGKILL');
  });

  it("a program that is not there is an 'error' event in Node's words", async () => {
    const child = spawnPiped('kiln-no-such-program', ['run']);
    assert.ok(child);
    await assert.rejects(ended(child), (err: Error & { code?: string }) => err.code === 'ENOENT' && err.message === 'spawn kiln-no-such-program ENOENT');
  });
});

describe('sealedcopy (native/sys memfd)', { skip: !sys()?.sealedcopy && 'native/sys is not built with sealedcopy (npm run install)' }, () => {
  it('is the file, read-only for good, with the seals runc and crun look for', () => {
    const fd = (sys()?.sealedcopy as (path: string) => number)('/bin/sh');
    try {
      assert.deepEqual(readFileSync(`/proc/self/fd/${fd}`), readFileSync('/bin/sh'));
      assert.throws(() => writeSync(fd, 'x', 0), (err: Error & { code?: string }) => err.code === 'EPERM');
    } finally {
      closeSync(fd);
    }
  });

  it('crun started through spawnPiped runs from it, under its own name', { skip: !['/usr/bin/crun', '/usr/local/bin/crun'].some(existsSync) && 'crun is not installed' }, async () => {
    const child = spawnPiped('crun', ['--version']);
    assert.ok(child);
    const { stdout, code } = await ended(child);
    assert.equal(code, 0);
    assert.match(stdout, /^crun version /);
  });
});
