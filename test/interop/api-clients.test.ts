import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ServeLab, startServeLab } from '../helpers/serve.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { INTERLEAVED_MARKERS, INTERLEAVED_SCRIPT, interleavedMarkers } from '../helpers/interleave.js';
import { isRoot } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';

// The clients people use beside the image verbs: the docker CLI's container, volume, network and event
// verbs, and the Python SDK, against kiln serve, with containers that really run (root, runc).
const cannotRun = !isRoot
  ? 'containers need root'
  : spawnSync('sh', ['-c', 'command -v runc && command -v docker']).status !== 0
    ? 'runc or the docker CLI is not installed (scripts/setup.sh installs them)'
    : await fixturesUnavailable('busybox-docker20-save.tar');
const noSdk = spawnSync('python3', ['-c', 'import docker']).status !== 0 ? 'the Python SDK is not installed (Debian python3-docker)' : undefined;

describe('kiln serve: the docker CLI and the Python SDK drive containers, volumes, networks and events', { skip: cannotRun }, () => {
  let lab: ServeLab | undefined;
  let dir: string;
  let socket: string;
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') });
  /** Runs the docker CLI: its output and exit code, never throwing. */
  const attempt = async (args: readonly string[]): Promise<{ stdout: string; stderr: string; code: number }> => {
    const child = spawn('docker', [...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    return { stdout, stderr, code };
  };
  const docker = async (args: readonly string[]): Promise<string> => {
    const result = await attempt(args);
    if (result.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  };

  before(async () => {
    lab = await startServeLab('kiln-clients-', async (labDir) => {
      await mkdir(join(labDir, 'docker-config'));
      return process.env;
    });
    ({ dir, socket } = lab);
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
  });
  after(async () => {
    await lab?.stop();
  });

  it('creates a container with its labels before it starts; ps filters by label; pause, export, cp of the generated files, logs -t', async () => {
    const id = (await docker(['create', '--name', 'web', '-l', 'app=shop', '-l', 'tier=front', 'busybox:lab', 'sh', '-c', 'echo ready; exec sleep 600'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(await docker(['ps', '-a', '--filter', 'label=app=shop', '--format', '{{.Names}} {{.State}} {{.Label "tier"}}']), 'web created front\n');
    assert.equal(await docker(['ps', '-a', '--filter', 'label=app=other', '-q']), '');
    // What the Python SDK reads after a run: HostConfig.LogConfig; an unset FinishedAt is Go's zero time.
    assert.equal(await docker(['inspect', '-f', '{{.HostConfig.LogConfig.Type}} {{.State.FinishedAt}} {{.State.Status}}', 'web']), 'json-file 0001-01-01T00:00:00Z created\n');
    await docker(['start', 'web']);
    assert.equal(await docker(['ps', '--filter', 'label=tier', '--format', '{{.Names}} {{.State}}']), 'web running\n');

    await docker(['pause', 'web']);
    assert.equal(await docker(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', 'web']), 'paused true\n');
    assert.match(await docker(['ps', '--format', '{{.Status}}']), /\(Paused\)\n$/);
    await docker(['unpause', 'web']);
    assert.equal(await docker(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', 'web']), 'running false\n');

    const exported = spawnSync('sh', ['-c', 'docker export web | tar -t'], { env: env(), encoding: 'utf8' });
    assert.equal(exported.status, 0, exported.stderr);
    assert.ok(exported.stdout.split('\n').includes('bin/busybox'), 'the export holds the container\'s files');
    for (const file of ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']) {
      const copied = spawnSync('sh', ['-c', `docker cp web:${file} - | tar -xO`], { env: env(), encoding: 'utf8' });
      assert.equal(copied.status, 0, copied.stderr);
      assert.notEqual(copied.stdout, '', `docker cp of ${file} has its content`);
    }
    assert.equal(spawnSync('sh', ['-c', 'docker cp web:/etc/hostname - | tar -xO'], { env: env(), encoding: 'utf8' }).stdout, `${id.slice(0, 12)}\n`);
    const top = await docker(['top', 'web', '-o', 'pid,args']);
    assert.match(top, /^ *PID +COMMAND\n *\d+ +sleep 600\n$/);
    assert.match(await docker(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', 'web']), /^web 1 [\d.]+[KMG]?i?B \/ [\d.]+[KMG]iB\n$/);
    assert.match(await docker(['logs', '-t', 'web']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z ready\n$/);
    await docker(['rm', '-f', 'web']);
    assert.equal(await docker(['ps', '-aq']), '');
  });

  it('rm -f right after run -d removes the running container at once, twenty times in a row', async (t) => {
    const took: number[] = [];
    for (let i = 0; i < 20; i++) {
      const id = (await docker(['run', '-d', 'busybox:lab', 'sleep', '600'])).trim();
      const start = performance.now();
      assert.equal(await docker(['rm', '-f', id]), `${id}\n`);
      took.push(Math.round(performance.now() - start));
    }
    t.diagnostic(`rm -f took ${took.join(', ')} ms`);
    // It used to wait for the 30 s SIGKILL limit.
    assert.ok(Math.max(...took) < 2000, `rm -f took ${took.join(', ')} ms`);
    assert.equal(await docker(['ps', '-aq']), '');
  });

  it('logs keep the order written across stdout and stderr; history names the images a build kept', async () => {
    await docker(['run', '--name', 'order', 'busybox:lab', 'sh', '-c', INTERLEAVED_SCRIPT]);
    // Both streams through one pipe, as the CLI writes each frame when it comes (see interleave.ts).
    const logs = (redirect: string): string => interleavedMarkers(spawnSync('sh', ['-c', `docker logs order ${redirect}`], { env: env(), encoding: 'utf8', maxBuffer: 64 << 20 }).stdout);
    assert.equal(logs('2>&1'), INTERLEAVED_MARKERS);
    assert.equal(logs('2>/dev/null'), 'ace');
    assert.equal(logs('2>&1 >/dev/null'), 'bdf');
    await docker(['rm', 'order']);
    const context = await mkdtemp(join(tmpdir(), 'kiln-history-'));
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox:lab\nRUN echo one > /one\nRUN echo two > /two\n');
    await docker(['build', '-q', '-t', 'hist:1', context]);
    const ids = (await docker(['history', '-q', 'hist:1'])).trim().split('\n');
    assert.match(ids[0] ?? '', /^[0-9a-f]{12}$/);
    assert.match(ids[1] ?? '', /^[0-9a-f]{12}$/, 'the first RUN\'s image, kept by the build');
    assert.equal(ids[2], (await docker(['inspect', '-f', '{{.Id}}', 'busybox:lab'])).trim().slice(7, 19), 'the base image on the row of its last entry');
    await docker(['rmi', 'hist:1']);
    await rm(context, { recursive: true, force: true });
  });

  it('keeps named volumes across containers; --mount volume and tmpfs; volume verbs; system df and prune --volumes', async () => {
    assert.equal(await docker(['volume', 'create', '--label', 'team=data', 'shared']), 'shared\n');
    assert.equal(await docker(['volume', 'ls', '-f', 'label=team=data', '--format', '{{.Name}} {{.Driver}}']), 'shared local\n');
    assert.equal(await docker(['volume', 'inspect', '-f', '{{.Name}} {{.Scope}} {{.Labels}}', 'shared']), 'shared local map[team:data]\n');
    await docker(['run', '--rm', '-v', 'shared:/data', 'busybox:lab', 'sh', '-c', 'echo kept > /data/file']);
    assert.equal(await docker(['run', '--rm', '--mount', 'type=volume,src=shared,dst=/x,readonly', 'busybox:lab', 'cat', '/x/file']), 'kept\n');
    // A volume new to a run is made for it, filled from the image's content at its path.
    assert.match(await docker(['run', '--rm', '-v', 'etcvol:/etc', 'busybox:lab', 'ls', '/etc']), /\bpasswd\n/);
    assert.match(await docker(['run', '--rm', '--mount', 'type=tmpfs,dst=/scratch', 'busybox:lab', 'grep', ' /scratch ', '/proc/mounts']), /^tmpfs \/scratch tmpfs /);

    await docker(['create', '--name', 'holder', '-v', 'shared:/data', 'busybox:lab', 'true']);
    const inUse = await attempt(['volume', 'rm', 'shared']);
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /volume is in use/);
    assert.match(await docker(['system', 'df']), /\nLocal Volumes +2 +1 /);
    assert.match(await docker(['ps', '-a', '-s', '--format', '{{.Names}} {{.Size}}']), /^holder 0B \(virtual [\d.]+MB\)$/m, 'sizes from /containers/json?size=1');

    const pruned = await docker(['system', 'prune', '-af', '--volumes']);
    assert.match(pruned, /Deleted Containers:\n[0-9a-f]{64}\n/);
    assert.match(pruned, /Deleted Volumes:\n(etcvol\nshared|shared\netcvol)\n/);
    assert.equal(await docker(['volume', 'ls', '-q']), '');
    assert.equal(await docker(['images', '-q']), '');
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
  });

  it('network verbs: a user network whose containers reach each other by name and alias, a published port, connect, disconnect, and nothing left behind', async () => {
    assert.equal(await docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']), 'bridge bridge local\nhost host local\nnone null local\n');
    assert.equal(await docker(['network', 'inspect', '-f', '{{.Name}} {{.Driver}}', 'host']), 'host host\n');
    const id = (await docker(['network', 'create', '--label', 'team=shop', 'app_net'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(await docker(['network', 'ls', '-f', 'label=team=shop', '--format', '{{.Name}}']), 'app_net\n');
    const bridge = (await docker(['network', 'inspect', '-f', '{{index .IPAM.Config 0 | json}}', 'app_net'])).trim();
    assert.match(bridge, /"Subnet":"\d+\.\d+\.0\.0\/(16|20)"/);

    const port = await freePort();
    const web = (await docker(['run', '-d', '--name', 'web', '--network', 'app_net', '--network-alias', 'www', '-p', `${port}:8080`, 'busybox:lab', 'sh', '-c', 'mkdir /w && echo served > /w/index.html && exec httpd -f -p 8080 -h /w'])).trim();
    const fetchBy = (name: string): Promise<string> => docker(['run', '--rm', '--network', 'app_net', 'busybox:lab', 'sh', '-c', `for i in $(seq 100); do wget -qO- http://${name}:8080/ && exit; sleep 0.1; done; exit 1`]);
    assert.equal(await fetchBy('web'), 'served\n');
    assert.equal(await fetchBy('www'), 'served\n');
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'served\n');
    assert.equal(await docker(['port', 'web']), `8080/tcp -> 0.0.0.0:${port}\n`);
    assert.equal(await docker(['ps', '--format', '{{.Names}} {{.Ports}}']), `web 0.0.0.0:${port}->8080/tcp\n`);
    assert.match(await docker(['inspect', '-f', '{{.NetworkSettings.Networks.app_net.IPAddress}}', 'web']), /^\d+\.\d+\.\d+\.\d+\n$/);
    assert.match(await docker(['network', 'inspect', '-f', '{{range .Containers}}{{.Name}}{{end}}', 'app_net']), /^web\n$/);

    // A container on the default bridge joins the user network while it runs, and leaves it.
    await docker(['run', '-d', '--name', 'late', '--network', 'bridge', 'busybox:lab', 'sleep', '600']);
    const inUse = await attempt(['network', 'rm', 'app_net']);
    assert.match(inUse.stderr, /has active endpoints/);
    await docker(['network', 'connect', '--alias', 'tardy', 'app_net', 'late']);
    assert.match(await docker(['exec', 'web', 'cat', '/etc/hosts']), /\tlate tardy [0-9a-f]{12}\n/);
    await docker(['network', 'disconnect', 'app_net', 'late']);
    assert.doesNotMatch(await docker(['exec', 'web', 'cat', '/etc/hosts']), /late/);

    await docker(['rm', '-f', 'web', 'late']);
    assert.equal(await docker(['network', 'rm', 'app_net']), 'app_net\n');
    assert.match((await attempt(['network', 'rm', 'none'])).stderr, /none is a pre-defined network and cannot be removed/);
    assert.match((await attempt(['network', 'inspect', 'nope'])).stderr, /network nope not found/);
    await docker(['network', 'create', 'unused']);
    assert.match(await docker(['network', 'prune', '-f']), /Deleted Networks:\nunused\n/);
    // Nothing of theirs is left on the host: no veth, no bridge (but the default one's, as Docker's docker0), no iptables rule.
    assert.doesNotMatch(spawnSync('iptables-save', { encoding: 'utf8' }).stdout, new RegExp(`${web.slice(0, 12)}|${id.slice(0, 12)}`));
    assert.doesNotMatch(spawnSync('ip', ['link'], { encoding: 'utf8' }).stdout, new RegExp(`kiln-${id.slice(0, 8)}`));
  });

  it('streams events, with since, until and filters', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await docker(['volume', 'create', 'evented']);
    await docker(['volume', 'rm', 'evented']);
    await docker(['run', '--name', 'once', 'busybox:lab', 'true']);
    await docker(['rm', 'once']);
    const until = String(Math.ceil(Date.now() / 1000) + 1);
    const events = async (filter: string): Promise<string> => docker(['events', '--since', String(since), '--until', until, '--filter', filter, '--format', '{{.Type}} {{.Action}} {{.Actor.ID}}']);
    assert.equal(await events('volume=evented'), 'volume create evented\nvolume destroy evented\n');
    const containerEvents = (await events('container=once')).trim().split('\n').map((line) => line.split(' ')[1]);
    assert.deepEqual(containerEvents.filter((action) => action !== 'attach'), ['create', 'start', 'die', 'destroy']);

    // Streaming: once the follower has shown an event it is connected, so the next one reaches it live.
    const follower = spawn('docker', ['events', '--since', String(Math.floor(Date.now() / 1000) - 1), '--filter', 'type=volume', '--format', '{{.Action}} {{.Actor.ID}}'], { env: env(), stdio: ['ignore', 'pipe', 'inherit'] });
    let seen = '';
    const waitFor = (text: string): Promise<void> =>
      new Promise((resolve) => {
        const look = (): void => {
          if (!seen.includes(text)) return;
          follower.stdout.off('data', look);
          resolve();
        };
        follower.stdout.on('data', look);
        look();
      });
    follower.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    try {
      await docker(['volume', 'create', 'first']);
      await waitFor('create first\n');
      await docker(['volume', 'create', 'second']);
      await waitFor('create second\n');
    } finally {
      follower.kill();
    }
    await docker(['volume', 'rm', 'first', 'second']);
  });

  it('the Python SDK runs, lists by label, reads an archive, removes with force=True, builds with and without the cache (nocache=True), and uses volumes, networks and events', { skip: noSdk }, () => {
    const script = `
import docker, json, sys, time
client = docker.DockerClient(base_url='unix://' + sys.argv[1], version='1.41')
out = {}
since = int(time.time())
out['attached'] = client.containers.run('busybox:lab', ['sh', '-c', 'echo hi'], remove=True).decode()
detached = client.containers.run('busybox:lab', ['sleep', '600'], detach=True, labels={'sdk': 'yes'})
out['listed'] = [c.id for c in client.containers.list(filters={'label': 'sdk=yes'})] == [detached.id]
bits, stat = detached.get_archive('/etc/hostname')
out['archive'] = [stat['name'], len(b''.join(bits)) > 0]
top = detached.top()
out['top'] = [top['Titles'][1], [p[-1] for p in top['Processes']]]
stats = detached.stats(stream=False)
out['stats'] = [stats['name'] == '/' + detached.name, stats['cpu_stats']['cpu_usage']['total_usage'] > 0, stats['memory_stats']['usage'] > 0, stats['pids_stats']['current']]
detached.remove(force=True)
out['after_remove'] = len(client.containers.list(all=True))
volume = client.volumes.create('sdkvol', labels={'a': 'b'})
out['volumes'] = [v.name for v in client.volumes.list(filters={'label': 'a=b'})]
volume.remove()
network = client.networks.create('sdknet', labels={'a': 'b'})
out['networks'] = sorted(n.name for n in client.networks.list())
network.remove()
import tempfile, os
with tempfile.TemporaryDirectory() as context:
    with open(os.path.join(context, 'Dockerfile'), 'w') as f:
        f.write('FROM busybox:lab\\nRUN cat /proc/sys/kernel/random/uuid > /stamp\\n')
    first, _ = client.images.build(path=context, tag='sdk:1')
    cached, cached_log = client.images.build(path=context, tag='sdk:1')
    fresh, _ = client.images.build(path=context, tag='sdk:1', nocache=True)
out['build'] = [first.id == cached.id, any('Using cache' in line.get('stream', '') for line in cached_log), fresh.id != first.id]
until = int(time.time()) + 1
out['events'] = [(e['Type'], e['Action']) for e in client.events(since=since, until=until, decode=True, filters={'type': 'volume', 'volume': 'sdkvol'})]
print(json.dumps(out))
`;
    const result = spawnSync('python3', ['-c', script, socket], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      attached: 'hi\n',
      listed: true,
      archive: ['hostname', true],
      top: ['PID', ['sleep 600']],
      stats: [true, true, true, 1],
      after_remove: 0,
      volumes: ['sdkvol'],
      networks: ['bridge', 'host', 'none', 'sdknet'],
      build: [true, true, true],
      events: [
        ['volume', 'create'],
        ['volume', 'destroy'],
      ],
    });
  });
});

const noCompose = cannotRun ?? (spawnSync('sh', ['-c', 'command -v docker-compose']).status !== 0 ? 'docker-compose is not installed (Debian docker-compose)' : undefined);

describe('kiln serve: docker-compose builds, starts, lists, logs, execs, runs and takes down a project', { skip: noCompose }, () => {
  let lab: ServeLab | undefined;
  let project: string;
  let port: number;
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_HOST: `unix://${lab?.socket ?? ''}`, DOCKER_CONFIG: join(lab?.dir ?? '', 'docker-config') });
  const run = (tool: 'docker' | 'docker-compose', args: readonly string[]): Promise<{ stdout: string; stderr: string; code: number }> =>
    new Promise((resolve) => {
      const child = spawn(tool, [...args], { env: env(), cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('close', (code) => resolve({ stdout, stderr, code: code ?? -1 }));
    });
  const ok = async (tool: 'docker' | 'docker-compose', args: readonly string[]): Promise<string> => {
    const result = await run(tool, args);
    if (result.code !== 0) throw new Error(`${tool} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  };

  before(async () => {
    lab = await startServeLab('kiln-compose-', async (labDir) => {
      await mkdir(join(labDir, 'docker-config'));
      return process.env;
    });
    project = join(lab.dir, 'shop');
    port = await freePort();
    await mkdir(join(project, 'web'), { recursive: true });
    await writeFile(join(project, 'web', 'Dockerfile'), 'FROM busybox:lab\nRUN mkdir /www && echo built > /built && echo served > /www/index.html\nCMD ["sh", "-c", "echo web up; exec httpd -f -p 8080 -h /www"]\n');
    // Acceptance 1: the services on compose's default network, web published on the host, a named volume.
    await writeFile(
      join(project, 'docker-compose.yml'),
      `version: "3"\nservices:\n  web:\n    build: ./web\n    image: shop-web:1\n    ports:\n      - "${port}:8080"\n    labels:\n      tier: front\n    volumes:\n      - data:/data\n  client:\n    image: busybox:lab\n    command: ["sh", "-c", "echo client up; exec sleep 600"]\nvolumes:\n  data:\n`,
    );
    await ok('docker', ['load', '-i', await fixture('busybox-docker20-save.tar')]);
  });
  after(async () => {
    await lab?.stop();
  });

  it('up -d, ps, logs, exec, run --rm fetching web by its service name, the published port, down keeping the named volume, down -v', async () => {
    await ok('docker-compose', ['up', '-d']);
    assert.equal(await ok('docker', ['exec', 'shop_web_1', 'cat', '/built']), 'built\n');
    const ps = await ok('docker-compose', ['ps']);
    assert.match(ps, /\nshop_client_1 .* Up /);
    assert.match(ps, new RegExp(`\nshop_web_1 .* Up +0\\.0\\.0\\.0:${port}->8080/tcp`));
    assert.equal(await ok('docker', ['ps', '--filter', 'label=com.docker.compose.project=shop', '--filter', 'label=tier=front', '--format', '{{.Names}}']), 'shop_web_1\n');
    assert.match(await ok('docker-compose', ['logs', '--no-color', 'web']), /web_1 +\| web up\n/);
    const fetchWeb = ['sh', '-c', 'for i in $(seq 100); do wget -qO- http://web:8080/ && exit; sleep 0.1; done; exit 1'];
    assert.equal(await ok('docker-compose', ['exec', '-T', 'client', ...fetchWeb]), 'served\n');
    assert.equal(await ok('docker-compose', ['run', '--rm', 'client', ...fetchWeb]), 'served\n');
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'served\n');
    await ok('docker-compose', ['exec', '-T', 'web', 'sh', '-c', 'echo kept > /data/file']);

    await ok('docker-compose', ['down']);
    assert.equal(await ok('docker', ['ps', '-aq']), '');
    assert.equal(await ok('docker', ['network', 'ls', '-q', '-f', 'name=shop_default']), '');
    assert.equal(await ok('docker', ['volume', 'ls', '-q']), 'shop_data\n');
    await ok('docker-compose', ['up', '-d']);
    assert.equal(await ok('docker-compose', ['exec', '-T', 'web', 'cat', '/data/file']), 'kept\n');
    await ok('docker-compose', ['down', '-v']);
    assert.equal(await ok('docker', ['ps', '-aq']), '');
    assert.equal(await ok('docker', ['volume', 'ls', '-q']), '');
  });
});
