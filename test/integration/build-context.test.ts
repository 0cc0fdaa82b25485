/**
 * Build contexts that are not a directory, as `docker build` takes them: `-` (stdin holding a Dockerfile
 * alone, or a context archive: tar, gzip, zstd), a git repository (a real one, made with git and served
 * over HTTP here, fetched at a tag and a directory), and an HTTP URL of an archive or of a Dockerfile;
 * `POST /build?remote=URL` through `kiln serve` too; and `ADD <git URL>`, which fetches the same way.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { type Server, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, ok, runKiln } from '../helpers/kiln.js';
import { isRoot } from '../helpers/paths.js';
import { startServe } from '../helpers/serve.js';

const run = promisify(execFile);
const skip = isRoot ? false : 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root';

/** A static file server of `root` (enough for git's dumb HTTP protocol and for archives). */
async function serveFiles(root: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = join(root, normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    stat(path).then(
      (st) => {
        if (!st.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': st.size });
        createReadStream(path).pipe(res);
      },
      () => res.writeHead(404).end(),
    ).catch(() => res.writeHead(404).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('kiln build: contexts from stdin, git and URLs', { skip }, () => {
  let work: string;
  let files: { server: Server; url: string };
  const kiln = (args: readonly string[], input?: Buffer | string): Promise<RunResult> => runKiln(join(work, 'store'), args, input);
  const fileText = async (image: string, path: string): Promise<string> => (await ok(kiln(['run', '--rm', '--network', 'none', image, 'cat', path]))).stdout;
  const tmpEntries = async (): Promise<string[]> => (await readdir(join(work, 'store', 'builds')).catch(() => [] as string[])).filter((n) => /^\d+-context-/.test(n));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-context-'));
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    // A context directory, its archives, a Dockerfile alone, and a git repository with two commits and a tag.
    const ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'sub'), { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY . /ctx\n');
    await writeFile(join(ctx, 'sub', 'Dockerfile'), 'FROM busybox\nCOPY f.txt /f.txt\n');
    await writeFile(join(ctx, 'sub', 'f.txt'), 'first\n');
    await writeFile(join(ctx, 'other.Dockerfile'), 'FROM busybox\nCOPY sub/f.txt /f.txt\n');
    const served = join(work, 'served');
    await mkdir(served);
    await run('sh', ['-c', `tar -C ${ctx} -cf ${served}/ctx.tar . && gzip -c ${served}/ctx.tar > ${served}/ctx.tar.gz && zstd -q -c ${served}/ctx.tar > ${served}/ctx.tar.zst`]);
    await writeFile(join(served, 'Dockerfile.txt'), 'FROM busybox\nRUN echo from-url > /r\n');
    const git = (args: readonly string[]) => run('git', ['-C', ctx, '-c', 'user.email=k@example.com', '-c', 'user.name=kiln', ...args]);
    await git(['init', '-q']);
    await git(['add', '-A']);
    await git(['commit', '-qm', 'first']);
    await git(['tag', 'v1']);
    await writeFile(join(ctx, 'sub', 'f.txt'), 'second\n');
    await git(['commit', '-qam', 'second']);
    await run('git', ['clone', '-q', '--bare', ctx, join(served, 'repo.git')]);
    await run('git', ['-C', join(served, 'repo.git'), 'update-server-info']);
    files = await serveFiles(served);
  });
  after(async () => {
    files.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('- reads a Dockerfile alone (an empty context) or a context archive, plain, gzip or zstd, with -f inside it', async () => {
    await ok(kiln(['build', '-q', '-t', 'stdin:df', '-'], 'FROM busybox\nRUN echo from-stdin > /s\n'));
    assert.equal(await fileText('stdin:df', '/s'), 'from-stdin\n');
    const empty = await kiln(['build', '-'], 'FROM busybox\nCOPY sub /sub\n');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /not found in the build context/);
    for (const name of ['ctx.tar', 'ctx.tar.gz', 'ctx.tar.zst']) {
      const archive = await readFile(join(work, 'served', name));
      await ok(kiln(['build', '-q', '-f', 'other.Dockerfile', '-t', 'stdin:archive', '-'], archive));
      assert.equal(await fileText('stdin:archive', '/f.txt'), 'first\n', name);
    }
    const both = await kiln(['build', '-f', '-', '-'], '');
    assert.match(both.stderr, /cannot both be read from stdin/);
    assert.deepEqual(await tmpEntries(), [], 'the unpacked contexts are gone');
  });

  it('a git repository: its HEAD, or #tag:dir; .git is left out; a bad ref or a dir outside it is a clear error', async () => {
    await ok(kiln(['build', '-q', '-t', 'git:head', `${files.url}/repo.git`]));
    assert.equal(await fileText('git:head', '/ctx/sub/f.txt'), 'second\n');
    const listing = (await ok(kiln(['run', '--rm', '--network', 'none', 'git:head', 'ls', '-a', '/ctx']))).stdout.split('\n');
    assert.ok(!listing.includes('.git'), listing.join(' '));
    await ok(kiln(['build', '-q', '-t', 'git:tag', `${files.url}/repo.git#v1:sub`]));
    assert.equal(await fileText('git:tag', '/f.txt'), 'first\n');
    const badRef = await kiln(['build', `${files.url}/repo.git#no-such-ref`]);
    assert.equal(badRef.code, 1);
    assert.match(badRef.stderr, /^Error: the build context .*repo\.git#no-such-ref: .*no-such-ref/);
    const outside = await kiln(['build', `${files.url}/repo.git#v1:../..`]);
    assert.match(outside.stderr, /"\.\.\/\.\." leads outside the repository/);
    // An error in its Dockerfile names the file inside the context, not kiln's temporary copy.
    const missing = await kiln(['build', '-f', 'sub/Dockerfile', `${files.url}/repo.git`]);
    assert.match(missing.stderr, /^Error: sub\/Dockerfile:2: COPY f\.txt/);
    assert.deepEqual(await tmpEntries(), []);
  });

  it('an HTTP URL of an archive or of a Dockerfile; a missing one says its status', async () => {
    await ok(kiln(['build', '-q', '-t', 'url:archive', '-f', 'other.Dockerfile', `${files.url}/ctx.tar.gz`]));
    assert.equal(await fileText('url:archive', '/f.txt'), 'first\n');
    await ok(kiln(['build', '-q', '-t', 'url:df', `${files.url}/Dockerfile.txt`]));
    assert.equal(await fileText('url:df', '/r'), 'from-url\n');
    const gone = await kiln(['build', `${files.url}/none.tar`]);
    assert.match(gone.stderr, /^Error: downloading the build context .*none\.tar failed: HTTP 404/);
  });

  it('POST /build?remote=URL builds what the URL holds, as dockerd does', async () => {
    const socket = join(work, 'kiln.sock');
    const served = await startServe(join(work, 'store'), ['-H', `unix://${socket}`]);
    try {
      const query = new URLSearchParams({ remote: `${files.url}/repo.git#v1:sub`, t: 'api:remote' });
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: socket, method: 'POST', path: `/v1.41/build?${query.toString()}` }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      assert.match(body, /"aux":\{"ID":"sha256:[0-9a-f]{64}"\}/, body);
      assert.equal(await fileText('api:remote', '/f.txt'), 'first\n');
    } finally {
      await served.stop();
    }
  });
  it('ADD <git URL> copies the repository at its ref (without .git unless --keep-git-dir), cached until the ref moves', async () => {
    const context = join(work, 'add-git');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), `FROM busybox\nADD ${files.url}/repo.git#v1:sub /tagged\nADD --keep-git-dir=true ${files.url}/repo.git /head\n`);
    const built = await ok(kiln(['build', '--progress', 'plain', '-t', 'add:git', context]));
    assert.equal(await fileText('add:git', '/tagged/f.txt'), 'first\n');
    assert.equal(await fileText('add:git', '/head/sub/f.txt'), 'second\n');
    const listing = (await ok(kiln(['run', '--rm', '--network', 'none', 'add:git', 'ls', '-a', '/tagged', '/head']))).stdout;
    assert.match(listing, /\/head:\n(.*\n)*\.git\n/, listing);
    assert.doesNotMatch(listing.split('/head:')[0] ?? '', /\.git/);
    assert.doesNotMatch(built.stderr, /CACHED/);
    const again = await ok(kiln(['build', '--progress', 'plain', '-t', 'add:git', context]));
    assert.equal((again.stderr.match(/CACHED/g) ?? []).length, 2, again.stderr);
    // A new commit on the branch HEAD names: that ADD runs again, the tag's stays cached.
    const ctx = join(work, 'ctx');
    await writeFile(join(ctx, 'sub', 'f.txt'), 'third\n');
    await run('git', ['-C', ctx, '-c', 'user.email=k@example.com', '-c', 'user.name=kiln', 'commit', '-qam', 'third']);
    await run('git', ['-C', ctx, 'push', '-q', join(work, 'served', 'repo.git'), 'HEAD']);
    await run('git', ['-C', join(work, 'served', 'repo.git'), 'update-server-info']);
    const moved = await ok(kiln(['build', '--progress', 'plain', '-t', 'add:git', context]));
    assert.equal((moved.stderr.match(/CACHED/g) ?? []).length, 1, moved.stderr);
    assert.equal(await fileText('add:git', '/head/sub/f.txt'), 'third\n');
  });
});
