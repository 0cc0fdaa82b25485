/**
 * The answers' fields: for the routes the docker CLI, the Python SDK and compose call, kiln's JSON has
 * every key a real dockerd 20.10 (API 1.41) puts in its answer to the same request, at every depth.
 * Values differ (IDs, times, sizes); maps keyed by data (labels, ports, network names) are compared as
 * maps, not by their keys. What kiln leaves out on purpose is listed with the reason.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/api-request.js';
import { type Dockerd, dockerdUnavailable, startDockerd } from '../helpers/dockerd.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { ok, runKiln } from '../helpers/kiln.js';
import { type Served, startServe } from '../helpers/serve.js';

const unavailable = (await dockerdUnavailable()) ?? (await fixturesUnavailable('busybox-docker20-save.tar'));

/** Maps whose keys are data (names, ports, labels), not fields: their entries are not compared by key. */
const DATA_MAPS = new Set(['Labels', 'ExposedPorts', 'Volumes', 'Ports', 'Networks', 'Options', 'DriverOpts', 'IndexConfigs', 'Runtimes', 'Data', 'Attributes', 'Status', 'Plugins', 'RegistryConfig.Mirrors']);

/**
 * dockerd's fields kiln leaves out, each with why (a path with `*` for an array's items). Keep this
 * short: a field here is one a client may read and not find.
 */
const LEFT_OUT: Readonly<Record<string, string>> = {};

/** Each key path dockerd's value has that kiln's lacks. */
function missingKeys(docker: unknown, kiln: unknown, path: string, out: string[]): void {
  if (Array.isArray(docker)) {
    if (!Array.isArray(kiln)) {
      if (kiln === undefined) out.push(path);
      return;
    }
    // Items of one shape: dockerd's every item against kiln's first.
    for (const item of docker) if (kiln.length > 0) missingKeys(item, kiln[0], `${path}[*]`, out);
    return;
  }
  if (docker === null || typeof docker !== 'object') return;
  if (kiln === null || typeof kiln !== 'object' || Array.isArray(kiln)) return; // a null or another type: values, not keys
  const name = path.split('.').at(-1) ?? '';
  if (DATA_MAPS.has(name)) return;
  for (const [key, value] of Object.entries(docker)) {
    const at = path === '' ? key : `${path}.${key}`;
    if (!(key in kiln)) {
      if (!(at in LEFT_OUT)) out.push(at);
      continue;
    }
    missingKeys(value, (kiln as Record<string, unknown>)[key], at, out);
  }
}

describe('kiln serve answers with every field dockerd 20.10 answers with (API 1.41)', { skip: unavailable }, () => {
  let dockerd: Dockerd;
  let served: Served;
  let dir: string;
  let kilnSocket: string;
  let dockerSocket: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-api-keys-'));
    kilnSocket = join(dir, 'kiln.sock');
    const root = join(dir, 'store');
    const busybox = await fixture('busybox-docker20-save.tar');
    await ok(runKiln(root, ['load', '-i', busybox]));
    served = await startServe(root, ['-H', `unix://${kilnSocket}`]);
    dockerd = await startDockerd();
    dockerSocket = dockerd.host.replace(/^unix:\/\//, '');
    await dockerd.docker(['load', '-i', busybox]);
  });
  after(async () => {
    await served?.stop();
    await dockerd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The same request to both; both answer `status`; returns the keys kiln's answer lacks. */
  async function compare(method: string, path: (side: 'docker' | 'kiln') => string, status: number, body?: unknown): Promise<{ missing: string[]; docker: unknown; kiln: unknown }> {
    const answers = await Promise.all(
      (['docker', 'kiln'] as const).map(async (side) => {
        const answer = await send(side === 'docker' ? dockerSocket : kilnSocket, method, `/v1.41${path(side)}`, body === undefined ? undefined : JSON.stringify(body));
        assert.equal(answer.status, status, `${side}: ${method} ${path(side)}: ${answer.body}`);
        return answer.body === '' ? null : (JSON.parse(answer.body) as unknown);
      }),
    );
    const missing: string[] = [];
    missingKeys(answers[0], answers[1], '', missing);
    return { missing, docker: answers[0], kiln: answers[1] };
  }

  it('system, images, containers (created, running, exited), exec, volumes, networks, df and prunes', async () => {
    const problems: string[] = [];
    const check = async (what: string, method: string, path: (side: 'docker' | 'kiln') => string, status: number, body?: unknown): Promise<{ docker: unknown; kiln: unknown }> => {
      const { missing, docker, kiln } = await compare(method, path, status, body);
      if (missing.length > 0) problems.push(`${what}: ${missing.join(', ')}`);
      return { docker, kiln };
    };
    const same = (path: string) => () => path;
    await check('version', 'GET', same('/version'), 200);
    await check('info', 'GET', same('/info'), 200);
    await check('images', 'GET', same('/images/json'), 200);
    await check('image inspect', 'GET', same('/images/busybox:lab/json'), 200);
    await check('image history', 'GET', same('/images/busybox:lab/history'), 200);
    await check('volume create', 'POST', same('/volumes/create'), 201, { Name: 'keys', Labels: { a: 'b' } });
    await check('volume inspect', 'GET', same('/volumes/keys'), 200);
    await check('volumes', 'GET', same('/volumes'), 200);
    await check('networks', 'GET', same('/networks'), 200);
    await check('network inspect', 'GET', same('/networks/none'), 200);
    const create = { Image: 'busybox:lab', Cmd: ['sh', '-c', 'echo up; exec sleep 300'], Labels: { app: 'keys' }, HostConfig: { NetworkMode: 'none', Binds: ['keys:/data'] } };
    const created = await check('container create', 'POST', same('/containers/create?name=keys'), 201, create);
    const ids = { docker: (created.docker as { Id: string }).Id, kiln: (created.kiln as { Id: string }).Id };
    const container = (side: 'docker' | 'kiln') => `/containers/${ids[side]}`;
    await check('container inspect (created)', 'GET', (side) => `${container(side)}/json`, 200);
    await check('containers (all)', 'GET', same('/containers/json?all=1'), 200);
    await compare('POST', (side) => `${container(side)}/start`, 204);
    await check('container inspect (running)', 'GET', (side) => `${container(side)}/json`, 200);
    await check('containers (running, sizes)', 'GET', same('/containers/json?size=1'), 200);
    await check('top', 'GET', (side) => `${container(side)}/top`, 200);
    await check('stats', 'GET', (side) => `${container(side)}/stats?stream=0`, 200);
    await check('changes', 'GET', (side) => `${container(side)}/changes`, 200);
    const exec = await check('exec create', 'POST', (side) => `${container(side)}/exec`, 201, { Cmd: ['true'], AttachStdout: true });
    const execIds = { docker: (exec.docker as { Id: string }).Id, kiln: (exec.kiln as { Id: string }).Id };
    await check('exec inspect', 'GET', (side) => `/exec/${execIds[side]}/json`, 200);
    await check('system df', 'GET', same('/system/df'), 200);
    await check('container kill', 'POST', (side) => `${container(side)}/kill`, 204);
    await check('container wait', 'POST', (side) => `${container(side)}/wait`, 200);
    await check('container inspect (exited)', 'GET', (side) => `${container(side)}/json`, 200);
    await check('container prune', 'POST', same('/containers/prune'), 200);
    await check('volume prune', 'POST', same('/volumes/prune'), 200);
    await check('network prune', 'POST', same('/networks/prune'), 200);
    await check('image tag', 'POST', same('/images/busybox:lab/tag?repo=keys&tag=1'), 201);
    await check('image remove', 'DELETE', same('/images/keys:1'), 200);
    await check('image prune', 'POST', same('/images/prune'), 200);
    assert.deepEqual(problems, [], 'fields dockerd answers with that kiln lacks');
  });
});
