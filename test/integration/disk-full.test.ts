import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { type IncomingMessage, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadImages } from '../../src/engine/archive.js';
import { Engine } from '../../src/engine/engine.js';
import { isKilnError } from '../../src/errors.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { type RunResult, kilnBin, ok, runKiln } from '../helpers/kiln.js';
import { isRoot } from '../helpers/paths.js';
import { startServe } from '../helpers/serve.js';
import { type Registry, registryUnavailable, startRegistry } from '../helpers/registry.js';

const MB = 1 << 20;
const PAGE = 4096;

/** Bytes in use on the filesystem that holds `dir`. */
async function used(dir: string): Promise<number> {
  const st = await statfs(dir);
  return (st.blocks - st.bfree) * st.bsize;
}

/** Fills the filesystem of `dir` with one file until only `leave` bytes are free; returns its path. */
async function fill(dir: string, leave: number): Promise<string> {
  const st = await statfs(dir);
  const filler = join(dir, 'filler');
  execFileSync('fallocate', ['-l', String(Math.max(st.bsize, st.bavail * st.bsize - leave)), filler]);
  return filler;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One line, exit 1, no stack trace: the disk is full, and the store at `root` is named. */
function assertNoSpace(result: RunResult, root: string, target: RegExp): void {
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
  assert.match(result.stderr, /^Error: [^\n]+\n$/, 'one line, no stack trace');
  const escaped = escapeRegExp(root);
  assert.match(result.stderr, new RegExp(`no space left on device: the store at ${escaped} is full \\(write to ${escaped}/${target.source}[^)]*\\); free space or use another --root\\n$`));
}

/** `system check` finds nothing, not even a left-over; no ingest or scratch file stays behind. */
async function assertClean(root: string, kiln: (args: readonly string[]) => Promise<RunResult>): Promise<void> {
  const check = (await ok(kiln(['system', 'check']))).stdout;
  assert.match(check, /^\d+ blobs verified, \d+ images, \d+ names: clean\n$/, check);
  for (const dir of ['ingest', 'tmp']) assert.deepEqual(await readdir(join(root, dir)).catch(() => []), [], `${dir}/ is empty`);
}

describe('a full disk under the store', { skip: (!isRoot && 'mounting a tmpfs needs root') || registryUnavailable() || (await fixturesUnavailable('busybox-docker20-save.tar', 'whiteouts-docker20-save.tar')) }, () => {
  let disk = '';
  let root = '';
  let kiln: (args: readonly string[]) => Promise<RunResult>;
  let registry: Registry;
  let stopRegistry: (() => Promise<void>) | undefined;
  /** `docker save` of an image of 100 MB of random bytes: bigger than the disk. */
  let bigArchive = '';
  /** kiln on a store elsewhere, which holds that image. */
  let source: (args: readonly string[]) => Promise<RunResult>;

  // Hooks of this suite, not of the hook that sets it up: the disk and the inputs live until the last case.
  let base = '';
  after(async () => {
    if (disk) execFileSync('umount', [disk]);
    await stopRegistry?.();
    if (base) await rm(base, { recursive: true, force: true });
  });

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'kiln-full-'));
    const mountPoint = join(base, 'disk');
    await mkdir(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mountPoint]);
    disk = mountPoint;
    root = join(disk, 'store');
    kiln = (args) => runKiln(root, args);
    registry = await startRegistry();
    stopRegistry = () => registry.stop();

    const work = join(base, 'work');
    await mkdir(work);
    source = (args) => runKiln(join(work, 'source-store'), args);
    const big = join(work, 'big');
    await mkdir(big);
    await writeFile(join(big, 'random'), randomBytes(100 * MB));
    await ok(source(['import', big, `${registry.host}/full/big:1`]));
    bigArchive = join(work, 'big.tar');
    await ok(source(['save', '-o', bigArchive, `${registry.host}/full/big:1`]));
    await ok(source(['push', `${registry.host}/full/big:1`]));
    // 100 MB of zeros: a blob of some 100 KB that fits, whose unpacked layer does not.
    const zeros = join(work, 'zeros');
    await mkdir(zeros);
    await writeFile(join(zeros, 'zeros'), Buffer.alloc(100 * MB));
    await ok(source(['import', zeros, `${registry.host}/full/zeros:1`]));
    await ok(source(['push', `${registry.host}/full/zeros:1`]));
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
  });

  it('kiln load of an image bigger than the disk ends in one line naming the store, and leaves it clean', async () => {
    const before = await used(disk);
    assertNoSpace(await kiln(['load', '-i', bigArchive]), root, /ingest\//);
    await assertClean(root, kiln);
    assert.ok((await used(disk)) - before < MB, 'the space the load took is free again');
    // From stdin the archive is spooled first: the spool is what fills the disk.
    assertNoSpace(await runKiln(root, ['load'], await readFile(bigArchive)), root, /tmp\/load-/);
    await assertClean(root, kiln);
    assert.match((await ok(kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]))).stdout, /Loaded image: whiteouts:lab/);
  });

  it('kiln pull of a blob bigger than the disk, and of a layer that unpacks bigger than it, ends the same way', async () => {
    const before = await used(disk);
    const blob = await kiln(['pull', `${registry.host}/full/big:1`]);
    assertNoSpace(blob, root, /ingest\//);
    assert.doesNotMatch(blob.stderr, /do not match|DIGEST/);
    await assertClean(root, kiln);
    const unpacked = await kiln(['pull', `${registry.host}/full/zeros:1`]);
    assertNoSpace(unpacked, root, /snapshots\/\d+\/fs/);
    await assertClean(root, kiln);
    assert.ok((await used(disk)) - before < MB, 'the space the pulls took is free again');
    assert.equal((await ok(kiln(['images', '-q', `${registry.host}/full/big`]))).stdout, '');
  });

  it('SQLite\'s own file: a database that cannot grow is a full disk too, and nothing is half done', async () => {
    const filler = await fill(disk, 0);
    try {
      assertNoSpace(await kiln(['tag', 'busybox:lab', 'busybox:full']), root, /kiln\.db/);
    } finally {
      await rm(filler);
    }
    await ok(kiln(['tag', 'busybox:lab', 'busybox:full']));

    // A load around the least space it needs. Each attempt is a new connection's first write (its
    // write-ahead log must grow); with any amount of space around what the load needs, it either loads
    // the image or fails as a full disk, leaving no record, lease or blob behind. None of its blobs are
    // in the store yet (busybox's layer is its base layer). Which write meets the full disk depends on
    // where the load's use of the disk peaks (the tag above is the one that meets it in the database).
    const archive = await fixture('whiteouts-docker20-save.tar');
    await ok(kiln(['rmi', 'busybox:lab', 'busybox:full']));
    await kiln(['rmi', 'whiteouts:lab']); // loaded by the first case, if it ran
    const failures: string[] = [];
    const attempt = async (free: number): Promise<boolean> => {
      const engine = await Engine.open(root);
      try {
        const blobsBefore = (await engine.check()).blobs;
        const spare = await fill(disk, free);
        let loaded = true;
        try {
          await loadImages(engine, { path: archive }, () => undefined);
        } catch (err) {
          assert.ok(isKilnError(err, 'NO_SPACE'), `with ${free} bytes free: ${String(err)}`);
          failures.push(err.message);
          loaded = false;
        } finally {
          await rm(spare);
        }
        const report = await engine.check();
        assert.deepEqual([report.problems, report.orphans], [[], []], `with ${free} bytes free`);
        // A load that succeeded may keep its lease when forgetting it found the disk full: it expires with this process.
        assert.deepEqual(engine.store.db.leases().filter((lease) => !loaded || lease.pid !== process.pid), [], 'no lease stays behind');
        if (loaded) engine.removeImages(['whiteouts:lab']);
        else assert.equal(report.blobs, blobsBefore, 'a failed load leaves no blob');
        return loaded;
      } finally {
        engine.close();
      }
    };
    // The least space the load needs (to a page; its blobs take some 2 MB), then the pages just below it.
    let enough = 4 * MB;
    for (let short = MB; enough - short > PAGE; ) {
      const middle = short + Math.floor((enough - short) / 2 / PAGE) * PAGE;
      if (await attempt(middle)) enough = middle;
      else short = middle;
    }
    for (let free = enough - 8 * PAGE; free < enough; free += PAGE) await attempt(free);
    assert.ok(failures.length > 0, 'the load met the full disk');
    await assertClean(root, kiln);
  });

  it('kiln save -o onto a full disk ends in one line naming the file, and leaves no part of it; kiln save > file in one line too', async () => {
    const result = await source(['save', '-o', join(disk, 'big.tar'), `${registry.host}/full/big:1`]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `Error: no space left on device: cannot write ${join(disk, 'big.tar')}; free space on its disk or write it elsewhere\n`);
    assert.deepEqual(await readdir(disk), ['store']);
    // To standard output redirected onto the full disk: one line too, not a stack.
    const redirected = spawnSync('sh', ['-c', `"$0" "$1" --root "$2" save "$3" > "$4"`, process.execPath, kilnBin, join(base, 'work', 'source-store'), `${registry.host}/full/big:1`, join(disk, 'big.tar')], { encoding: 'utf8' });
    assert.equal(redirected.status, 1);
    assert.equal(redirected.stderr, 'Error: no space left on device: cannot write standard output; free space on its disk or write it elsewhere\n');
    await rm(join(disk, 'big.tar'));
  });

  it('a build context sent to kiln serve that does not fit ends in the same error in the build\'s stream, and leaves the store clean', async () => {
    const socket = join(base, 'kiln.sock');
    const served = await startServe(root, ['-H', `unix://${socket}`]);
    try {
      // Any tar is a context: the saved image is 100 MB of files, and unpacking it is what fills the disk.
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request({ socketPath: socket, method: 'POST', path: '/v1.41/build?t=toobig', headers: { 'content-type': 'application/x-tar' } }, resolve);
        req.on('error', reject);
        createReadStream(bigArchive).on('error', reject).pipe(req);
      });
      let body = '';
      for await (const chunk of res) body += String(chunk);
      const messages = body.trim().split('\n').map((line) => JSON.parse(line) as { error?: string });
      const error = messages.at(-1)?.error ?? '';
      assert.match(error, new RegExp(`^no space left on device: the store at ${escapeRegExp(root)} is full \\(write to .*/builds/\\d+-context-`), body);
    } finally {
      await served.stop();
    }
    await assertClean(root, kiln);
  });

  it('once the disk has grown, the image that did not fit loads and pulls', async () => {
    execFileSync('mount', ['-o', 'remount,size=512m', disk]);
    assert.match((await ok(kiln(['load', '-i', bigArchive]))).stdout, /Loaded image: .*full\/big:1/);
    await ok(kiln(['rmi', `${registry.host}/full/big:1`]));
    await ok(kiln(['pull', `${registry.host}/full/zeros:1`]));
    await assertClean(root, kiln);
  });
});
