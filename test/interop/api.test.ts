import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ok, runKiln } from '../helpers/kiln.js';
import { type ServeLab, startServe, startServeLab } from '../helpers/serve.js';
import { type DockerFacts, dockerFacts, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot } from '../helpers/paths.js';
import { type Registry, freePort, registryUnavailable } from '../helpers/registry.js';

const run = promisify(execFile);

async function dockerCliUnavailable(): Promise<string | undefined> {
  try {
    await run('sh', ['-c', 'command -v docker']);
    return undefined;
  } catch {
    return 'no docker CLI (scripts/setup.sh installs Debian docker.io)';
  }
}

const messageOf = (body: string): string => (JSON.parse(body) as { message: string }).message;

/** A raw request to the API socket: status and body. */
function raw(socket: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// The images Docker saved in this run, and what Docker said of them: the docker CLI must say the same of kiln's.
const noSaves = await fixturesUnavailable('whiteouts-docker20-save.tar', 'busybox-docker20-save.tar');

describe('kiln serve: the docker CLI drives kiln through the Engine API', { skip: (await dockerCliUnavailable()) ?? noSaves }, () => {
  let busybox: DockerFacts;
  let whiteouts: DockerFacts;
  let lab: ServeLab | undefined;
  let dir: string;
  let socket: string;
  let registry: Registry | undefined;
  const root = (): string => join(dir, 'store');
  const docker = async (args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> => {
    const child = spawn('docker', [...args], { env: { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(input);
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    if (code !== 0) throw new Error(`docker ${args.join(' ')} exited ${code}: ${stderr}`);
    return { stdout, stderr };
  };
  const kiln = (args: readonly string[]) => runKiln(root(), args);

  before(async () => {
    busybox = await dockerFacts('busybox');
    whiteouts = await dockerFacts('whiteouts');
    lab = await startServeLab('kiln-api-', async (labDir) => {
      await mkdir(join(labDir, 'docker-config'));
      await mkdir(join(labDir, 'server-config'));
      return { ...process.env, DOCKER_CONFIG: join(labDir, 'server-config') };
    });
    ({ dir, socket, registry } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  it('version and info negotiate and describe the server', async () => {
    const version = (await docker(['version'])).stdout;
    assert.match(version, /Server: kiln\n/);
    assert.match(version, /API version: +1\.41 \(minimum version 1\.24\)/);
    const info = (await docker(['info', '--format', '{{.ServerVersion}} {{.OSType}} {{.Images}}'])).stdout;
    assert.match(info, /^0\.1\.0 linux \d+\n$/);
  });

  it('load, images (format, filters, -q), tag, history, inspect, save | load, rmi, image prune, system df', async () => {
    assert.equal((await docker(['load', '-i', await fixture('whiteouts-docker20-save.tar')])).stdout, 'Loaded image: whiteouts:lab\n');
    const format = '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}';
    assert.equal((await docker(['images', '--format', format])).stdout, (await ok(kiln(['images', '--format', format]))).stdout);
    assert.equal((await docker(['images', '-f', 'dangling=true', '-q'])).stdout, '');
    assert.equal((await docker(['images', '-q'])).stdout, `${whiteouts.images.ID}\n`);
    await docker(['tag', 'whiteouts:lab', 'my/whiteouts:2']);
    assert.match((await ok(kiln(['images', 'my/whiteouts']))).stdout, new RegExp(`my/whiteouts +2 +${whiteouts.images.ID}`));
    const history = '{{.ID}}|{{.CreatedBy}}|{{.Size}}';
    assert.equal((await docker(['history', '--format', history, 'my/whiteouts:2'])).stdout, (await ok(kiln(['history', '--format', history, 'my/whiteouts:2']))).stdout);
    assert.equal((await docker(['inspect', '-f', '{{.Id}} {{.Os}} {{.Config.User}}', 'my/whiteouts:2'])).stdout, `${whiteouts.inspect.Id} linux 1000\n`);
    const saved = join(dir, 'saved.tar');
    await docker(['save', '-o', saved, 'my/whiteouts:2']);
    assert.equal((await docker(['load', '-i', saved])).stdout, 'Loaded image: my/whiteouts:2\n');
    assert.equal((await docker(['rmi', 'my/whiteouts:2'])).stdout, 'Untagged: my/whiteouts:2\n');
    assert.match((await docker(['system', 'df'])).stdout, new RegExp(`^TYPE +TOTAL +ACTIVE +SIZE +RECLAIMABLE\nImages +1 +0 +${whiteouts.images.VirtualSize.replace('.', '\\.')} `));
    const pruned = (await docker(['image', 'prune', '-af'])).stdout;
    assert.match(pruned, new RegExp(`untagged: whiteouts:lab\ndeleted: ${whiteouts.inspect.Id}`));
    assert.match(pruned, /Total reclaimed space: /);
    assert.equal((await docker(['images', '-q'])).stdout, '');
  });

  it('builds a multi-stage Dockerfile through the legacy /build endpoint', { skip: !isRoot && 'builds need root' }, async () => {
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    await docker(['tag', 'busybox:lab', 'busybox:latest']);
    const context = join(dir, 'context');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox AS build\nRUN echo built > /artifact\nFROM busybox\nCOPY --from=build /artifact /artifact\nCOPY note.txt /\nCMD ["cat", "/artifact"]\n');
    await writeFile(join(context, 'note.txt'), 'note\n');
    const built = await docker(['build', '-t', 'api-built:1', context]);
    assert.match(built.stdout, /Successfully built [0-9a-f]{12}\nSuccessfully tagged api-built:1\n$/);
    const quiet = (await docker(['build', '-q', '-t', 'api-built:1', context])).stdout;
    assert.match(quiet, /^sha256:[0-9a-f]{64}\n$/);
    assert.equal((await ok(kiln(['run', '--rm', 'api-built:1']))).stdout, 'built\n');
    // --add-host reaches the RUN steps' /etc/hosts (the query's extrahosts, one per entry).
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nRUN grep db.example /etc/hosts > /hosts-line\n');
    await docker(['build', '-q', '--add-host', 'db.example:10.1.2.3', '-t', 'api-hosts:1', context]);
    assert.equal((await ok(kiln(['run', '--rm', 'api-hosts:1', 'cat', '/hosts-line']))).stdout, '10.1.2.3\tdb.example\n');
    // So do --ulimit (the query's ulimits, a JSON list) and --shm-size (shmsize).
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nRUN echo $(ulimit -n) $(ulimit -Hn) $(df -k /dev/shm | tail -n 1 | tr -s " " | cut -d " " -f 2) > /limits\n');
    await docker(['build', '-q', '--ulimit', 'nofile=100:200', '--shm-size', '128m', '-t', 'api-ulimit:1', context]);
    assert.equal((await ok(kiln(['run', '--rm', 'api-ulimit:1', 'cat', '/limits']))).stdout, '100 200 131072\n');
  });

  it('pushes to and pulls from a registry', { skip: registryUnavailable() }, async () => {
    const host = registry?.host ?? '';
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    await docker(['tag', 'busybox:lab', `${host}/api/busybox:1`]);
    const pushed = (await docker(['push', `${host}/api/busybox:1`])).stdout;
    assert.match(pushed, /1: digest: sha256:[0-9a-f]{64} size: \d+/);
    await docker(['rmi', `${host}/api/busybox:1`]);
    const pulled = (await docker(['pull', `${host}/api/busybox:1`])).stdout;
    assert.match(pulled, new RegExp(`Status: (Downloaded newer image|Image is up to date) for ${host}/api/busybox:1\\n${host}/api/busybox:1\\n$`));
    assert.match((await docker(['images', '--digests', '--format', '{{.Digest}}', `${host}/api/busybox`])).stdout, /^sha256:[0-9a-f]{64}\n$/);
    await docker(['tag', 'busybox:lab', `${host}/api/busybox:2`]);
    await docker(['push', `${host}/api/busybox:2`]);
    await docker(['rmi', `${host}/api/busybox:1`, `${host}/api/busybox:2`]);
    await docker(['pull', '-a', `${host}/api/busybox`]);
    assert.equal((await docker(['images', '--format', '{{.Tag}}', `${host}/api/busybox`])).stdout.split('\n').filter(Boolean).sort().join(','), '1,2');
    assert.match((await docker(['login', '-u', 'someone', '--password-stdin', host], 'secret\n')).stdout, /Login Succeeded/);
    // The server only checks credentials (/auth); the client keeps them.
    assert.deepEqual(await readdir(join(dir, 'server-config')), []);
    assert.match(await readFile(join(dir, 'docker-config', 'config.json'), 'utf8'), new RegExp(host.replace(/\./g, '\\.')));
    if (!isRoot) return; // builds need root
    // A build pulls a base image the store lacks (the client sends its credentials in X-Registry-Config).
    await docker(['rmi', `${host}/api/busybox:2`]);
    const context = join(dir, 'pull-context');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), `FROM ${host}/api/busybox:2\nRUN echo pulled > /f\n`);
    assert.match((await docker(['build', '-t', 'api-pulled:1', context])).stdout, /Successfully tagged api-pulled:1\n$/);
    assert.match((await docker(['images', '--format', '{{.Repository}}:{{.Tag}}', `${host}/api/busybox`])).stdout, new RegExp(`${host.replace(/\./g, '\\.')}/api/busybox:2`));
    assert.match((await docker(['build', '--pull', '-t', 'api-pulled:1', context])).stdout, /Image is up to date/);
    assert.equal((await ok(kiln(['run', '--rm', 'api-pulled:1', 'cat', '/f']))).stdout, 'pulled\n');
  });

  it('docker run --rm prints a short-lived container\'s output every time: attached before it starts, its log read to the end though --rm removes it', { skip: !isRoot && 'containers need root' }, async () => {
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    // Several at once, as a busy client would: each exits and is removed within a follower's poll.
    const outputs = await Promise.all(Array.from({ length: 8 }, async (_, i) => (await docker(['run', '--rm', 'busybox:lab', 'echo', `run ${i}`])).stdout));
    assert.deepEqual(outputs, Array.from({ length: 8 }, (_, i) => `run ${i}\n`));
  });

  it('docker run (exit code and both streams, host settings), run -d, logs, ps, kill -s, stop, start, restart, rename, logs --tail, wait, exec, cp, rm -f', { skip: !isRoot && 'containers need root' }, async () => {
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    const child = spawn('docker', ['run', '--rm', 'busybox:lab', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env: { ...process.env, DOCKER_HOST: `unix://${socket}` } });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 3);
    assert.equal(out, 'out\n');
    assert.equal(err, 'err\n');
    const id = (await docker(['run', '-d', '--name', 'api-bg', 'busybox:lab', 'sh', '-c', 'trap "echo got-term; exit 9" TERM; echo started; while true; do sleep 0.05; done'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.match((await docker(['ps', '--format', '{{.Names}} {{.Image}}'])).stdout, /^api-bg busybox:lab$/m);
    // The container writes its line as it starts: follow the logs until it is there.
    let logs = '';
    for (let i = 0; i < 100 && !logs.includes('started'); i++) logs = (await docker(['logs', 'api-bg'])).stdout;
    assert.equal(logs, 'started\n');
    assert.equal((await docker(['kill', '-s', 'TERM', 'api-bg'])).stdout, 'api-bg\n');
    assert.equal((await docker(['wait', 'api-bg'])).stdout, '9\n');
    assert.equal((await docker(['logs', 'api-bg'])).stdout, 'started\ngot-term\n');
    await assert.rejects(docker(['kill', '-s', 'NOPE', 'api-bg']), /Invalid signal: NOPE/);
    assert.equal((await docker(['rm', '-f', 'api-bg'])).stdout, 'api-bg\n');
    await docker(['run', '-d', '--name', 'api-stop', 'busybox:lab', 'sh', '-c', 'trap "exit 11" TERM; echo started; while true; do sleep 0.05; done']);
    logs = '';
    for (let i = 0; i < 100 && !logs.includes('started'); i++) logs = (await docker(['logs', 'api-stop'])).stdout;
    assert.equal((await docker(['stop', 'api-stop'])).stdout, 'api-stop\n');
    assert.equal((await docker(['wait', 'api-stop'])).stdout, '11\n');
    assert.equal((await docker(['stop', 'api-stop'])).stdout, 'api-stop\n', 'already stopped: 304, no error');
    assert.equal((await docker(['ps', '-a', '-f', 'name=api-stop', '-f', 'exited=11', '--format', '{{.Names}} {{.State}}'])).stdout, 'api-stop exited\n');
    const startedTimes = async (n: number): Promise<void> => {
      while ((await docker(['logs', 'api-stop'])).stdout !== 'started\n'.repeat(n)) await new Promise((resolve) => setImmediate(resolve));
    };
    assert.equal((await docker(['start', 'api-stop'])).stdout, 'api-stop\n');
    await startedTimes(2);
    assert.equal((await docker(['restart', 'api-stop'])).stdout, 'api-stop\n');
    await startedTimes(3);
    assert.equal((await docker(['logs', '--tail', '1', 'api-stop'])).stdout, 'started\n');
    await docker(['rename', 'api-stop', 'api-renamed']);
    assert.equal((await docker(['ps', '-a', '-f', 'name=api-renamed', '--format', '{{.Names}}'])).stdout, 'api-renamed\n');
    await docker(['rename', 'api-renamed', 'api-stop']);
    assert.equal((await docker(['stop', 'api-stop'])).stdout, 'api-stop\n');
    await docker(['rm', 'api-stop']);
    // exec: create, start (hijacked, stdin with -i), inspect for the exit code; -d; no terminal yet.
    await docker(['run', '-d', '--name', 'api-exec', 'busybox:lab', 'sh', '-c', 'while true; do sleep 0.05; done']);
    const execd = await docker(['exec', '-e', 'X=1', '-w', '/tmp', 'api-exec', 'sh', '-c', 'echo "$X $(pwd)"; echo err >&2']);
    assert.deepEqual([execd.stdout, execd.stderr], ['1 /tmp\n', 'err\n']);
    assert.equal((await docker(['exec', '-i', 'api-exec', 'cat'], 'through stdin\n')).stdout, 'through stdin\n');
    await assert.rejects(docker(['exec', 'api-exec', 'sh', '-c', 'exit 6']), /exited 6/);
    assert.equal((await docker(['exec', '-d', 'api-exec', 'sh', '-c', 'echo d > /tmp/d'])).stdout, '');
    assert.equal((await docker(['exec', 'api-exec', 'sh', '-c', 'while [ ! -s /tmp/d ]; do sleep 0.05; done; cat /tmp/d'])).stdout, 'd\n');
    // cp: in and out through the archive routes (the client places and renames).
    await writeFile(join(dir, 'cp-in.txt'), 'copied in\n');
    await docker(['cp', join(dir, 'cp-in.txt'), 'api-exec:/tmp/']);
    assert.equal((await docker(['exec', 'api-exec', 'cat', '/tmp/cp-in.txt'])).stdout, 'copied in\n');
    await docker(['cp', 'api-exec:/tmp/cp-in.txt', join(dir, 'cp-out.txt')]);
    assert.equal(await readFile(join(dir, 'cp-out.txt'), 'utf8'), 'copied in\n');
    await assert.rejects(docker(['cp', 'api-exec:/nope', join(dir, 'x')]), /Could not find the file \/nope/);
    await docker(['rm', '-f', 'api-exec']);
    // Host settings kiln applies, and a warning (which the docker CLI prints) for one it does not.
    const limited = await docker(['run', '--rm', '--read-only', '--tmpfs', '/t', '--cap-drop', 'ALL', '--cap-add', 'KILL', '--add-host', 'db:10.9.8.7', 'busybox:lab', 'sh', '-c', 'touch /x 2>/dev/null || echo ro; touch /t/y && echo tmp; grep ^CapEff /proc/self/status; tail -n 1 /etc/hosts']);
    assert.equal(limited.stdout, 'ro\ntmp\nCapEff:\t0000000000000020\n10.9.8.7\tdb\n');
    // Docker's seccomp profile, as docker info names it, unless HostConfig.SecurityOpt turns it off.
    assert.equal((await docker(['info', '--format', '{{json .SecurityOptions}}'])).stdout, '["name=seccomp,profile=builtin"]\n');
    assert.equal((await docker(['run', '--rm', 'busybox:lab', 'grep', '^Seccomp:', '/proc/self/status'])).stdout, 'Seccomp:\t2\n');
    assert.equal((await docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox:lab', 'grep', '^Seccomp:', '/proc/self/status'])).stdout, 'Seccomp:\t0\n');
    await writeFile(join(dir, 'no-mkdir.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
    assert.equal((await docker(['run', '--rm', '--security-opt', `seccomp=${join(dir, 'no-mkdir.json')}`, 'busybox:lab', 'sh', '-c', 'mkdir /made 2>/dev/null || echo refused'])).stdout, 'refused\n');
    assert.match((await docker(['run', '--rm', '-p', '8080:80', 'busybox:lab', 'true'])).stderr, /WARNING: kiln ignores HostConfig\.PortBindings: containers share the host network/);
    // HostConfig.Devices: host devices made in the container.
    assert.equal((await docker(['run', '--rm', '--device', '/dev/null:/dev/mynull:rw', 'busybox:lab', 'stat', '-c', '%F %t:%T', '/dev/mynull'])).stdout, 'character special file 1:3\n');
    // Resource limits are applied: inspect shows them as dockerd keeps them, stats the memory limit.
    await docker(['run', '-d', '--name', 'api-limited', '--memory', '64m', '--cpus', '0.5', '--shm-size', '128m', 'busybox:lab', 'sleep', '60']);
    assert.equal((await docker(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.ShmSize}}', 'api-limited'])).stdout, '67108864 134217728 500000000 134217728\n');
    assert.match((await docker(['stats', '--no-stream', '--format', '{{.MemUsage}}', 'api-limited'])).stdout, / \/ 64MiB\n$/);
    // docker top through the API, and kiln top, print the same table (the container's one process).
    for (const psOptions of [[], ['-o', 'pid,args']]) {
      const table = (await docker(['top', 'api-limited', ...psOptions])).stdout;
      assert.match(table, /sleep 60\n$/);
      assert.equal((await ok(kiln(['top', 'api-limited', ...psOptions]))).stdout, table);
    }
    await docker(['rm', '-f', 'api-limited']);
    // HostConfig.Init and GroupAdd.
    assert.equal((await docker(['run', '--rm', '--init', '--group-add', '10', 'busybox:lab', 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; id -G'])).stdout, '/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr "\\0" " "; id -G 0 10\n');
    // Config.Healthcheck: probed, in ps's words.
    await docker(['run', '-d', '--name', 'api-health', '--health-cmd', 'true', '--health-interval', '100ms', '--health-retries', '2', 'busybox:lab', 'sleep', '60']);
    assert.equal((await docker(['inspect', '-f', '{{json .Config.Healthcheck}}', 'api-health'])).stdout, '{"Test":["CMD-SHELL","true"],"Interval":100000000,"Retries":2}\n');
    const healthDeadline = Date.now() + 20_000;
    while (!(await docker(['ps', '--format', '{{.Status}}', '-f', 'name=api-health'])).stdout.includes('(healthy)') && Date.now() < healthDeadline);
    assert.match((await docker(['ps', '--format', '{{.Status}}', '-f', 'name=api-health'])).stdout, /^Up .* \(healthy\)\n$/);
    await docker(['rm', '-f', 'api-health']);
    // HostConfig.Sysctls, PidMode, IpcMode, UTSMode and Config.StopTimeout.
    assert.equal((await docker(['run', '--rm', '--network', 'none', '--sysctl', 'kernel.shmmax=123456', '--pid', 'host', 'busybox:lab', 'sh', '-c', `cat /proc/sys/kernel/shmmax; test -d /proc/${process.pid} && echo host pids`])).stdout, '123456\nhost pids\n');
    await docker(['create', '--name', 'api-modes', '--stop-timeout', '3', '--ipc', 'host', '--uts', 'host', 'busybox:lab', 'true']);
    assert.equal((await docker(['inspect', '-f', '{{.Config.StopTimeout}} {{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}} {{.HostConfig.PidMode}}', 'api-modes'])).stdout, '3 host host \n');
    await docker(['rm', 'api-modes']);
    // HostConfig.Ulimits: the process's rlimits, and inspect's.
    assert.equal((await docker(['run', '--rm', '--ulimit', 'nofile=100:200', '--ulimit', 'core=-1', 'busybox:lab', 'sh', '-c', 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -c)'])).stdout, '100 200 unlimited\n');
    await docker(['create', '--name', 'api-ulimits', '--ulimit', 'nofile=100:200', 'busybox:lab', 'true']);
    assert.equal((await docker(['inspect', '-f', '{{json .HostConfig.Ulimits}}', 'api-ulimits'])).stdout, '[{"Name":"nofile","Hard":200,"Soft":100}]\n');
    await docker(['rm', 'api-ulimits']);
    await docker(['run', '--name', 'api-changed', 'busybox:lab', 'sh', '-c', 'echo changed > /changed']);
    const committed = (await docker(['commit', '-c', 'CMD ["cat", "/changed"]', '-m', 'via the API', 'api-changed', 'api-committed:1'])).stdout.trim();
    assert.match(committed, /^sha256:[0-9a-f]{64}$/);
    assert.equal((await ok(kiln(['run', '--rm', 'api-committed:1']))).stdout, 'changed\n');
    assert.match((await docker(['history', '--format', '{{.Comment}}', 'api-committed:1'])).stdout, /^via the API\n/);
    assert.equal((await docker(['diff', 'api-changed'])).stdout, 'A /changed\n');
    await docker(['rm', 'api-changed']);
    assert.doesNotMatch((await docker(['ps', '-a', '--format', '{{.Names}}'])).stdout, /api-bg/);
    // As with dockerd: the CLI says the image is not here and tries to pull it (from Docker Hub, which this machine cannot reach).
    await assert.rejects(docker(['run', '--rm', 'nothing:here']), /Unable to find image 'nothing:here' locally/);
  });

  it('docker run -i, -t and -it, attach and exec -it: stdin until the client closes it, a terminal at the client\'s size, exit codes', { skip: !isRoot && 'containers need root' }, async () => {
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') };
    // The docker CLI on a terminal of its own (util-linux script's), fed `input`: its output and exit code.
    const onTerminal = async (command: string, input: string): Promise<{ code: number; output: string }> => {
      const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // The input is typed, and stdin left open: at its end script would type the EOF character, which
      // the terminal echoes (as ^@) when it comes before docker has set it raw.
      child.stdin.write(input);
      const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
      child.stdin.destroy();
      return { code, output: output.replace(/\r/g, '') };
    };
    const exitOf = (args: readonly string[], input: string): Promise<{ code: number; stdout: string }> =>
      new Promise((resolve) => {
        const child = spawn('docker', args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
        let stdout = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stdin.end(input);
        child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
      });
    // -i: what the client pipes in reaches the process, and its end is the process's EOF.
    assert.deepEqual(await exitOf(['run', '-i', '--rm', 'busybox:lab', 'sh', '-c', 'cat; echo "[eof]"'], 'line one\nline two\n'), { code: 0, stdout: 'line one\nline two\n[eof]\n' });
    assert.deepEqual(await exitOf(['run', '-i', '--rm', 'busybox:lab', 'sh', '-c', 'read x; echo "got $x"; exit 3'], 'hi\n'), { code: 3, stdout: 'got hi\n' });
    // -t: a real terminal (the process's controlling one), at the size of the client's terminal.
    const tty = await onTerminal("stty rows 30 cols 100; docker run -t --rm busybox:lab sh -c 'tty; stty size; test -t 0 && echo interactive'", '');
    assert.equal(tty.code, 0);
    assert.match(tty.output, /^\/dev\/pts\/0\n30 100\ninteractive\n$/m);
    // -it: a shell typed to; its exit code comes back.
    const shell = await onTerminal('docker run -it --rm busybox:lab sh', 'echo $((40 + 2))\nexit 5\n');
    assert.equal(shell.code, 5, shell.output);
    assert.match(shell.output, /^42$/m);
    // -dit, then attach: the container waits for input; the attach types to it and gets only what comes next.
    const id = (await docker(['run', '-dit', '--name', 'api-tty', 'busybox:lab', 'sh'])).stdout.trim();
    assert.equal((await docker(['inspect', '-f', '{{.Config.Tty}} {{.Config.OpenStdin}} {{.State.Running}}', id])).stdout, 'true true true\n');
    const attached = await onTerminal('docker attach api-tty', 'echo attached-$((6 * 7))\nexit 7\n');
    assert.equal(attached.code, 7, attached.output);
    assert.match(attached.output, /^attached-42$/m);
    assert.equal((await docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'api-tty'])).stdout, 'exited 7\n');
    assert.match((await docker(['logs', 'api-tty'])).stdout.replace(/\r/g, ''), /^attached-42$/m);
    await docker(['rm', 'api-tty']);
    // exec -it: a shell with a terminal of its own in a running container, typed to; its exit code comes back.
    await docker(['run', '-d', '--name', 'api-exec-tty', 'busybox:lab', 'sh', '-c', 'while true; do sleep 0.05; done']);
    // The client's size arrives by a resize after the start: the shell looks until it has it (5 s at most).
    const execShell = await onTerminal('stty rows 31 cols 101; docker exec -it api-exec-tty sh', 'tty\ni=0; while [ "$(stty size 2>/dev/null)" != "31 101" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; stty size\nexit 9\n');
    assert.equal(execShell.code, 9, execShell.output);
    assert.match(execShell.output, /^\/dev\/pts\/\d+$/m);
    assert.match(execShell.output, /^31 101$/m);
    await docker(['rm', '-f', 'api-exec-tty']);
  });

  it('serves many clients at once while the kiln CLI changes the same store', async () => {
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    const listings = Array.from({ length: 8 }, () => docker(['images', '--format', '{{.ID}}']));
    const tags = Array.from({ length: 8 }, (_v, i) => ok(kiln(['tag', 'busybox:lab', `concurrent/tag:${i}`])));
    const inspects = Array.from({ length: 8 }, () => docker(['inspect', '-f', '{{.Id}}', 'busybox:lab']));
    const [listed, , inspected] = await Promise.all([Promise.all(listings), Promise.all(tags), Promise.all(inspects)]);
    for (const result of listed) assert.match(result.stdout, new RegExp(busybox.images.ID));
    for (const result of inspected) assert.equal(result.stdout, `${busybox.inspect.Id}\n`);
    assert.equal((await docker(['images', '--format', '{{.Tag}}', 'concurrent/tag'])).stdout.split('\n').filter(Boolean).length, 8);
    assert.doesNotMatch((await ok(kiln(['system', 'check']))).stdout, /^problem:/m);
  });

  it('answers bad requests with Docker-style errors and keeps serving; the store stays consistent', async () => {
    const malformed = await raw(socket, 'GET', '/v1.41/images/json?filters=%7Bnot-json');
    assert.equal(malformed.status, 400);
    assert.equal(messageOf(malformed.body), "invalid character 'n' looking for beginning of object key string");
    const unknown = await raw(socket, 'GET', `/v1.41/images/json?filters=${encodeURIComponent('{"bogus":["1"]}')}`);
    assert.equal(unknown.status, 400);
    assert.equal(messageOf(unknown.body), "invalid filter 'bogus'");
    const missing = await raw(socket, 'GET', '/v1.41/images/nothing:here/json');
    assert.equal(missing.status, 404);
    assert.match(messageOf(missing.body), /No such image: nothing:here/);
    const tooNew = await raw(socket, 'GET', '/v9.99/version');
    assert.equal(tooNew.status, 400);
    // A build context whose tar climbs out with ../: refused in the stream, nothing written outside.
    const evil = join(dir, 'evil');
    await mkdir(evil);
    await writeFile(join(evil, 'Dockerfile'), 'FROM scratch\n');
    const tarball = (await run('tar', ['-C', evil, '-cf', '-', '--transform', 's,^,../../,', 'Dockerfile'], { encoding: 'buffer', maxBuffer: 1 << 20 })).stdout;
    const climbed = await raw(socket, 'POST', '/v1.41/build?t=evil', tarball.toString('latin1'));
    assert.equal(climbed.status, 200);
    assert.match(climbed.body, /"errorDetail":\{"message":"the build context: entry .*points outside the root filesystem/);
    const hostile = await raw(socket, 'POST', '/v1.41/images/load', 'not a tar at all');
    assert.equal(hostile.status, 200);
    assert.match(hostile.body, /"errorDetail"/);
    // A 2 GB body that never comes (a bogus length, then the client goes), and a client that leaves in
    // the middle of a download: the server goes on, nothing is left half-stored.
    await new Promise<void>((resolve) => {
      const bogus = connect(socket, () => {
        bogus.write('POST /v1.41/images/load HTTP/1.1\r\nHost: kiln\r\nContent-Length: 2147483648\r\nContent-Type: application/x-tar\r\n\r\n');
        bogus.write(Buffer.alloc(1 << 20, 7), () => {
          bogus.destroy();
          resolve();
        });
      });
    });
    await docker(['load', '-i', await fixture('busybox-docker20-save.tar')]);
    await new Promise<void>((resolve) => {
      const leaving = connect(socket, () => leaving.write('GET /v1.41/images/get?names=busybox:lab HTTP/1.1\r\nHost: kiln\r\n\r\n'));
      leaving.once('data', () => {
        leaving.destroy();
        resolve();
      });
    });
    assert.equal((await raw(socket, 'GET', '/_ping')).body, 'OK');
    assert.match((await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout, /busybox:lab/);
    const check = (await ok(kiln(['system', 'check']))).stdout;
    assert.doesNotMatch(check, /^problem:/m);
  });
});

describe('kiln serve over TCP: mutual TLS, and plain TCP only when asked for', { skip: await dockerCliUnavailable() }, () => {
  it('accepts a client with a certificate from the CA, refuses one without, and refuses plain TCP by default', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-tls-api-'));
    const ssl = (args: readonly string[]): Promise<unknown> => run('openssl', [...args], { cwd: dir });
    try {
      await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=kiln-ca']);
      for (const [name, usage] of [['server', 'serverAuth\nsubjectAltName=IP:127.0.0.1'], ['client', 'clientAuth']] as const) {
        await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
        await writeFile(join(dir, `${name}.ext`), `extendedKeyUsage=${usage}\n`);
        await ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
      }
      const plain = await runKiln(join(dir, 'store'), ['serve', '-H', 'tcp://127.0.0.1:1']);
      assert.equal(plain.code, 125);
      assert.match(plain.stderr, /refusing to serve tcp:\/\/127\.0\.0\.1:1 without TLS/);
      const port = await freePort();
      const server = await startServe(join(dir, 'store'), ['-H', `tcp://127.0.0.1:${port}`, '--tlsverify', '--tlscacert', join(dir, 'ca.pem'), '--tlscert', join(dir, 'server.pem'), '--tlskey', join(dir, 'server-key.pem')]);
      try {
        const tlsArgs = ['--tlsverify', '--tlscacert', join(dir, 'ca.pem'), '-H', `tcp://127.0.0.1:${port}`];
        const { DOCKER_HOST: _host, ...inherited } = process.env;
        const env = { ...inherited, DOCKER_CONFIG: dir };
        const version = await run('docker', [...tlsArgs, '--tlscert', join(dir, 'client.pem'), '--tlskey', join(dir, 'client-key.pem'), 'version', '--format', '{{.Server.Version}}'], { env });
        assert.equal(version.stdout, '0.1.0\n');
        await assert.rejects(run('docker', [...tlsArgs, 'version', '--format', '{{.Server.Version}}'], { env }), /certificate|tls|handshake|remote error/i);
      } finally {
        await server.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
