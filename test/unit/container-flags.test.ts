import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseCpus, parseMemoryBytes, parseUlimits } from '../../src/cli/container-flags.js';
import { execFileAsync } from '../../src/exec-file.js';
import { runtimeSpec, specJson } from '../../src/runtime/spec.js';


describe('container flags: sizes and CPUs as the docker CLI reads them', () => {
  it('--memory in binary units, with or without b, i and a space (go-units\' RAMInBytes)', () => {
    for (const [text, bytes] of [
      ['100', 100],
      ['512m', 512 * 1024 ** 2],
      ['64MiB', 64 * 1024 ** 2],
      ['1.5g', 1.5 * 1024 ** 3],
      ['2 kb', 2048],
      ['1T', 1024 ** 4],
    ] as const) {
      assert.equal(parseMemoryBytes(text, '-m, --memory'), bytes, text);
    }
    for (const text of ['', 'm', '-1', '1x', '1.5.5q']) assert.throws(() => parseMemoryBytes(text, '-m, --memory'), /invalid size/, text);
  });

  it('--cpus as billionths of a CPU, exactly, and refused when finer', () => {
    assert.deepEqual(['1', '1.5', '.5', '0.000000001', '2.'].map(parseCpus), [1e9, 1.5e9, 5e8, 1, 2e9]);
    assert.throws(() => parseCpus('0.0000000001'), /value is too precise/);
    assert.throws(() => parseCpus('-1'), /failed to parse -1 as a rational number/);
  });
});

describe('--ulimit as the docker CLI reads it', () => {
  it('takes NAME=SOFT[:HARD], -1 for unlimited, the last of a name, in name order', () => {
    assert.deepEqual(parseUlimits(['nofile=100:200', 'core=-1', 'nproc=5']), [
      { name: 'core', soft: -1, hard: -1 },
      { name: 'nofile', soft: 100, hard: 200 },
      { name: 'nproc', soft: 5, hard: 5 },
    ]);
    assert.deepEqual(parseUlimits(['nofile=1', 'nofile=2:3', 'stack=8:-1']), [
      { name: 'nofile', soft: 2, hard: 3 },
      { name: 'stack', soft: 8, hard: -1 },
    ]);
    const spec = runtimeSpec({}, '/nonexistent', { hosts: '', resolvConf: '', hostname: '' }, { cmd: ['true'], env: [], hostname: 'h', network: 'none', ulimits: parseUlimits(['core=-1', 'nofile=10:20']) });
    // Unlimited is 2^64-1 in config.json, exactly (a JavaScript number would round it).
    assert.match(specJson(spec), /"rlimits": \[\s*\{\s*"type": "RLIMIT_CORE",\s*"soft": 18446744073709551615,\s*"hard": 18446744073709551615\s*\},\s*\{\s*"type": "RLIMIT_NOFILE",\s*"soft": 10,\s*"hard": 20\s*\}\s*\]/);
  });

  // The docker CLI's own words, compared with it live where it is installed (it parses the flag before it
  // looks for a daemon); one kiln adds: a value below -1, which Docker passes on as a huge number.
  const refused = ['nofile=2:1', 'nofile', 'foo=1', 'NOFILE=5', 'nofile=1:2:3', 'nofile=x', 'nofile=-1:100', 'nofile=1:y'];
  const dockerCli = ['/usr/local/bin/docker', '/usr/bin/docker'].find((path) => existsSync(path));
  it('refuses what the docker CLI refuses, in its words', async () => {
    for (const spec of refused) {
      const message = (() => {
        try {
          parseUlimits([spec]);
        } catch (err) {
          return (err as Error).message;
        }
        assert.fail(`${spec} was taken`);
      })();
      assert.match(message, new RegExp(`^invalid argument "${spec}" for "--ulimit" flag: `));
      if (!dockerCli) continue;
      const docker = await execFileAsync(dockerCli, ['run', '--ulimit', spec, 'busybox', 'true'], { env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } }).then(
        () => '',
        (err: { stderr?: string }) => err.stderr ?? '',
      );
      // kiln names the limits it knows after an unknown one: Docker's message is where kiln's starts.
      assert.match(docker, /^invalid argument /, spec);
      assert.ok(message.startsWith(docker.split('\n')[0] ?? ''), `${spec}: docker says ${JSON.stringify(docker)}, kiln ${JSON.stringify(message)}`);
    }
    assert.throws(() => parseUlimits(['nofile=-2']), /invalid ulimit nofile: -2 \(a limit is a whole number, or -1 for unlimited\)/);
  });
});
