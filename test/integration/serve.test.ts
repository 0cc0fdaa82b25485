import assert from 'node:assert/strict';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/paths.js';
import { freePort } from '../helpers/registry.js';
import { startServe } from '../helpers/serve.js';

/** GET /_ping's body, or the error's code when nothing answers. */
function ping(socket: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping' }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

describe('kiln serve: one server per socket, listen errors in one line', () => {
  it('refuses a second kiln serve on a socket one answers on, and takes over the socket a killed one left', async () => {
    const dir = await tempDir('kiln-serve-');
    const socket = join(dir, 'kiln.sock');
    const first = await startServe(join(dir, 'store'), ['-H', `unix://${socket}`]);
    const second = await runKiln(join(dir, 'store2'), ['serve', '-H', `unix://${socket}`]);
    assert.equal(second.code, 1);
    assert.equal(second.stderr, `Error: another kiln serve is listening on ${socket}\n`);
    assert.equal(await ping(socket), 'OK', 'the first server still serves');
    // kill -9 leaves the socket file, with nothing listening on it: the next serve takes it over.
    first.process.kill('SIGKILL');
    await first.exited;
    assert.ok((await lstat(socket)).isSocket());
    assert.equal(await ping(socket), 'ECONNREFUSED');
    const third = await startServe(join(dir, 'store'), ['-H', `unix://${socket}`]);
    assert.equal(await ping(socket), 'OK');
    await third.stop();
    await assert.rejects(lstat(socket), { code: 'ENOENT' }, 'a stopped server removes its socket');
  });

  it('refuses a socket path another server answers on, a file that is no socket, a missing directory and a TCP port in use, each in one line', async () => {
    const dir = await tempDir('kiln-serve-');
    const store = join(dir, 'store');
    const other = createServer((client) => client.resume().end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'));
    const otherSocket = join(dir, 'other.sock');
    await new Promise<void>((resolve) => other.listen(otherSocket, resolve));
    try {
      const refused = await runKiln(store, ['serve', '-H', `unix://${otherSocket}`]);
      assert.deepEqual([refused.code, refused.stderr], [1, `Error: another server is listening on ${otherSocket}\n`]);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
    const file = join(dir, 'file.sock');
    await writeFile(file, 'keep me\n');
    const notSocket = await runKiln(store, ['serve', '-H', `unix://${file}`]);
    assert.deepEqual([notSocket.code, notSocket.stderr], [1, `Error: cannot serve on unix://${file}: ${file} exists and is not a socket\n`]);
    assert.equal(await readFile(file, 'utf8'), 'keep me\n', 'the file is left as it was');
    const missing = await runKiln(store, ['serve', '-H', `unix://${join(dir, 'nothing', 'kiln.sock')}`]);
    assert.deepEqual([missing.code, missing.stderr], [125, `Error: cannot serve on unix://${join(dir, 'nothing', 'kiln.sock')}: the directory ${join(dir, 'nothing')} does not exist\n`]);
    const port = await freePort();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    try {
      const inUse = await runKiln(store, ['serve', '-H', `tcp://127.0.0.1:${port}`, '--insecure-tcp']);
      assert.equal(inUse.code, 1);
      assert.match(inUse.stderr, new RegExp(`^kiln: WARNING: serving the API on tcp://127\\.0\\.0\\.1:${port} without TLS[^\\n]*\\nError: cannot serve on tcp://127\\.0\\.0\\.1:${port}: the address is already in use \\(another server listens on port ${port}\\)\\n$`));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
