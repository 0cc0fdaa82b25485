import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, describe, it } from 'node:test';
import { type RunResult, ok, runKiln } from '../helpers/kiln.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';

// Bridge networks through the CNI plugins, with the kiln CLI: real namespaces, veths, bridges and iptables rules.
const cannotRun = !isRoot
  ? 'networks need root'
  : spawnSync('sh', ['-c', 'command -v runc && command -v iptables-save']).status !== 0
    ? 'runc or iptables is not installed (scripts/setup.sh installs them)'
    : !existsSync('/usr/lib/cni/bridge')
      ? "the CNI plugins are not installed (Debian's containernetworking-plugins)"
      : await fixturesUnavailable('busybox-rootfs.tar');

/** What of kiln's networking the host has: interfaces, and the iptables rules of CNI's per-container chains. */
function hostState(): { links: string; rules: string } {
  return { links: spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout, rules: spawnSync('iptables-save', { encoding: 'utf8' }).stdout };
}

const HTTPD = 'mkdir /w && echo served > /w/index.html && exec httpd -f -p 8080 -h /w';
/** Fetches http://NAME:8080/ from inside a container, once the server answers. */
const WGET = (name: string): string => `for i in $(seq 100); do wget -qO- http://${name}:8080/ && exit; sleep 0.1; done; exit 1`;

/**
 * A fresh store whose containers and networks go when the test ends, passed or not (a failure must not leave
 * them on the host), and then the store. Not newKiln's: its removal, a hook of the test too, would run
 * before this one, which would then find no container and make the store again.
 */
async function networkStore(t: TestContext): Promise<{ root: string; kiln: (args: readonly string[]) => Promise<RunResult> }> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-root-'));
  const store = { root, kiln: (args: readonly string[]) => runKiln(root, args) };
  t.after(async () => {
    const ids = (await store.kiln(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await store.kiln(['rm', '-f', ...ids]);
    await store.kiln(['network', 'prune', '-f']);
    await rm(root, { recursive: true, force: true });
  });
  await ok(store.kiln(['import', '-c', 'CMD ["sh"]', await fixture('busybox-rootfs.tar'), 'busybox:x']));
  return store;
}

describe('kiln networks: bridge networks through the CNI plugins', { skip: cannotRun }, () => {
  it('a container on a user network reaches another by name and alias; -p and -P publish on the host and 127.0.0.1; rm and network rm leave nothing', async (t) => {
    const { kiln, root } = await networkStore(t);
    const id = (await ok(kiln(['network', 'create', 'appnet']))).stdout.trim();
    const port = await freePort();
    const web = (await ok(kiln(['run', '-d', '--name', 'web', '--network', 'appnet', '--network-alias', 'www', '-p', `${port}:8080`, '--expose', '9090', '-P', 'busybox:x', 'sh', '-c', HTTPD]))).stdout.trim();
    assert.equal((await ok(kiln(['run', '--rm', '--network', 'appnet', 'busybox:x', 'sh', '-c', WGET('web')]))).stdout, 'served\n');
    assert.equal((await ok(kiln(['run', '--rm', '--network', 'appnet', 'busybox:x', 'sh', '-c', WGET('www')]))).stdout, 'served\n');
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'served\n');
    const ports = (await ok(kiln(['port', 'web']))).stdout;
    assert.match(ports, new RegExp(`^8080/tcp -> 0\\.0\\.0\\.0:${port}\\n9090/tcp -> 0\\.0\\.0\\.0:\\d+\\n$`));
    assert.match((await ok(kiln(['ps', '--format', '{{.Names}} {{.Ports}}']))).stdout, new RegExp(`^web 0\\.0\\.0\\.0:${port}->8080/tcp, 0\\.0\\.0\\.0:\\d+->9090/tcp\\n$`));
    const taken = await kiln(['run', '--rm', '--network', 'appnet', '-p', `${port}:80`, 'busybox:x', 'true']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, new RegExp(`Bind for 0\\.0\\.0\\.0:${port} failed: port is already allocated`));
    // Without a network of its own a container publishes nothing, and is told so.
    assert.match((await ok(kiln(['run', '--rm', '-p', '80', 'busybox:x', 'true']))).stderr, /Published ports are discarded when using host network mode/);
    assert.match((await kiln(['network', 'rm', 'appnet'])).stderr, /has active endpoints/);

    await ok(kiln(['rm', '-f', 'web']));
    assert.equal((await ok(kiln(['network', 'rm', 'appnet']))).stdout, 'appnet\n');
    const after = hostState();
    assert.doesNotMatch(after.links, new RegExp(`kiln-${id.slice(0, 8)}`), 'the network\'s bridge is gone');
    assert.doesNotMatch(after.rules, new RegExp(`${web}|kiln-${id.slice(0, 12)}`), 'no iptables rule of the container or the network is left');
    assert.deepEqual(await readdir(join(root, 'netns')), []);
  });

  it('the default bridge: outbound, no names, its host interface removed by prune', async (t) => {
    const { kiln } = await networkStore(t);
    const routes = (await ok(kiln(['run', '--rm', '--network', 'bridge', 'busybox:x', 'sh', '-c', 'ip -4 route; cat /etc/hosts']))).stdout;
    const gateway = (await ok(kiln(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'bridge']))).stdout.trim();
    assert.match(routes, new RegExp(`^default via ${gateway.replace(/\./g, '\\.')} dev eth0`));
    const bridge = (await ok(kiln(['network', 'inspect', '-f', '{{index .Options "com.docker.network.bridge.name"}}', 'bridge']))).stdout.trim();
    assert.match(hostState().links, new RegExp(`: ${bridge}:`));
    await ok(kiln(['network', 'prune', '-f']));
    assert.doesNotMatch(hostState().links, new RegExp(`: ${bridge}:`));
    assert.match((await ok(kiln(['network', 'ls', '--format', '{{.Name}}']))).stdout, /^bridge\nhost\nnone\n$/);
  });

  it('what a kill -9 of the kiln running a container left on the host is undone by the next network rm and system prune', async (t) => {
    const { kiln, root } = await networkStore(t);
    await ok(kiln(['network', 'create', 'doomed']));
    const id = (await ok(kiln(['run', '-d', '--network', 'doomed', '-p', `${await freePort()}:80`, 'busybox:x', 'sleep', '600']))).stdout.trim();
    // The kiln process that supervises it (State.Pid is the container's own process, as Docker's).
    const supervisor = Number(spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout.split('\n').find((line) => line.includes(`__supervise ${id}`))?.trim().split(' ')[0]);
    assert.ok(supervisor > 0, 'the supervisor is found');
    process.kill(supervisor, 'SIGKILL');
    // The container's process goes too, as with a reboot; its namespace, veth and rules stay behind.
    spawnSync('runc', ['delete', '-f', id]);
    assert.ok(existsSync(join(root, 'netns', id)));
    assert.match(hostState().rules, new RegExp(id));

    await ok(kiln(['network', 'rm', 'doomed']));
    assert.doesNotMatch(hostState().rules, new RegExp(id));
    assert.deepEqual(await readdir(join(root, 'netns')), []);
    assert.match((await ok(kiln(['system', 'prune', '-f']))).stdout, new RegExp(`Deleted Containers:\\n${id}\\n`));
  });
});
