import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { type Served, startServe } from '../helpers/serve.js';
import { isRoot } from '../helpers/paths.js';
import { readEntries } from '../helpers/tar.js';

const run = promisify(execFile);

/** A request to the API socket: status, body, and when the response ended (performance.now()). */
function call(socket: string, method: string, path: string, body?: Buffer): Promise<{ status: number; body: Buffer; endedAt: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: body ? { 'content-type': 'application/x-tar' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), endedAt: performance.now() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Rejects when `promise` takes longer than `seconds`. */
function within<T>(seconds: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const DEEP = Array.from({ length: 40 }, () => 'd').join('/');
const LONG = 'a'.repeat(200);

/**
 * The patterns that took a backtracking matcher hours (thirty `**` then `b`; forty `a*` then `b`;
 * thirty `**` + '/' then `zz`), among 100,000 that match nothing here, and an exception for `b` at the top.
 */
function hostileIgnore(): string {
  const noise = Array.from({ length: 100_000 }, (_, i) => [`nomatch${i}`, `**/*.nomatch${i}`, `*/nomatch${i}?`, `nomatch${i}/**`][i % 4] as string);
  return [`${'*'.repeat(60)}b`, `${'a*'.repeat(40)}b`, `${'**/'.repeat(30)}zz`, ...noise, '!b'].join('\n');
}

describe('kiln serve: a build whose .dockerignore is hostile ends in bounded time and never stalls the server', { skip: !isRoot && 'builds through kiln serve need root (overlay snapshots)' }, () => {
  let dir: string;
  let socket: string;
  let served: Served | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-hostile-ignore-'));
    socket = join(dir, 'kiln.sock');
    served = await startServe(join(dir, 'store'), ['-H', `unix://${socket}`]);
  });
  after(async () => {
    try {
      // SIGTERM is answered: stop() waits for the server to exit.
      if (served) await within(30, 'stopping kiln serve', served.stop());
    } catch (err) {
      served?.process.kill('SIGKILL');
      throw err;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('POST /build with a deep tree: the build finishes, /_ping answers while it runs, the patterns apply', async (t) => {
    const context = join(dir, 'context');
    const files: Record<string, string> = {
      Dockerfile: 'FROM scratch\nCOPY . /ctx/\n',
      '.dockerignore': hostileIgnore(),
      b: 'kept by the exception',
      [`${'a'.repeat(60)}b`]: 'excluded by a*…b',
      [`${DEEP}/b`]: 'excluded by **…b',
      [`${DEEP}/zz/x`]: 'excluded by **/…zz',
      [`${DEEP}/${LONG}`]: 'kept',
    };
    for (let depth = 1; depth <= 40; depth++) files[`${DEEP.slice(0, depth * 2 - 1)}/${LONG}`] = 'kept';
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(context, path)), { recursive: true });
      await writeFile(join(context, path), content);
    }
    const tarball = (await run('tar', ['-C', context, '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;

    const started = performance.now();
    const build = call(socket, 'POST', '/v1.41/build?t=hostile-ignore:1', tarball);
    let building = true;
    void build.finally(() => (building = false)).catch(() => undefined);
    const pings: { seconds: number; answeredAt: number; body: string }[] = [];
    const pinging = (async () => {
      while (building) {
        const sent = performance.now();
        const pong = await call(socket, 'GET', '/_ping');
        pings.push({ seconds: (pong.endedAt - sent) / 1000, answeredAt: pong.endedAt, body: pong.body.toString() });
        await delay(20);
      }
    })();
    const built = await within(120, 'the build', build);
    await within(30, 'the last /_ping', pinging);

    const stream = built.body.toString();
    assert.equal(built.status, 200);
    assert.doesNotMatch(stream, /errorDetail/);
    assert.match(stream, /"aux":\{"ID":"sha256:[0-9a-f]{64}"\}/);
    const during = pings.filter((ping) => ping.answeredAt < built.endedAt);
    assert.ok(during.length > 0, 'no /_ping was answered while the build ran');
    assert.ok(pings.every((ping) => ping.body === 'OK'));
    const slowest = Math.max(...pings.map((ping) => ping.seconds));
    t.diagnostic(`build ${((built.endedAt - started) / 1000).toFixed(1)} s; ${during.length} /_ping answered during it, the slowest in ${slowest.toFixed(2)} s`);
    assert.ok(slowest < 5, `a /_ping waited ${slowest.toFixed(1)} s`);

    // What the image holds: the context as .dockerignore leaves it.
    const saved = await call(socket, 'GET', '/v1.41/images/hostile-ignore:1/get');
    assert.equal(saved.status, 200);
    const archive = await readEntries([saved.body]);
    const manifest = JSON.parse(archive.find((e) => e.header.path === 'manifest.json')?.body.toString() ?? '[]') as { Layers: string[] }[];
    const layers = manifest[0]?.Layers ?? [];
    assert.equal(layers.length, 1);
    const layer = archive.find((e) => e.header.path === layers[0]);
    assert.ok(layer);
    const copied = new Set((await readEntries([layer.body])).map((e) => e.header.path.replace(/\/$/, '')));
    for (const kept of ['ctx/Dockerfile', 'ctx/.dockerignore', 'ctx/b', `ctx/${DEEP}/${LONG}`, `ctx/d/${LONG}`]) assert.ok(copied.has(kept), `${kept} is missing from the image`);
    for (const left of [`ctx/${'a'.repeat(60)}b`, `ctx/${DEEP}/b`, `ctx/${DEEP}/zz/x`, `ctx/${DEEP}/zz`]) assert.ok(!copied.has(left), `${left} should have been left out`);
  });
});
