import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { pullImage } from '../../src/engine/registry.js';
import { type ErrorCode, isKilnError } from '../../src/errors.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { type HostileRegistry, type Misbehaviour, startHostileRegistry } from '../helpers/hostile-registry.js';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { tempDir } from '../helpers/paths.js';
import { readEntries } from '../helpers/tar.js';

/** The registry timeout the pulls run with (KILN_REGISTRY_TIMEOUT_SECONDS), so that a stall ends in seconds. */
const TIMEOUT_SECONDS = 1;
const MAX_PEAK_MB = 300;

interface Measured {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The process's peak resident set (VmHWM) as it exited, in MB; NaN when it was killed. */
  readonly peakMb: number;
  readonly seconds: number;
}

/**
 * Runs the kiln CLI as `runKiln` does, reading its VmHWM from /proc as it exits (a module preloaded with
 * --import writes it to a file), and kills it after `killAfter` seconds so that a hang fails the test.
 */
async function measuredKiln(root: string, args: readonly string[], killAfter: number): Promise<Measured> {
  const dir = await tempDir('kiln-measure-');
  const hook = join(dir, 'peak.mjs');
  const peakFile = join(dir, 'peak');
  await writeFile(hook, `import { readFileSync, writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(peakFile)}, /VmHWM:\\s*(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? ''));\n`);
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, ['--import', hook, kilnBin, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC', KILN_REGISTRY_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS) } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const killer = setTimeout(() => child.kill('SIGKILL'), killAfter * 1000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(killer);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const peakKb = await readFile(peakFile, 'utf8').catch(() => '');
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), peakMb: peakKb ? Number(peakKb) / 1024 : NaN, seconds };
}

/** A small real image made by kiln itself: busybox's rootfs imported, then saved; its config and layer. */
async function busyboxImage(): Promise<{ config: Buffer; layer: Buffer }> {
  const { kiln } = await newKiln();
  await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'hostile:src']));
  const saved = join(await tempDir(), 'saved.tar');
  await ok(kiln(['save', '-o', saved, 'hostile:src']));
  const entries = new Map((await readEntries(createReadStream(saved))).map((e) => [e.header.path, e.body]));
  const [described] = JSON.parse(entries.get('manifest.json')?.toString() ?? '[]') as { Config: string; Layers: string[] }[];
  const config = entries.get(described?.Config ?? '');
  const layer = entries.get(described?.Layers[0] ?? '');
  assert.ok(config && layer, 'kiln save wrote the config and the layer');
  return { config, layer };
}

interface Scenario {
  readonly misbehaviour: Misbehaviour;
  readonly what: string;
  /** The KilnError's code (what the Engine API and callers go by). */
  readonly code: ErrorCode;
  /** The one line on stderr (after `Error: `). */
  readonly message: (registry: HostileRegistry) => RegExp;
  /** Pull by the honest manifest's digest instead of by tag. */
  readonly byDigest?: boolean;
  readonly maxSeconds?: number;
  /** What else must have happened at the registry. */
  readonly requests?: (registry: HostileRegistry) => void;
}

const manifestOf = (r: HostileRegistry): string => `the manifest of ${r.host}/${r.repository}:latest`.replace(/[.]/g, '\\.');
const anyBlob = (r: HostileRegistry): string => `blob sha256:[a-f0-9]{64} of ${r.host}/${r.repository}`.replace(/[.]/g, '\\.');
const rangeRetries = (r: HostileRegistry): number => r.requests.filter((q) => q.range !== undefined && q.path.includes('/blobs/')).length;

const scenarios: readonly Scenario[] = [
  { misbehaviour: 'manifest-endless', code: 'INVALID_INPUT', what: 'a manifest without Content-Length that never ends', message: (r) => new RegExp(`^${manifestOf(r)}: the registry sent more than the 4194304 bytes a manifest may have$`) },
  { misbehaviour: 'config-endless', code: 'INVALID_INPUT', what: 'a config without Content-Length that goes on after its bytes', message: (r) => new RegExp(`^${anyBlob(r)}: the registry sent more than its \\d+ bytes$`) },
  { misbehaviour: 'blob-endless', code: 'INVALID_INPUT', what: 'a layer without Content-Length that goes on after its bytes', message: (r) => new RegExp(`^${anyBlob(r)}: the registry sent more than its \\d+ bytes$`) },
  { misbehaviour: 'manifest-stall', code: 'NETWORK', what: 'a manifest whose body stalls', message: (r) => new RegExp(`^timeout: the registry sent nothing for 1 s while sending ${manifestOf(r)}$`) },
  { misbehaviour: 'headers-stall', code: 'NETWORK', what: 'a manifest request never answered', message: (r) => new RegExp(`^timeout: the registry sent no answer for 1 s to the request for ${manifestOf(r)}$`), maxSeconds: 30 },
  {
    misbehaviour: 'blob-stall',
    code: 'NETWORK',
    what: 'a layer whose body stalls, each retry too',
    message: (r) => new RegExp(`^timeout: the registry sent nothing for 1 s while sending ${anyBlob(r)} \\(\\d+ of \\d+ bytes received; gave up after 6 attempts\\)$`),
    maxSeconds: 30,
    requests: (r) => assert.equal(rangeRetries(r), 5, 'each retry asked for the rest with Range'),
  },
  {
    misbehaviour: 'blob-short',
    code: 'NETWORK',
    what: 'Content-Length more than the bytes sent (the connection then closes)',
    message: (r) => new RegExp(`^the registry closed the connection while sending ${anyBlob(r)} \\(\\d+ of \\d+ bytes received; gave up after 6 attempts\\)$`),
    maxSeconds: 30,
    requests: (r) => assert.equal(rangeRetries(r), 5),
  },
  {
    misbehaviour: 'blob-long',
    code: 'NETWORK',
    what: 'Content-Length less than the bytes sent',
    message: (r) => new RegExp(`^${anyBlob(r)}: the registry ended its answer early \\(\\d+ of \\d+ bytes received; gave up after 6 attempts\\)$`),
    maxSeconds: 30,
  },
  { misbehaviour: 'blob-oversize', code: 'INVALID_INPUT', what: 'Content-Length and body longer than the blob', message: (r) => new RegExp(`^${anyBlob(r)}: the registry announced \\d+ bytes, more than the blob's \\d+$`) },
  { misbehaviour: 'manifest-redirect-loop', code: 'NETWORK', what: 'a manifest redirected in a loop', message: (r) => new RegExp(`^redirect loop: more than 10 redirects for ${manifestOf(r)}$`) },
  { misbehaviour: 'blob-redirect-loop', code: 'NETWORK', what: 'a layer redirected in a loop', message: (r) => new RegExp(`^redirect loop: more than 10 redirects for ${anyBlob(r)}$`) },
  { misbehaviour: 'many-layers', code: 'INVALID_INPUT', what: 'a manifest of 10,000 layers', message: () => /: the manifest has 10000 layers, more than the 125 an image can have$/ },
  { misbehaviour: 'many-manifests', code: 'INVALID_INPUT', what: 'an index of 10,000 entries', message: () => /: the index has 10000 entries, more than the 1000 it may have$/ },
  { misbehaviour: 'wrong-content-type', code: 'INVALID_INPUT', what: 'a manifest served as an index', message: (r) => new RegExp(`^${manifestOf(r)}: the registry served it as application/vnd\\.oci\\.image\\.index\\.v1\\+json, but it is an image manifest$`) },
  { misbehaviour: 'wrong-layer-type', code: 'INVALID_INPUT', what: 'a layer whose media type is not a layer type', message: () => /: layer 1 has media type "application\/vnd\.oci\.image\.config\.v1\+json", which is not a layer$/ },
  { misbehaviour: 'wrong-config-type', code: 'INVALID_INPUT', what: 'a config whose media type is not a config type', message: () => /: the config has media type "application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip", which is not an image config$/ },
  { misbehaviour: 'lying-digest', code: 'DIGEST_MISMATCH', what: 'a Docker-Content-Digest other than the bytes (pull by tag)', message: (r) => new RegExp(`^${manifestOf(r)}: the registry says its digest is sha256:[a-f0-9]{64}, but its bytes hash to ${r.manifestDigest}$`) },
  {
    misbehaviour: 'lying-digest',
    code: 'DIGEST_MISMATCH',
    what: 'a Docker-Content-Digest other than the bytes (pull by digest)',
    byDigest: true,
    message: (r) => new RegExp(`: the registry says its digest is sha256:[a-f0-9]{64}, but its bytes hash to ${r.manifestDigest}$`),
  },
];

describe('a hostile registry: each fault is one clear line, in bounded memory and time, and leaves the store clean', { skip: await fixturesUnavailable('busybox-rootfs.tar') }, () => {
  let registry: HostileRegistry;
  before(async () => {
    registry = await startHostileRegistry(await busyboxImage());
  });
  after(() => registry?.stop());

  it('an honest pull from the same server works (the server serves a real image)', async () => {
    registry.misbehave('none');
    const { root, kiln } = await newKiln();
    const pulled = await measuredKiln(root, ['pull', `${registry.host}/${registry.repository}`], 60);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/${registry.repository}`]))).stdout.trim(), registry.configDigest);
  });

  it('KILN_REGISTRY_TIMEOUT_SECONDS must be a number of seconds', async () => {
    const { kiln } = await newKiln();
    const refused = await kiln(['pull', `${registry.host}/${registry.repository}`], undefined, { KILN_REGISTRY_TIMEOUT_SECONDS: 'soon' });
    assert.equal(refused.code, 125);
    assert.equal(refused.stderr, 'Error: KILN_REGISTRY_TIMEOUT_SECONDS="soon": give a number of seconds greater than 0\n');
  });

  it('a broken download whose Range retry is answered 200 (the whole blob again) is resumed correctly', async () => {
    registry.misbehave('range-200');
    const { root, kiln } = await newKiln();
    const pulled = await measuredKiln(root, ['pull', `${registry.host}/${registry.repository}`], 60);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.ok(registry.requests.some((q) => q.range !== undefined && q.status === 200), 'a Range request was answered 200');
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', `${registry.host}/${registry.repository}`]))).stdout.trim(), registry.configDigest);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^3 blobs verified, 1 images, 2 names: clean\n$/);
  });

  it('each fault has its code (what the Engine API and callers go by): NETWORK, INVALID_INPUT or DIGEST_MISMATCH', async () => {
    // In this process, and only for the faults that end at once (a stall takes seconds, and the CLI runs show it).
    process.env.KILN_REGISTRY_TIMEOUT_SECONDS = String(TIMEOUT_SECONDS);
    for (const scenario of scenarios.filter((s) => s.maxSeconds === undefined)) {
      registry.misbehave(scenario.misbehaviour);
      const engine = await Engine.open(await tempDir('kiln-codes-'));
      const name = `${registry.host}/${registry.repository}${scenario.byDigest ? `@${registry.manifestDigest}` : ''}`;
      await assert.rejects(pullImage(engine, name, { unpack: false, events: () => undefined }), (err: unknown) => {
        assert.ok(isKilnError(err, scenario.code), `${scenario.misbehaviour}: ${String(err)}`);
        assert.match(err.message, scenario.message(registry));
        return true;
      });
      engine.close();
    }
  });

  for (const scenario of scenarios) {
    it(`${scenario.misbehaviour}: ${scenario.what}`, async () => {
      registry.misbehave(scenario.misbehaviour);
      const { root, kiln } = await newKiln();
      const maxSeconds = scenario.maxSeconds ?? 15;
      const name = `${registry.host}/${registry.repository}${scenario.byDigest ? `@${registry.manifestDigest}` : ''}`;
      const pulled = await measuredKiln(root, ['pull', '-q', name], maxSeconds * 2);
      const line = /^Error: (.*)\n$/.exec(pulled.stderr)?.[1];
      assert.ok(line !== undefined, `one line on stderr, no stack trace: ${pulled.stderr}`);
      assert.doesNotMatch(line, /internal error/);
      assert.match(line, scenario.message(registry));
      assert.equal(pulled.code, 1);
      assert.ok(pulled.peakMb < MAX_PEAK_MB, `peak RSS ${pulled.peakMb.toFixed(0)} MB`);
      assert.ok(pulled.seconds < maxSeconds, `${pulled.seconds.toFixed(1)} s`);
      scenario.requests?.(registry);
      assert.equal((await ok(kiln(['system', 'check']))).stdout, '0 blobs verified, 0 images, 0 names: clean\n');
    });
  }
});
