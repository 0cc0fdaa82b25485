import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { type IncomingMessage, request } from 'node:http';
import { type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { ok, runKiln } from '../helpers/kiln.js';
import { buildContainerIds } from '../helpers/runtime.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { freePort } from '../helpers/registry.js';
import { type Served, startServe } from '../helpers/serve.js';

const run = promisify(execFile);

/** How long kiln serve may take to exit after SIGTERM or SIGINT, with requests in flight (it gives them 3 s). */
const STOP_BOUND_MS = 8000;

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

/** A request left open: its response's head once it comes, and when its connection closed. */
function inFlight(socket: string, method: string, path: string, body?: Buffer | string, contentType = 'application/json'): { response: Promise<IncomingMessage>; closed: Promise<void> } {
  const req = request({ socketPath: socket, method, path, headers: { 'content-type': contentType } });
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  req.on('error', () => undefined); // the server ends it when it stops: that is the point
  const response = new Promise<IncomingMessage>((resolve) => req.on('response', (res) => {
    res.on('error', () => undefined);
    res.resume();
    resolve(res);
  }));
  if (body !== undefined) req.end(body);
  else req.flushHeaders();
  return { response, closed };
}

/** Signals the server and measures how long it takes to exit. */
async function stopTimed(served: Served, signal: NodeJS.Signals): Promise<{ ms: number; exit: number | NodeJS.Signals }> {
  const start = Date.now();
  served.process.kill(signal);
  const exit = await served.exited;
  return { ms: Date.now() - start, exit };
}

const traced = { ...process.env, KILN_API_TRACE: '1' };

const noBusyboxSave = isRoot ? await fixturesUnavailable('busybox-docker20-save.tar') : undefined;

describe('kiln serve: one server per socket, listen errors in one line, a prompt stop', () => {
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

  it('exits promptly on SIGTERM and on SIGINT while an upload is in flight, ending its connection and removing the socket', async (t) => {
    const dir = await tempDir('kiln-serve-');
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const socket = join(dir, `${signal}.sock`);
      const served = await startServe(join(dir, 'store'), ['-H', `unix://${socket}`], traced);
      // An image upload that never ends: the server is reading it when the signal comes.
      const upload: Socket = connect(socket, () => upload.write('POST /v1.41/images/load HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/x-tar\r\nContent-Length: 1073741824\r\n\r\n' + '\0'.repeat(4096)));
      upload.on('error', () => undefined);
      const uploadClosed = new Promise<void>((resolve) => upload.on('close', () => resolve()));
      await served.logged('POST /v1.41/images/load');
      const { ms, exit } = await stopTimed(served, signal);
      assert.equal(exit, 0, `${signal}: kiln serve exits 0`);
      assert.ok(ms < STOP_BOUND_MS, `${signal}: kiln serve took ${ms} ms to stop`);
      t.diagnostic(`${signal}: stopped in ${ms} ms`);
      await uploadClosed;
      await assert.rejects(lstat(socket), { code: 'ENOENT' });
    }
    assert.doesNotMatch((await ok(runKiln(join(dir, 'store'), ['system', 'check']))).stdout, /^problem:/m);
  });

  it('cancels a build whose client goes away, as dockerd does: its RUN container is killed and the server serves on', { skip: (!isRoot && 'builds need root') || noBusyboxSave }, async () => {
    const dir = await tempDir('kiln-serve-');
    const root = join(dir, 'store');
    const socket = join(dir, 'kiln.sock');
    await ok(runKiln(root, ['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const served = await startServe(root, ['-H', `unix://${socket}`]);
    try {
      const context = (await run('sh', ['-c', `cd ${dir} && mkdir ctx && printf 'FROM busybox:lab\\nRUN echo sleeping && sleep 300\\n' > ctx/Dockerfile && tar -C ctx -cf - Dockerfile`], { encoding: 'buffer' })).stdout;
      const req = request({ socketPath: socket, method: 'POST', path: '/v1.41/build?t=abandoned', headers: { 'content-type': 'application/x-tar' } });
      req.on('error', () => undefined);
      // The build's RUN is running once its command has printed (not its step line); then the client goes, as a ctrl-c does.
      await new Promise<void>((resolve) => {
        req.on('response', (res) => res.on('data', (chunk: Buffer) => chunk.toString().includes('"sleeping\\n"') && resolve()));
        req.end(context);
      });
      const running = async () => (await buildContainerIds()).filter((id) => id.startsWith(`kiln-build-${served.process.pid}-`));
      assert.equal((await running()).length, 1, 'the RUN step runs in a runtime container');
      req.destroy();
      // The container is killed at once rather than sleeping its 300 s: bounded wait for it to go.
      const deadline = Date.now() + 15_000;
      while ((await running()).length > 0) assert.ok(Date.now() < deadline, 'the cancelled build\'s container still runs 15 s after its client left');
      assert.equal(await ping(socket), 'OK');
      assert.equal((await runKiln(root, ['inspect', 'abandoned'])).code, 1, 'a cancelled build tags nothing');
    } finally {
      await served.stop();
    }
    assert.doesNotMatch((await ok(runKiln(root, ['system', 'check']))).stdout, /^problem:/m);
  });

  it('exits promptly on SIGTERM while a wait, an attach and a log stream follow a running container and a build runs a RUN that sleeps', { skip: (!isRoot && 'containers and builds need root') || noBusyboxSave }, async (t) => {
    const dir = await tempDir('kiln-serve-');
    const root = join(dir, 'store');
    const socket = join(dir, 'kiln.sock');
    await ok(runKiln(root, ['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const served = await startServe(root, ['-H', `unix://${socket}`], traced);
    let id = '';
    try {
      const created = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: socket, method: 'POST', path: '/v1.41/containers/create?name=sleeper', headers: { 'content-type': 'application/json' } }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => (res.statusCode === 201 ? resolve(body) : reject(new Error(body))));
        });
        req.end(JSON.stringify({ Image: 'busybox:lab', Cmd: ['sh', '-c', 'echo up; exec sleep 300'] }));
      });
      id = (JSON.parse(created) as { Id: string }).Id;
      const started = inFlight(socket, 'POST', `/v1.41/containers/${id}/start`, '');
      assert.equal((await started.response).statusCode, 204);
      const wait = inFlight(socket, 'POST', `/v1.41/containers/${id}/wait`, '');
      const attach = inFlight(socket, 'POST', `/v1.41/containers/${id}/attach?stream=1&stdout=1&stderr=1&logs=1`, '');
      const logs = inFlight(socket, 'GET', `/v1.41/containers/${id}/logs?follow=1&stdout=1`);
      const context = (await run('sh', ['-c', `cd ${dir} && mkdir ctx && printf 'FROM busybox:lab\\nRUN echo sleeping && sleep 300\\n' > ctx/Dockerfile && tar -C ctx -cf - Dockerfile`], { encoding: 'buffer' })).stdout;
      const build = inFlight(socket, 'POST', '/v1.41/build?t=sleepy', context, 'application/x-tar');
      for (const req of [wait, attach, logs, build]) assert.equal((await req.response).statusCode, 200);
      // The build's RUN is running once its step has printed.
      await new Promise<void>((resolve) => void build.response.then((res) => res.on('data', (chunk: Buffer) => chunk.toString().includes('sleeping') && resolve())));
      const { ms, exit } = await stopTimed(served, 'SIGTERM');
      assert.equal(exit, 0);
      assert.ok(ms < STOP_BOUND_MS, `kiln serve took ${ms} ms to stop`);
      t.diagnostic(`stopped in ${ms} ms`);
      await Promise.all([wait.closed, attach.closed, logs.closed, build.closed]);
    } finally {
      await served.stop();
      // The container runs on under its own supervisor; the build's RUN step was left by a kiln that stopped.
      if (id) await ok(runKiln(root, ['rm', '-f', id]));
      await ok(runKiln(root, ['system', 'prune', '-f']));
    }
    assert.doesNotMatch((await ok(runKiln(root, ['system', 'check']))).stdout, /^problem:/m);
  });
});
