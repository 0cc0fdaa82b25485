import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { prng } from '../helpers/prng.js';
import { registryUnavailable, startRegistry } from '../helpers/registry.js';
import { startServe } from '../helpers/serve.js';

function dockerCliUnavailable(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v docker'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'no docker CLI (scripts/setup.sh installs Debian docker.io)';
  }
}

/** What one operation of a round did. */
interface Outcome {
  readonly what: string;
  readonly code: number;
  readonly output: string;
}

/** The one failure a concurrent operation may meet: a name or image another operation removed. */
const EXPECTED_FAILURE = /No such image|reference does not exist/i;

const skip = !isRoot ? 'builds run RUN steps in runc over overlay mounts, which needs root' : (registryUnavailable() ?? dockerCliUnavailable() ?? (await fixturesUnavailable('busybox-rootfs.tar')) ?? false);

describe('one store, many kiln processes at once', { skip }, () => {
  it('8 mixed operations × 10 rounds, the CLI and kiln serve together: only expected failures, a clean store after every round, and every image left saves and runs', async () => {
    const registry = await startRegistry();
    const dir = await tempDir('kiln-concurrency-');
    const root = join(dir, 'store');
    const socket = join(dir, 'kiln.sock');
    const served = await startServe(root, ['-H', `unix://${socket}`]);
    try {
      // Bases come from a registry, so a build whose base a prune took pulls it again, as Docker's does.
      const base = `${registry.host}/lab/base:1`;
      const tool = `${registry.host}/lab/tool:1`;
      const source = await newKiln();
      await ok(source.kiln(['import', '-c', 'CMD ["sh"]', await fixture('busybox-rootfs.tar'), base]));
      await ok(source.kiln(['push', '-q', base]));
      const toolContext = join(dir, 'tool');
      await mkdir(toolContext);
      await writeFile(join(toolContext, 'Dockerfile'), `FROM ${base}\nRUN echo tool > /tool\n`);
      await ok(source.kiln(['build', '-q', '-t', tool, toolContext]));
      await ok(source.kiln(['push', '-q', tool]));
      const archive = join(dir, 'tool.tar');
      await ok(source.kiln(['save', '-o', archive, tool]));

      const kiln = (args: readonly string[]): Promise<RunResult> => runKiln(root, args);
      const docker = (args: readonly string[]): Promise<RunResult> =>
        new Promise((resolve, reject) => {
          const child = spawn('docker', args, { env: { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') }, stdio: ['ignore', 'pipe', 'pipe'] });
          const out: Buffer[] = [];
          const err: Buffer[] = [];
          child.stdout.on('data', (c: Buffer) => out.push(c));
          child.stderr.on('data', (c: Buffer) => err.push(c));
          child.on('error', reject);
          child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), stdoutBytes: Buffer.concat(out) }));
        });
      const context = async (name: string, round: number): Promise<string> => {
        const path = join(dir, `${name}-${round}`);
        await mkdir(path);
        await writeFile(join(path, 'f'), `round ${round} ${name}\n`);
        await writeFile(join(path, 'Dockerfile'), `FROM ${base}\nCOPY f /f\nRUN cat /f > /g\nRUN echo ${name} >> /g\nRUN wc -c /g > /h\n`);
        return path;
      };

      const random = prng(20);
      for (let round = 0; round < 10; round++) {
        const even = round % 2 === 0;
        const previous = `app:r${Math.max(0, round - 1)}-cli`;
        const operations: [string, () => Promise<RunResult>][] = [
          ['build (CLI)', async () => kiln(['build', '-q', '-t', `app:r${round}-cli`, await context('cli', round)])],
          ['build (API)', async () => docker(['build', '-q', '-t', `app:r${round}-api`, await context('api', round)])],
          [even ? 'pull (CLI)' : 'pull (API)', () => (even ? kiln(['pull', '-q', tool]) : docker(['pull', '-q', tool]))],
          [even ? 'load (API)' : 'load (CLI)', () => (even ? docker(['load', '-q', '-i', archive]) : kiln(['load', '-q', '-i', archive]))],
          [even ? 'save (CLI)' : 'save (API)', () => (even ? kiln(['save', '-o', join(dir, `save-${round}.tar`), previous]) : docker(['save', '-o', join(dir, `save-${round}.tar`), previous]))],
          ['tag and rmi', async () => {
            const tagged = await kiln(['tag', tool, `extra:r${round}`]);
            return tagged.code === 0 ? kiln(['rmi', `extra:r${Math.max(0, round - 1)}`]) : tagged;
          }],
          [even ? 'image prune -af (CLI)' : 'image prune -f (API)', () => (even ? kiln(['image', 'prune', '-a', '-f']) : docker(['image', 'prune', '-f']))],
          [even ? 'system prune -af (CLI)' : 'image prune -af (API)', () => (even ? kiln(['system', 'prune', '-a', '-f']) : docker(['image', 'prune', '-a', '-f']))],
        ];
        // Each starts at a random moment in the first 1.5 s (fault injection: the interleavings vary).
        const outcomes = await Promise.all(
          operations.map(async ([what, operation]): Promise<Outcome> => {
            await delay(Math.floor(random() * 1500));
            const result = await operation();
            return { what, code: result.code, output: result.stderr + result.stdout };
          }),
        );
        for (const outcome of outcomes) {
          if (outcome.code === 0) continue;
          assert.match(outcome.output, EXPECTED_FAILURE, `round ${round}: ${outcome.what} failed unexpectedly (exit ${outcome.code}):\n${outcome.output}`);
          assert.doesNotMatch(outcome.output, /internal error|\n\s+at /, `round ${round}: ${outcome.what}`);
        }
        for (const what of ['build (CLI)', 'build (API)']) assert.equal(outcomes.find((o) => o.what === what)?.code, 0, `round ${round}: ${what} must succeed`);
        const check = await kiln(['system', 'check']);
        assert.equal(check.code, 0, `round ${round}: system check:\n${check.stdout}${check.stderr}`);
        assert.match(check.stdout, /: clean\n$/, `round ${round}`);
      }
      // Whatever survived is whole: it saves, and it runs.
      const names = (await ok(kiln(['images', '--format', '{{.Repository}}:{{.Tag}}']))).stdout.split('\n').filter((n) => n && !n.includes('<none>'));
      assert.ok(names.length > 0, 'some images survive the last round');
      for (const name of names) {
        await ok(kiln(['save', '-o', join(dir, 'survivor.tar'), name]));
        assert.equal((await ok(kiln(['run', '--rm', name, 'sh', '-c', 'echo ran']))).stdout, 'ran\n', name);
      }
    } finally {
      await served.stop();
      await registry.stop();
    }
  });
});
