/**
 * bin/kiln runs the one-file CLI (dist/kiln.cjs, `npm run build`) when it is there and not older than
 * tsc's output, and tsc's output (dist/src) otherwise; either way an internal error's stack trace names
 * the TypeScript sources, through the source maps read when the trace is printed. The bundle's code
 * cache is used only with the bundle it was made from; a command with a cache of its own gets that one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { KILN_VERSION } from '../../src/engine/version.js';
import { kilnBin } from '../helpers/kiln.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs node with `nodeArgs`; with `asProgram`, runs its first argument as a program instead (as a shell runs `kiln`). */
function run(nodeArgs: readonly string[], env: NodeJS.ProcessEnv = process.env, asProgram = false): Promise<Result> {
  return new Promise((resolve, reject) => {
    const [program, args] = asProgram ? [nodeArgs[0] as string, nodeArgs.slice(1)] : [process.execPath, nodeArgs];
    const child = spawn(program, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A checkout with bin/kiln and tsc's output (linked), and no bundle. */
async function checkoutWithoutBundle(): Promise<{ bin: string; bundle: string }> {
  const dir = await tempDir('kiln-entry-');
  await mkdir(join(dir, 'bin'));
  await mkdir(join(dir, 'dist'));
  await copyFile(kilnBin, join(dir, 'bin', 'kiln'));
  await copyFile(join(repoRoot, 'bin', 'package.json'), join(dir, 'bin', 'package.json')); // bin/kiln is a CommonJS script in an ES module package, as in the repository
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(repoRoot, 'dist', 'src'), join(dir, 'dist', 'src'));
  return { bin: join(dir, 'bin', 'kiln'), bundle: join(dir, 'dist', 'kiln.cjs') };
}

/** A preload that makes os.release() throw, an internal error inside `kiln version` (versionInfo). */
async function faultyRelease(): Promise<string> {
  const preload = join(await tempDir('kiln-fault-'), 'fault.mjs');
  await writeFile(preload, ["import os from 'node:os';", "import { syncBuiltinESMExports } from 'node:module';", "os.release = () => { throw new TypeError('injected fault'); };", 'syncBuiltinESMExports();', ''].join('\n'));
  return preload;
}

/** The line of src/engine/version.ts that calls release(): where the trace must point. */
async function releaseCallLine(): Promise<number> {
  const lines = (await readFile(join(repoRoot, 'src', 'engine', 'version.ts'), 'utf8')).split('\n');
  const index = lines.findIndex((line) => line.includes('release()'));
  assert.ok(index >= 0);
  return index + 1;
}

function assertTypeScriptTrace(result: Result, line: number): void {
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^kiln: internal error \(please report it\): TypeError: injected fault\n/);
  assert.match(result.stderr, new RegExp(`\\n\\s+at versionInfo \\(${repoRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/src/engine/version\\.ts:${line}:\\d+\\)\n`));
  assert.match(result.stderr, /\/src\/cli\/commands\/version\.ts:\d+:\d+\)/);
  assert.doesNotMatch(result.stderr, /dist\/(kiln\.cjs|src\/)/);
}

const modified = (path: string): number => statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundle = join(repoRoot, 'dist', 'kiln.cjs');
const bundleUnavailable = modified(bundle) < modified(join(repoRoot, 'dist', 'src', 'cli', 'main.js')) ? 'dist/kiln.cjs is not built, or is older than tsc\'s output: `npm run build` makes it' : false;

describe('bin/kiln', () => {
  it('runs tsc\'s output when there is no bundle, or the bundle is older than it', async () => {
    const { bin, bundle: fakeBundle } = await checkoutWithoutBundle();
    const version = await run([bin, 'version', '--format', '{{.Client.Version}}']);
    assert.deepEqual(version, { code: 0, stdout: `${KILN_VERSION}\n`, stderr: '' });

    await writeFile(fakeBundle, "(function (exports) { exports.main = async () => { process.stdout.write('the bundle ran\\n'); return 0; }; })\n");
    assert.equal((await run([bin, 'version'])).stdout, 'the bundle ran\n');
    await utimes(fakeBundle, new Date(0), new Date(0)); // as after a `npx tsc` since the bundle was made
    assert.equal((await run([bin, 'version', '--format', '{{.Client.Version}}'])).stdout, `${KILN_VERSION}\n`);
  });

  it('uses the bundle\'s code cache only with the bundle it was made from', async () => {
    const { bin, bundle: fakeBundle } = await checkoutWithoutBundle();
    const printing = (word: string, buildId: string): string => `(function (exports) { exports.main = async () => { process.stdout.write('${word}\\n'); return 0; }; })\n//# kilnBuild=${buildId}\n`;
    await writeFile(fakeBundle, printing('first', 'aaaa'));
    const made = await run([bin, 'version'], { ...process.env, KILN_CODE_CACHE_OUT: `${fakeBundle}.cache` });
    assert.deepEqual(made, { code: 0, stdout: 'first\n', stderr: '' });
    assert.match(await readFile(`${fakeBundle}.cache`, 'latin1'), /^aaaa\n/);
    assert.equal((await run([bin, 'version'])).stdout, 'first\n');
    // Another build of the same length (all V8 checks of a source): its own code runs, not the cache's.
    await writeFile(fakeBundle, printing('other', 'bbbb'));
    assert.equal((await run([bin, 'version'])).stdout, 'other\n');
  });

  it('uses a command\'s own code cache where the build made one, and the common one for the others', async () => {
    const { bin, bundle: fakeBundle } = await checkoutWithoutBundle();
    const printing = (word: string): string => `(function (exports) { exports.main = async () => { process.stdout.write('${word}\\n'); return 0; }; })\n//# kilnBuild=aaaa\n`;
    // Two sources of one length and one build ID, each cache made from one of them: V8 runs the code
    // of the cache it is given, which tells which one bin/kiln read.
    await writeFile(fakeBundle, printing('common'));
    assert.equal((await run([bin, 'version'], { ...process.env, KILN_CODE_CACHE_OUT: `${fakeBundle}.cache` })).code, 0);
    await writeFile(fakeBundle, printing('images'));
    assert.equal((await run([bin, '--root', '/nonexistent', 'images'], { ...process.env, KILN_CODE_CACHE_OUT: `${fakeBundle}.images.cache` })).code, 0);
    assert.equal((await run([bin, 'images', '-q'])).stdout, 'images\n');
    assert.equal((await run([bin, '--root', '/nonexistent', 'images'])).stdout, 'images\n');
    assert.equal((await run([bin, '--root=/nonexistent', 'images'])).stdout, 'images\n');
    assert.equal((await run([bin, 'version'])).stdout, 'common\n');
    assert.equal((await run([bin, 'inspect', 'x'])).stdout, 'common\n');
    assert.equal((await run([bin, '--root', 'images', 'version'])).stdout, 'common\n');
  });

  it('runs kiln build from the build\'s own bundle where the build made one, every other command from the whole CLI', async () => {
    const { bin, bundle: fakeBundle } = await checkoutWithoutBundle();
    const printing = (word: string): string => `(function (exports) { exports.main = async () => { process.stdout.write('${word}\\n'); return 0; }; })\n`;
    await writeFile(fakeBundle, printing('whole'));
    assert.equal((await run([bin, 'build', '.'])).stdout, 'whole\n');
    await writeFile(join(dirname(fakeBundle), 'kiln-build.cjs'), printing('build'));
    assert.equal((await run([bin, 'build', '.'])).stdout, 'build\n');
    assert.equal((await run([bin, '--root', '/nonexistent', 'build', '.'])).stdout, 'build\n');
    assert.equal((await run([bin, 'version'])).stdout, 'whole\n');
    assert.equal((await run([bin, 'image', 'build', '.'])).stdout, 'whole\n');
  });

  it('run as a program, starts node without NODE_EXTRA_CA_CERTS and hands its file to kiln as KILN_EXTRA_CA_CERTS; `node bin/kiln` leaves it to node', async () => {
    const { bin, bundle: fakeBundle } = await checkoutWithoutBundle();
    await writeFile(fakeBundle, "(function (exports) { exports.main = async (argv) => { process.stdout.write(JSON.stringify([process.env.NODE_EXTRA_CA_CERTS, process.env.KILN_EXTRA_CA_CERTS, argv.slice(2)])); return 0; }; exports.exitWhenWritten = (code) => process.exit(code); })\n");
    // On the PATH through a link, as scripts/setup.sh puts it there.
    const linked = join(await tempDir('kiln-path-'), 'kiln');
    await symlink(bin, linked);
    const { NODE_EXTRA_CA_CERTS: _node, KILN_EXTRA_CA_CERTS: _kiln, ...clean } = process.env;
    const args = ['version', 'two words', '$HOME', '', '"q"'];
    const seen = async (env: NodeJS.ProcessEnv, asProgram = true): Promise<unknown> => {
      const result = await run([asProgram ? linked : bin, ...args], { ...clean, ...env }, asProgram);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout);
    };
    // JSON writes an unset variable as null.
    assert.deepEqual(await seen({ NODE_EXTRA_CA_CERTS: '/some/cas.pem' }), [null, '/some/cas.pem', args]);
    assert.deepEqual(await seen({}), [null, null, args]);
    // The user's own KILN_EXTRA_CA_CERTS stays; NODE_EXTRA_CA_CERTS is then left to node, as it is.
    assert.deepEqual(await seen({ NODE_EXTRA_CA_CERTS: '/node.pem', KILN_EXTRA_CA_CERTS: '/kiln.pem' }), ['/node.pem', '/kiln.pem', args]);
    assert.deepEqual(await seen({ NODE_EXTRA_CA_CERTS: '/some/cas.pem' }, false), ['/some/cas.pem', null, args]);
  });

  it('names the TypeScript sources in an internal error\'s trace, run from tsc\'s output', async () => {
    const { bin } = await checkoutWithoutBundle();
    assertTypeScriptTrace(await run(['--import', await faultyRelease(), bin, 'version']), await releaseCallLine());
  });

  it('names the TypeScript sources in an internal error\'s trace, run from the bundle', { skip: bundleUnavailable }, async () => {
    assertTypeScriptTrace(await run(['--import', await faultyRelease(), kilnBin, 'version']), await releaseCallLine());
  });
});
