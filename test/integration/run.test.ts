import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kilnBin, newKiln, ok } from '../helpers/kiln.js';
import { dockerFacts, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { INTERLEAVED_MARKERS, INTERLEAVED_SCRIPT, interleavedMarkers } from '../helpers/interleave.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { readEntries } from '../helpers/tar.js';

const cannotRun = !isRoot
  ? 'kiln run needs root'
  : spawnSync('sh', ['-c', 'command -v runc']).status !== 0
    ? 'runc is not installed (scripts/setup.sh installs it as root)'
    : await fixturesUnavailable('busybox-rootfs.tar', 'busybox-docker20-save.tar', 'whiteouts-docker20-save.tar');

for (const driver of ['overlay', 'vfs']) describe(`kiln run in a real OCI runtime over ${driver} snapshots`, { skip: cannotRun }, () => {
  it('sizes containers and volumes for ps -s and system df, and system prune --volumes takes the anonymous ones', async () => {
    const store = await newKiln();
    const kiln = (args: readonly string[]) => store.kiln(args[0] === 'run' ? ['run', '--storage-driver', driver, ...args.slice(1)] : args);
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    // 100,000 bytes written, one file hard-linked twice (counted once), a file of the image changed.
    await ok(kiln(['run', '--name', 'writer', '-v', 'kept:/kept', 'busybox:lab', 'sh', '-c', 'head -c 100000 /dev/zero > /big; ln /big /big2; echo x >> /etc/hostname.new; echo 1234 > /kept/v']));
    await ok(kiln(['run', '--name', 'anon', '-v', '/anon', 'busybox:lab', 'sh', '-c', 'echo 12345 > /anon/a']));
    const imageSize = Number((await ok(kiln(['inspect', '-f', '{{.Size}}', 'busybox:lab']))).stdout.trim());
    const sizes = (await ok(kiln(['ps', '-a', '--format', '{{.Names}} {{.Size}}']))).stdout;
    assert.match(sizes, /^writer 100kB \(virtual [\d.]+MB\)$/m);
    assert.match(sizes, /^anon 0B \(virtual [\d.]+MB\)$/m);
    assert.ok(imageSize > 1_000_000);
    const df = (await ok(kiln(['system', 'df', '--format', '{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}']))).stdout;
    assert.match(df, /^Containers\|2\|0\|100kB\|100kB \(100%\)$/m, "100,002 bytes, four significant digits as Docker's df");
    assert.match(df, /^Local Volumes\|2\|2\|11B\|0B \(0%\)$/m, 'both volumes are used by a container, 5 + 6 bytes');
    const pruned = (await ok(kiln(['system', 'prune', '-f', '--volumes']))).stdout;
    assert.match(pruned, /^Deleted Volumes:\n[0-9a-f]{64}\n\n/m, 'the anonymous volume goes');
    assert.equal((await ok(kiln(['system', 'df', '--format', '{{.Type}} {{.TotalCount}}']))).stdout.split('\n')[2], 'Local Volumes 1', 'the named one stays');
  });

  it('passes stdout and the exit code through, runs as the image USER, binds volumes, isolates the network', async () => {
    const store = await newKiln();
    const { root } = store;
    // Every run goes through the driver under test.
    const kiln = (args: readonly string[]) => store.kiln(args[0] === 'run' ? ['run', '--storage-driver', driver, ...args.slice(1)] : args);
    await ok(kiln(['import', '-c', 'CMD ["sh"]', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const hi = await kiln(['run', '--rm', 'busybox:x', 'sh', '-c', 'echo hi; exit 3']);
    assert.equal(hi.stdout, 'hi\n');
    assert.equal(hi.code, 3);

    await ok(kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]));
    assert.equal((await ok(kiln(['run', '--rm', 'whiteouts:lab']))).stdout, 'c\n', 'the image CMD, in its WORKDIR, as USER 1000');
    assert.equal((await ok(kiln(['run', '--rm', 'whiteouts:lab', 'sh', '-c', 'id -u; pwd; echo $HELLO']))).stdout, '1000\n/d\nworld\n');
    assert.equal((await ok(kiln(['run', '--rm', '-u', '0', '-w', '/tmp', '-e', 'FOO=bar', 'whiteouts:lab', 'sh', '-c', 'id -u; pwd; echo $FOO']))).stdout, '0\n/tmp\nbar\n');
    assert.equal((await ok(kiln(['run', '--rm', '--entrypoint', 'echo', 'whiteouts:lab', 'entry']))).stdout, 'entry\n');

    const volume = await tempDir();
    await writeFile(join(volume, 'f'), 'from the host\n');
    assert.equal((await ok(kiln(['run', '--rm', '-v', `${volume}:/mnt`, 'busybox:x', 'sh', '-c', 'cat /mnt/f; echo back > /mnt/g']))).stdout, 'from the host\n');
    assert.deepEqual((await readdir(volume)).sort(), ['f', 'g']);
    const readonly = await kiln(['run', '--rm', '-v', `${volume}:/mnt:ro`, 'busybox:x', 'touch', '/mnt/h']);
    assert.notEqual(readonly.code, 0);

    assert.equal((await ok(kiln(['run', '--rm', '--network', 'none', 'busybox:x', 'ls', '/sys/class/net']))).stdout, 'lo\n');
    assert.equal((await kiln(['run', '--rm', 'busybox:x', 'no-such-command'])).code, 127);
    if (spawnSync('sh', ['-c', 'command -v script']).status === 0) {
      // -t gives the process a real pseudo-terminal; `script` supplies the terminal kiln runs in.
      const line = [process.execPath, kilnBin, '--root', root, 'run', '--rm', '-t', '--storage-driver', driver, 'busybox:x', 'sh', '-c', 'tty; exit 5'].map((w) => `'${w}'`).join(' ');
      const tty = spawnSync('script', ['-qec', line, '/dev/null'], { encoding: 'utf8' });
      assert.match(tty.stdout, /\/dev\/pts\/\d+/);
      assert.equal(tty.status, 5);
    }
    assert.equal((await kiln(['run', '--rm', '-t', 'busybox:x', 'tty'])).code, 125, 'no terminal to give');
    if (spawnSync('sh', ['-c', 'command -v crun']).status === 0) {
      // crun 1.8 needs the hugetlb controller on hybrid-cgroup hosts: kiln mounts it and says so.
      const crun = await ok(kiln(['run', '--rm', '--runtime', 'crun', 'busybox:x', 'echo', 'crun too']));
      assert.equal(crun.stdout, 'crun too\n');
      assert.match(crun.stderr, /^(kiln: mounted the hugetlb cgroup v1 controller at \/sys\/fs\/cgroup\/hugetlb, which crun needs.*\n)?$/);
    }

    // The whiteouts image and busybox:x share their base layer: three layer snapshots, not four.
    const snapshotDirs = await readdir(join(root, 'snapshots'));
    assert.equal(snapshotDirs.length, 3);
    await ok(kiln(['rmi', 'whiteouts:lab', 'busybox:x']));
    assert.deepEqual(await readdir(join(root, 'snapshots')), [], 'snapshots go with the last image that needs them');
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('refuses a container name that is taken, with a clear message', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', '-c', 'CMD ["true"]', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    await ok(kiln(['run', '--storage-driver', driver, '--name', 'one', 'busybox:x']));
    const again = await kiln(['run', '--storage-driver', driver, '--name', 'one', 'busybox:x']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^Error: Conflict. The container name "\/one" is already in use/);
    await ok(kiln(['rm', 'one']));
  });
});

for (const driver of ['overlay', 'vfs']) describe(`containers on ${driver}: run, ps, diff, commit, save, rm`, { skip: cannotRun }, () => {
  it('commits a container\'s changes as a layer with the right whiteouts, which umoci unpacks', async () => {
    const store = await newKiln();
    const kiln = (args: readonly string[]) => store.kiln(args[0] === 'run' ? ['run', '--storage-driver', driver, ...args.slice(1)] : args);
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const run = await kiln(['run', '--name', 'work', 'busybox:lab', 'sh', '-c', 'echo new > /new; rm /etc/passwd; echo x >> /etc/group; rm -rf /usr/sbin; echo to-out; echo to-err >&2; exit 2']);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, 'to-out\n');
    const logs = await ok(kiln(['logs', 'work']));
    assert.deepEqual([logs.stdout, logs.stderr], ['to-out\n', 'to-err\n']);
    const exported = (await ok(kiln(['export', 'work']))).stdoutBytes;
    const exportFile = join(await tempDir(), 'export.tar');
    await writeFile(exportFile, exported);
    const exportedNames = spawnSync('tar', ['-tf', exportFile], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(exportedNames.includes('new') && exportedNames.includes('bin/busybox') && !exportedNames.includes('etc/passwd'), 'export is the merged filesystem');
    assert.match((await ok(kiln(['ps', '-a', '--format', '{{.Names}} {{.Image}} {{.Status}}']))).stdout, /^work busybox:lab Exited \(2\) .* ago\n$/);
    assert.equal((await ok(kiln(['ps', '-q']))).stdout, '', 'nothing is running');
    assert.equal((await ok(kiln(['diff', 'work']))).stdout, 'C /etc\nC /etc/group\nD /etc/passwd\nA /new\nC /usr\nD /usr/sbin\n');

    const rmi = await kiln(['rmi', 'busybox:lab']);
    assert.equal(rmi.code, 1, 'the image is in use by the container');
    const busyboxId = (await dockerFacts('busybox')).images.ID;
    assert.match(rmi.stderr, new RegExp(`container [a-f0-9]{12} is using its referenced image ${busyboxId}`));

    const id = (await ok(kiln(['commit', '-m', 'made by a test', '-c', 'CMD ["cat", "/new"]', 'work', 'committed:1']))).stdout.trim();
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    assert.equal((await ok(kiln(['run', '--rm', 'committed:1']))).stdout, 'new\n');
    assert.match((await ok(kiln(['history', '--format', '{{.Comment}}', 'committed:1']))).stdout, /^made by a test\n/);

    const dir = await tempDir();
    await ok(kiln(['save', '--format', 'oci-dir', '-o', join(dir, 'layout'), 'committed:1']));
    const [item] = JSON.parse((await ok(kiln(['inspect', 'committed:1']))).stdout) as { RootFS: { Layers: string[] } }[];
    const top = item?.RootFS.Layers.at(-1) ?? '';
    const listing = spawnSync('tar', ['-tf', join(dir, 'layout', 'blobs', 'sha256', top.slice(7))], { encoding: 'utf8' }).stdout.split('\n');
    for (const entry of ['etc/.wh.passwd', 'usr/.wh.sbin', 'new', 'etc/group']) assert.ok(listing.includes(entry), `${entry} in the new layer: ${listing.join(' ')}`);
    if (spawnSync('sh', ['-c', 'command -v umoci']).status === 0) {
      spawnSync('umoci', ['unpack', '--image', `${join(dir, 'layout')}:1`, join(dir, 'bundle')], { stdio: 'ignore' });
      const rootfs = join(dir, 'bundle', 'rootfs');
      assert.deepEqual(await readdir(join(rootfs, 'usr')), ['bin'], 'usr/sbin is whited out');
      assert.ok(!(await readdir(join(rootfs, 'etc'))).includes('passwd'));
      assert.ok((await readdir(rootfs)).includes('new'));
    }

    assert.equal((await ok(kiln(['rm', 'work']))).stdout, 'work\n');
    assert.equal((await ok(kiln(['ps', '-a', '-q']))).stdout, '');
    await ok(kiln(['rmi', 'committed:1']));
    assert.match((await ok(kiln(['rmi', 'busybox:lab']))).stdout, /^Untagged: busybox:lab\nDeleted: /);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^0 blobs verified, 0 images, 0 names: clean\n$/);
  });
});

describe('detached containers: run -d, ps, logs, rm -f', { skip: cannotRun }, () => {
  it('runs in the background under a kiln supervisor, lists as Up, and is killed by rm -f', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const id = (await ok(kiln(['run', '-d', '--name', 'bg', 'busybox:lab', 'sh', '-c', 'echo started; exec sleep 60']))).stdout.trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    assert.match((await ok(kiln(['ps', '--format', '{{.Names}} {{.Status}}']))).stdout, /^bg Up /);
    // The container writes its first line soon; wait for it with a deadline rather than a fixed sleep.
    const deadline = Date.now() + 20_000;
    while ((await ok(kiln(['logs', 'bg']))).stdout !== 'started\n' && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await ok(kiln(['logs', 'bg']))).stdout, 'started\n');
    const refused = await kiln(['rm', 'bg']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /You cannot remove a running container [a-f0-9]{64}\. Stop the container before attempting removal or force remove/);
    assert.equal((await ok(kiln(['rm', '-f', 'bg']))).stdout, 'bg\n');
    assert.equal((await ok(kiln(['ps', '-a', '-q']))).stdout, '');
    assert.deepEqual(await readdir(join(root, 'containers')), []);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('kill and stop right after run -d end the container as killed (137), leave nothing running or mounted, and a start runs it again', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    const leftovers = (id: string): string[] => [
      ...(spawnSync('runc', ['state', id]).status === 0 ? [`runc container ${id}`] : []),
      ...readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((line) => line.includes(root)),
      ...spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout.split('\n').filter((line) => line.includes('__supervise') && line.includes(id)),
    ];
    for (const verb of [['kill'], ['stop', '-t', '1'], ['rm', '-f']]) {
      const id = (await ok(kiln(['run', '-d', 'busybox:lab', 'sleep', '600']))).stdout.trim();
      assert.equal((await ok(kiln([...verb, id]))).stdout, `${id}\n`);
      if (verb[0] !== 'rm') assert.equal((await ok(kiln(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', id]))).stdout, 'exited 137\n', verb.join(' '));
      assert.deepEqual(leftovers(id), [], verb.join(' '));
      if (verb[0] === 'rm') continue;
      // The next run is not the one the kill ended: it runs until killed.
      await ok(kiln(['start', id]));
      assert.equal((await ok(kiln(['inspect', '-f', '{{.State.Status}}', id]))).stdout, 'running\n');
      await ok(kiln(['rm', '-f', id]));
      assert.deepEqual(leftovers(id), [], `${verb.join(' ')}, then start and rm -f`);
    }
    assert.equal((await ok(kiln(['ps', '-a', '-q']))).stdout, '');
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });
});

describe('logs across stdout and stderr', { skip: cannotRun }, () => {
  it('keep the order written, for a container in the foreground and one under a supervisor', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    await ok(kiln(['run', '--name', 'fg', 'busybox:lab', 'sh', '-c', INTERLEAVED_SCRIPT]));
    await ok(kiln(['run', '-d', '--name', 'bg', 'busybox:lab', 'sh', '-c', INTERLEAVED_SCRIPT]));
    assert.equal((await ok(kiln(['wait', 'bg']))).stdout, '0\n');
    // Both streams through one pipe: kiln writes each record to its stream as it reads it (see interleave.ts).
    const logs = (name: string, redirect: string): string =>
      interleavedMarkers(spawnSync('sh', ['-c', `"$0" "$1" --root "$2" logs "$3" ${redirect}`, process.execPath, kilnBin, root, name], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout);
    for (const name of ['fg', 'bg']) {
      assert.equal(logs(name, '2>&1'), INTERLEAVED_MARKERS, name);
      assert.equal(logs(name, '2>/dev/null'), 'ace', name);
    }
  });
});

/**
 * A detached terminal container's log with runc's one race taken out. runc clears ONLCR on the container's
 * terminal (the terminal it relays to, script's, turns LF into CR LF instead), but from a goroutine that may
 * run after the process has started: output written before it comes through both terminals, CR CR LF. A
 * terminal shows the two alike; crun sets the terminal up before the process starts and has no such race.
 */
const logOfTerminal = (log: string): string => log.replaceAll('\r\r\n', '\r\n');

describe('detached containers with a terminal: run -d -t', { skip: cannotRun }, () => {
  it('gives the process a controlling terminal of 24x80, logged as Docker logs one (CR LF)', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    await ok(kiln(['run', '-d', '-t', '--name', 'term', 'busybox:lab', 'sh', '-c', 'tty; stty size; exit 4']));
    const deadline = Date.now() + 20_000;
    while (!(await ok(kiln(['ps', '-a', '--format', '{{.Status}}']))).stdout.startsWith('Exited') && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.match((await ok(kiln(['ps', '-a', '--format', '{{.Names}} {{.Status}}']))).stdout, /^term Exited \(4\)/);
    assert.equal(logOfTerminal((await ok(kiln(['logs', 'term']))).stdout), '/dev/pts/0\r\n24 80\r\n');
    await ok(kiln(['rm', 'term']));
  });

  it('logs nothing but the process\'s output, even when many start at once (no echoed end of input)', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    // Racing starts make a late raw mode likelier: script's end of input then came first and was echoed as ^@.
    const ids = await Promise.all(Array.from({ length: 8 }, async () => (await ok(kiln(['run', '-d', '-t', 'busybox:lab', 'echo', 'only this']))).stdout.trim()));
    const deadline = Date.now() + 30_000;
    const exited = async () => (await ok(kiln(['ps', '-a', '--format', '{{.Status}}']))).stdout.split('\n').filter((s) => s.startsWith('Exited')).length;
    while ((await exited()) < ids.length && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    for (const id of ids) assert.equal(logOfTerminal((await ok(kiln(['logs', id]))).stdout), 'only this\r\n', id);
    await ok(kiln(['rm', ...ids]));
  });
});

describe('run options: --read-only, --tmpfs, --cap-add/--cap-drop, --privileged, --security-opt, --add-host', { skip: cannotRun }, () => {
  it('applies them as Docker does, and refuses bad ones with the flag named', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const run = async (args: readonly string[]): Promise<string> => (await ok(kiln(['run', '--rm', ...args]))).stdout;
    // Docker's defaults: its 14 capabilities (CapEff a80425fb), and setuid programs allowed (NoNewPrivs 0).
    assert.equal(await run(['busybox:x', 'sh', '-c', 'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status']), 'CapEff:\t00000000a80425fb\nNoNewPrivs:\t0\n');
    assert.equal(await run(['--cap-drop', 'ALL', '--cap-add', 'chown', '--cap-add', 'CAP_KILL', 'busybox:x', 'grep', '^CapEff', '/proc/self/status']), 'CapEff:\t0000000000000021\n');
    assert.equal(await run(['--cap-drop', 'net_raw', 'busybox:x', 'grep', '^CapEff', '/proc/self/status']), 'CapEff:\t00000000a80405fb\n');
    // Every capability kiln may pass on: its own bounding set (a sandbox may lack some).
    const bounding = /^CapBnd:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    assert.equal(await run(['--privileged', 'busybox:x', 'sh', '-c', 'grep ^CapEff /proc/self/status; grep " /sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1']), `CapEff:\t${bounding}\nrw\n`);
    // Docker's seccomp filter: unshare fails without CAP_SYS_ADMIN; the capability, seccomp=unconfined and --privileged let it through.
    const unshare = ['busybox:x', 'sh', '-c', 'grep ^Seccomp: /proc/self/status; unshare -U true 2>&1 || echo refused'];
    assert.equal(await run(unshare), 'Seccomp:\t2\nunshare: unshare(0x10000000): Operation not permitted\nrefused\n');
    assert.equal(await run(['--cap-add', 'SYS_ADMIN', ...unshare]), 'Seccomp:\t2\n');
    assert.equal(await run(['--security-opt', 'seccomp=unconfined', ...unshare]), 'Seccomp:\t0\n');
    assert.equal(await run(['--privileged', ...unshare]), 'Seccomp:\t0\n');
    assert.equal(await run(['--security-opt', 'no-new-privileges', 'busybox:x', 'grep', '^NoNewPrivs', '/proc/self/status']), 'NoNewPrivs:\t1\n');
    // /dev/shm: Docker's 64 MiB, or --shm-size.
    assert.match(await run(['busybox:x', 'grep', ' /dev/shm ', '/proc/mounts']), /size=65536k/);
    assert.match(await run(['--shm-size', '128m', 'busybox:x', 'grep', ' /dev/shm ', '/proc/mounts']), /size=131072k/);
    await ok(kiln(['create', '--name', 'unconfined', '--security-opt', 'seccomp=unconfined', 'busybox:x', 'true']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{json .HostConfig.SecurityOpt}}', 'unconfined']))).stdout, '["seccomp=unconfined"]\n');
    await ok(kiln(['rm', 'unconfined']));
    // A profile of one's own, in Docker's format, from its file.
    const profile = join(await tempDir(), 'no-mkdir.json');
    await writeFile(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }, null, 2));
    assert.equal(await run(['--security-opt', `seccomp=${profile}`, 'busybox:x', 'sh', '-c', 'mkdir /made 2>&1 || echo refused; unshare -U true && echo unshared']), "mkdir: can't create directory '/made': Operation not permitted\nrefused\nunshared\n");
    const readOnly = await run(['--read-only', '--tmpfs', '/scratch', '--tmpfs', '/sized:size=1m', 'busybox:x', 'sh', '-c', 'touch /x 2>/dev/null || echo root-read-only; touch /scratch/y && echo tmpfs-writable; grep -E " /(scratch|sized) " /proc/mounts | cut -d" " -f2-4']);
    assert.match(readOnly, /^root-read-only\ntmpfs-writable\n\/scratch tmpfs rw,nosuid,nodev,noexec.*\n\/sized tmpfs rw,nosuid,nodev,noexec,.*size=1024k/);
    assert.equal(await run(['--add-host', 'db:10.1.2.3', '--add-host', 'six=[::1]', 'busybox:x', 'tail', '-n', '2', '/etc/hosts']), '10.1.2.3\tdb\n::1\tsix\n');
    for (const [args, message] of [
      [['--cap-add', 'FLY'], /invalid --cap-add: unknown capability: "CAP_FLY"/],
      [['--add-host', 'db:not-an-ip'], /invalid --add-host "db:not-an-ip": use HOST:IP/],
      [['--tmpfs', 'relative'], /invalid --tmpfs "relative"/],
      [['--security-opt', 'seccomp=/nonexistent/profile.json'], /opening seccomp profile \(\/nonexistent\/profile.json\) failed: ENOENT/],
      [['--security-opt', 'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}'], /invalid --security-opt "seccomp=\{.*": the seccomp profile has syscalls that are not a list/],
    ] as const) {
      const result = await kiln(['run', '--rm', ...args, 'busybox:x', 'true']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, message);
    }
    assert.equal((await ok(kiln(['ps', '-a', '-q']))).stdout, '', 'nothing left behind');
  });
});

/**
 * A running container's cgroup files, by controller: cgroup v1's per-controller hierarchies, or v2's one
 * (its files named as v2 names them). The container's init is found through runc, which kiln runs it in.
 */
async function cgroupFiles(containerId: string): Promise<(v1: string, v2: string) => string> {
  // A detached container's supervisor starts it after run -d returns: its init is there once runc says it runs.
  const deadline = Date.now() + 20_000;
  let state: { status?: string; pid?: number } = {};
  while (state.status !== 'running' && Date.now() < deadline) {
    const runc = spawnSync('runc', ['state', containerId], { encoding: 'utf8' });
    state = runc.status === 0 ? (JSON.parse(runc.stdout) as typeof state) : {};
    if (state.status !== 'running') await new Promise((resolve) => setImmediate(resolve));
  }
  const { pid } = state;
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').map((line) => line.split(':'));
  const pathOf = (controller: string): string | undefined => lines.find(([, controllers]) => controllers?.split(',').includes(controller))?.[2];
  return (v1, v2) => {
    const [controller = '', file = ''] = v1.split('/');
    const v1Path = pathOf(controller);
    return readFileSync(v1Path !== undefined ? join('/sys/fs/cgroup', controller, v1Path, file) : join('/sys/fs/cgroup', lines.find(([id]) => id === '0')?.[2] ?? '/', v2), 'utf8').trim();
  };
}

describe('resource limits: --memory, --cpus, --pids-limit, --cpu-shares', { skip: cannotRun }, () => {
  it('sets the container\'s cgroup limits as Docker does, kills a process past its memory (137), and refuses what dockerd refuses, in its words', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    // 64 MiB asked for past a 16 MiB limit (and as much swap again): the kernel kills it, as under Docker.
    assert.equal((await kiln(['run', '--rm', '--memory', '16m', 'busybox:x', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'])).code, 137);
    // State.OOMKilled, as Docker's: a process of the container was killed for memory (here not the first,
    // which goes on to exit 0), until the container starts again; the `oom` event comes before `die`.
    const once = 'test -f /done || { touch /done; dd if=/dev/zero of=/dev/null bs=64M count=1; }; echo went on';
    assert.equal((await ok(kiln(['run', '--name', 'oom', '--memory', '16m', 'busybox:x', 'sh', '-c', once]))).stdout, 'went on\n');
    assert.equal((await ok(kiln(['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oom']))).stdout, 'true 0\n');
    assert.match((await ok(kiln(['events', '--since', '1h', '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'container=oom', '--filter', 'event=oom', '--filter', 'event=die', '--format', '{{.Action}}']))).stdout, /^oom\ndie\n/);
    await ok(kiln(['start', '-a', 'oom']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{.State.OOMKilled}}', 'oom']))).stdout, 'false\n');
    await ok(kiln(['rm', 'oom']));
    await ok(kiln(['run', '-d', '--name', 'limited', '--memory', '64m', '--cpus', '0.5', '--pids-limit', '50', '--cpu-shares', '512', 'busybox:x', 'sleep', '60']));
    const id = (await ok(kiln(['inspect', '-f', '{{.Id}}', 'limited']))).stdout.trim();
    // State.Pid is the container's first process, as Docker's: what nsenter -t takes. The runtime names it
    // as it creates the container, when it is still the runtime's init, which then becomes the command.
    const deadline = Date.now() + 20_000;
    let pid = 0;
    while (pid === 0 && Date.now() < deadline) pid = Number((await ok(kiln(['inspect', '-f', '{{.State.Pid}}', 'limited']))).stdout);
    const commandOf = (): string => readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    while (commandOf() !== 'sleep\x0060\x00' && Date.now() < deadline);
    assert.equal(commandOf(), 'sleep\x0060\x00');
    const file = await cgroupFiles(id);
    if (existsSync('/sys/fs/cgroup/memory')) {
      assert.deepEqual([file('memory/memory.limit_in_bytes', ''), file('memory/memory.memsw.limit_in_bytes', '')], ['67108864', '134217728']);
      assert.deepEqual([file('cpu/cpu.cfs_quota_us', ''), file('cpu/cpu.cfs_period_us', ''), file('cpu/cpu.shares', '')], ['50000', '100000', '512']);
    } else {
      assert.deepEqual([file('', 'memory.max'), file('', 'cpu.max')], ['67108864', '50000 100000']);
    }
    assert.equal(file('pids/pids.max', 'pids.max'), '50');
    // As dockerd keeps them: a memory limit without a swap limit allows as much swap again.
    assert.equal((await ok(kiln(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}', 'limited']))).stdout, '67108864 134217728 500000000 50 512\n');
    await ok(kiln(['rm', '-f', 'limited']));
    for (const [args, message] of [
      [['--memory', '1m'], /Minimum memory limit allowed is 6MB/],
      [['--memory', 'lots'], /invalid argument "lots" for "-m, --memory" flag: invalid size: 'lots'/],
      [['--memory-swap', '1g'], /You should always set the Memory limit when using Memoryswap limit, see usage/],
      [['--memory', '64m', '--memory-swap', '32m'], /Minimum memoryswap limit should be larger than memory limit, see usage/],
      [['--cpus', '0.5', '--cpu-quota', '50000'], /Conflicting options: Nano CPUs and CPU Quota cannot both be set/],
      [['--cpus', '4096'], /Range of CPUs is from 0.01 to \d+\.00, as there are only \d+ CPUs available/],
      [['--cpus', 'half'], /failed to parse half as a rational number/],
    ] as const) {
      const result = await kiln(['run', '--rm', ...args, 'busybox:x', 'true']);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message);
    }
  });

  it('--init runs docker-init first, which passes signals on (a stop ends a sleep at once) and the exit code back; --group-add adds groups', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    // The command's own PID is whatever the runtime's set-up left next in the new namespace (6 or 7): the init is 1, the command its only other process.
    assert.match((await ok(kiln(['run', '--rm', '--init', 'busybox:x', 'ps', '-o', 'pid,args']))).stdout, /^PID {3}COMMAND\n {4}1 \/sbin\/docker-init -- ps -o pid,args\n +([2-9]|\d{2,}) ps -o pid,args\n$/);
    assert.equal((await kiln(['run', '--rm', '--init', 'busybox:x', 'sh', '-c', 'exit 7'])).code, 7);
    // A sleep as the first process ignores SIGTERM, and a stop waits its 10 s for the KILL; under the init it ends at once.
    await ok(kiln(['run', '-d', '--name', 'initial', '--init', 'busybox:x', 'sleep', '60']));
    // Stopped once the init runs (a stop before the runtime has started the process kills it: 137).
    const deadline = Date.now() + 20_000;
    let pid = 0;
    while (pid === 0 && Date.now() < deadline) pid = Number((await ok(kiln(['inspect', '-f', '{{.State.Pid}}', 'initial']))).stdout);
    while (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/sbin/docker-init') && Date.now() < deadline);
    const started = Date.now();
    await ok(kiln(['stop', 'initial']));
    assert.ok(Date.now() - started < 8000, `stop took ${Date.now() - started} ms`);
    assert.equal((await ok(kiln(['inspect', '-f', '{{.State.ExitCode}} {{json .HostConfig.Init}} {{.Path}}', 'initial']))).stdout, '143 true sleep\n');
    await ok(kiln(['rm', 'initial']));
    // Groups by ID or by the image's /etc/group, after the user's own (as Docker's `id` shows them).
    assert.equal((await ok(kiln(['run', '--rm', '--group-add', '10', '--group-add', 'nogroup', '-u', '1000', 'busybox:x', 'id']))).stdout, 'uid=1000 gid=0(root) groups=0(root),10,65534(nogroup)\n');
    const unknown = await kiln(['run', '--rm', '--group-add', 'audio', 'busybox:x', 'id']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /Unable to find group audio: no matching entries in group file/);
  });

  it('--pid, --ipc and --uts host share the host\'s namespaces; --sysctl sets the container\'s own; --stop-timeout is what a stop waits', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    assert.equal((await ok(kiln(['run', '--rm', '--pid', 'host', 'busybox:x', 'sh', '-c', `test -d /proc/${process.pid} && echo sees the host`]))).stdout, 'sees the host\n');
    assert.equal((await ok(kiln(['run', '--rm', 'busybox:x', 'sh', '-c', `test -d /proc/${process.pid} || echo its own`]))).stdout, 'its own\n');
    const shared = `kiln-ipc-test-${process.pid}`;
    await writeFile(`/dev/shm/${shared}`, 'host\n');
    try {
      assert.equal((await ok(kiln(['run', '--rm', '--ipc', 'host', 'busybox:x', 'cat', `/dev/shm/${shared}`]))).stdout, 'host\n');
    } finally {
      await rm(`/dev/shm/${shared}`, { force: true });
    }
    assert.equal((await kiln(['run', '--rm', '--ipc', 'none', 'busybox:x', 'grep', ' /dev/shm ', '/proc/mounts'])).code, 1);
    assert.equal((await ok(kiln(['run', '--rm', '--uts', 'host', 'busybox:x', 'hostname']))).stdout, `${hostname()}\n`);
    assert.equal((await ok(kiln(['run', '--rm', '--network', 'none', '--sysctl', 'kernel.shmmax=123456', '--sysctl', 'net.ipv4.ip_forward=1', 'busybox:x', 'cat', '/proc/sys/kernel/shmmax', '/proc/sys/net/ipv4/ip_forward']))).stdout, '123456\n1\n');
    for (const [args, message] of [
      [['--sysctl', 'vm.swappiness=1'], /invalid argument "vm.swappiness=1" for "--sysctl" flag: sysctl 'vm.swappiness=1' is not allowed/],
      [['--sysctl', 'net.ipv4.ip_forward=1'], /sysctl "net.ipv4.ip_forward" is not allowed in the host's network namespace: run with --network bridge or none/],
      [['--ipc', 'bogus'], /Invalid IPC mode: bogus/],
      [['--uts', 'host', '--hostname', 'x'], /conflicting options: hostname and the UTS mode/],
      [['--pid', 'container:other'], /--pid container:other: kiln shares no namespace of another container's/],
    ] as const) {
      const result = await kiln(['run', '--rm', ...args, 'busybox:x', 'true']);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message);
    }
    // A sleep as the first process ignores SIGTERM: the stop waits its --stop-timeout, then kills.
    await ok(kiln(['run', '-d', '--name', 'patient', '--stop-timeout', '1', 'busybox:x', 'sleep', '60']));
    const deadline = Date.now() + 20_000;
    while ((await ok(kiln(['inspect', '-f', '{{.State.Pid}}', 'patient']))).stdout === '0\n' && Date.now() < deadline);
    const started = Date.now();
    await ok(kiln(['stop', 'patient']));
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 8000, `stop took ${took} ms`);
    assert.equal((await ok(kiln(['inspect', '-f', '{{.State.ExitCode}} {{.Config.StopTimeout}} {{.HostConfig.IpcMode}}', 'patient']))).stdout, '137 1 private\n');
    await ok(kiln(['rm', 'patient']));
  });

  it('health checks, as dockerd runs them: the image\'s HEALTHCHECK or --health-*, starting, healthy, unhealthy past its retries or its timeout; --no-healthcheck', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const healthOf = async (name: string): Promise<{ Status: string; FailingStreak: number; Log: { ExitCode: number; Output: string }[] } | null> => JSON.parse((await ok(kiln(['inspect', '-f', '{{json .State.Health}}', name]))).stdout) as never;
    /** The container's health once it has become `status` (20 s at most). */
    const until = async (name: string, status: string) => {
      const deadline = Date.now() + 20_000;
      let health = await healthOf(name);
      while (health?.Status !== status && Date.now() < deadline) health = await healthOf(name);
      assert.equal(health?.Status, status, JSON.stringify(health));
      return health;
    };
    // Healthy once the command has made /ready; before, starting (failures up to the retries), or unhealthy.
    await ok(kiln(['run', '-d', '--name', 'probed', '--health-cmd', 'test -f /ready', '--health-interval', '100ms', '--health-retries', '1000', 'busybox:x', 'sh', '-c', 'sleep 1; touch /ready; sleep 60']));
    assert.match((await ok(kiln(['ps', '--format', '{{.Status}}', '-f', 'name=probed']))).stdout, /^Up .* \(health: starting\)\n$/);
    const healthy = await until('probed', 'healthy');
    assert.equal(healthy.FailingStreak, 0);
    assert.match((await ok(kiln(['ps', '--format', '{{.Status}}', '-f', 'health=healthy']))).stdout, /^Up .* \(healthy\)\n$/);
    assert.equal((await ok(kiln(['inspect', '-f', '{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}}', 'probed']))).stdout, '["CMD-SHELL","test -f /ready"] 100000000\n');
    await ok(kiln(['rm', '-f', 'probed']));
    // A probe past its timeout is killed and fails, in dockerd's words; the image's HEALTHCHECK applies, its timeout from the flag.
    const context = await tempDir();
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox:x\nHEALTHCHECK --interval=100ms --retries=1 CMD ["sleep", "5"]\n');
    await ok(kiln(['build', '-q', '-t', 'busybox:probed', context]));
    await ok(kiln(['run', '-d', '--name', 'slow', '--health-timeout', '200ms', 'busybox:probed', 'sleep', '60']));
    const unhealthy = await until('slow', 'unhealthy');
    assert.deepEqual(unhealthy.Log[0], { ...unhealthy.Log[0], ExitCode: -1, Output: 'Health check exceeded timeout (200ms)' });
    assert.match((await ok(kiln(['events', '--since', '1h', '--until', String(Math.ceil(Date.now() / 1000) + 1), '-f', 'container=slow', '--format', '{{.Action}}']))).stdout, /health_status: unhealthy/);
    await ok(kiln(['rm', '-f', 'slow']));
    await ok(kiln(['run', '-d', '--name', 'unprobed', '--no-healthcheck', 'busybox:probed', 'sleep', '60']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{json .State.Health}} {{json .Config.Healthcheck.Test}}', 'unprobed']))).stdout, 'null ["NONE"]\n');
    await ok(kiln(['rm', '-f', 'unprobed']));
    for (const [args, message] of [
      [['--no-healthcheck', '--health-cmd', 'true'], /--no-healthcheck conflicts with --health-\* options/],
      [['--health-interval', '-1s'], /--health-interval cannot be negative/],
      [['--health-timeout', '1x'], /invalid argument "1x" for "--health-timeout" flag: time: unknown unit "x" in duration "1x"/],
    ] as const) {
      const result = await kiln(['run', '--rm', ...args, 'busybox:x', 'true']);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message);
    }
  });

  it('--device makes host devices in the container (a directory\'s too), as Docker does, and refuses what the docker CLI refuses, in its words', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    assert.equal((await ok(kiln(['run', '--rm', '--device', '/dev/null:/dev/mynull', '--device', '/dev/zero:r', 'busybox:x', 'sh', '-c', 'stat -c "%F %t:%T %a" /dev/mynull /dev/zero; head -c 2 /dev/zero | od -An -c; echo x > /dev/mynull && echo written']))).stdout, 'character special file 1:3 666\ncharacter special file 1:5 666\n  \\0  \\0\nwritten\n');
    // /dev/null given read only: the runtime's own start still opens it as Docker's does (its usual devices come first).
    await ok(kiln(['run', '--rm', '--device', '/dev/null:r', 'busybox:x', 'true']));
    if (existsSync('/dev/net/tun')) assert.equal((await ok(kiln(['run', '--rm', '--device', '/dev/net', 'busybox:x', 'stat', '-c', '%F %t:%T', '/dev/net/tun']))).stdout, 'character special file a:c8\n');
    await ok(kiln(['create', '--name', 'devices', '--device', '/dev/null:/dev/mynull:rw', 'busybox:x', 'true']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{range .HostConfig.Devices}}{{.PathOnHost}} {{.PathInContainer}} {{.CgroupPermissions}}{{end}}', 'devices']))).stdout, '/dev/null /dev/mynull rw\n');
    for (const [device, message] of [
      ['/dev/nosuch', /error gathering device information while adding custom device "\/dev\/nosuch": no such file or directory/],
      ['/dev/null:/dev/x:q', /bad mode specified: q/],
      ['/dev/null:relative', /relative is not an absolute path/],
      ['/dev/null:/dev/a:/dev/b:rw', /bad format for path: \/dev\/null:\/dev\/a:\/dev\/b:rw/],
    ] as const) {
      const result = await kiln(['run', '--rm', '--device', device, 'busybox:x', 'true']);
      assert.notEqual(result.code, 0, device);
      assert.match(result.stderr, message);
    }
  });

  it('--cidfile, --platform, -q, --label-file and --restart, as the docker CLI takes them', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const dir = await tempDir();
    const cid = join(dir, 'cid');
    const named = (await ok(kiln(['run', '--rm', '--cidfile', cid, 'busybox:x', 'hostname']))).stdout.trim();
    assert.equal((await readFile(cid, 'utf8')).slice(0, 12), named);
    const again = await kiln(['run', '--rm', '--cidfile', cid, 'busybox:x', 'true']);
    assert.equal(again.code, 125);
    assert.match(again.stderr, new RegExp(`container ID file found, make sure the other container isn't running or delete ${cid}`));
    assert.equal((await ok(kiln(['run', '--rm', '-q', '--platform', `linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'}`, 'busybox:x', 'echo', 'ok']))).stdout, 'ok\n');
    assert.match((await kiln(['run', '--rm', '--pull', 'never', '--platform', 'linux/s390x', 'busybox:x', 'true'])).stderr, /image with reference busybox:x was found but does not match the specified platform: wanted linux\/s390x, actual: linux\//);
    await writeFile(join(dir, 'labels'), 'a=1\n# a comment\nb=2\n');
    await ok(kiln(['create', '--name', 'labelled', '--label-file', join(dir, 'labels'), '-l', 'b=3', '--restart', 'on-failure:3', 'busybox:x', 'true']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{json .Config.Labels}} {{.HostConfig.RestartPolicy.Name}}', 'labelled']))).stdout, '{"a":"1","b":"3"} on-failure\n');
    assert.match((await kiln(['run', '--rm', '--restart', 'always', 'busybox:x', 'true'])).stderr, /conflicting options: cannot specify both --restart and --rm/);
  });

  it('--ulimit sets the process\'s rlimits (-1 unlimited, the others the runtime\'s own), which inspect shows as Docker does', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const limits = 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -c) $(ulimit -Hc) $(ulimit -Hs)';
    const own = (await ok(kiln(['run', '--rm', 'busybox:x', 'sh', '-c', limits]))).stdout;
    const stack = own.trim().split(' ').at(-1);
    assert.equal((await ok(kiln(['run', '--rm', '--ulimit', 'nofile=100:200', '--ulimit', 'core=-1', 'busybox:x', 'sh', '-c', limits]))).stdout, `100 200 unlimited unlimited ${stack}\n`);
    await ok(kiln(['create', '--name', 'ulimited', '--ulimit', 'nofile=100:200', '--ulimit', 'core=-1', '--ulimit', 'nofile=64', 'busybox:x', 'true']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}} {{end}}', 'ulimited']))).stdout, 'core=-1:-1 nofile=64:64 \n');
    assert.equal((await ok(kiln(['start', '-a', 'ulimited']))).code, 0);
    const refused = await kiln(['run', '--rm', '--ulimit', 'nofile=2:1', 'busybox:x', 'true']);
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /invalid argument "nofile=2:1" for "--ulimit" flag: ulimit soft limit must be less than or equal to hard limit: 2 > 1/);
  });
});

describe('start and restart', { skip: cannotRun }, () => {
  it('inspect shows a container; start runs a stopped container again on the layer it left, its logs going on; restart stops, then starts', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    assert.equal((await kiln(['run', '--name', 'again', 'busybox:x', 'sh', '-c', 'echo run >> /count; wc -l < /count; exit 3'])).stdout, '1\n');
    // inspect finds containers as docker's does: before an image of the same name, unless --type says.
    assert.equal((await ok(kiln(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}}', 'again']))).stdout, 'exited 3 /again busybox:x\n');
    assert.match((await kiln(['inspect', '--type', 'image', 'again'])).stderr, /^Error: No such image: again\n$/);
    assert.match((await kiln(['inspect', 'nothing'])).stderr, /^Error: No such object: nothing\n$/);
    assert.equal((await ok(kiln(['inspect', '--type', 'image', '-f', '{{.Os}}', 'busybox:x']))).stdout, 'linux\n');
    // docker's management command: container ls, container inspect (containers only).
    assert.equal((await ok(kiln(['container', 'ls', '-a', '--format', '{{.Names}}']))).stdout, 'again\n');
    assert.equal((await ok(kiln(['container', 'inspect', '-f', '{{.State.ExitCode}}', 'again']))).stdout, '3\n');
    assert.match((await kiln(['container', 'inspect', 'busybox:x'])).stderr, /^Error: No such container: busybox:x\n$/);
    assert.equal((await ok(kiln(['start', 'again']))).stdout, 'again\n');
    assert.equal((await ok(kiln(['wait', 'again']))).stdout, '3\n');
    assert.equal((await ok(kiln(['logs', 'again']))).stdout, '1\n2\n', 'the second run saw the first one\'s file, and its output follows');
    const attached = await kiln(['start', '-a', 'again']);
    assert.deepEqual([attached.code, attached.stdout], [3, '3\n'], 'start -a: the output from the start on, and the exit code');
    assert.equal((await ok(kiln(['logs', '--tail', '2', 'again']))).stdout, '2\n3\n');
    assert.equal((await ok(kiln(['logs', '-n', '0', 'again']))).stdout, '');
    assert.equal((await ok(kiln(['logs', '--tail', 'all', 'again']))).stdout, '1\n2\n3\n');
    await ok(kiln(['rename', 'again', 'renamed']));
    assert.equal((await ok(kiln(['logs', '--tail', '1', 'renamed']))).stdout, '3\n');
    await ok(kiln(['rename', 'renamed', 'again']));
    await ok(kiln(['run', '-d', '--name', 'loop', 'busybox:x', 'sh', '-c', 'trap "exit 0" TERM; echo up; while true; do sleep 0.05; done']));
    const logged = async (text: string): Promise<void> => {
      while ((await ok(kiln(['logs', 'loop']))).stdout !== text) await new Promise((resolve) => setImmediate(resolve));
    };
    await logged('up\n');
    assert.equal((await ok(kiln(['restart', 'loop']))).stdout, 'loop\n');
    await logged('up\nup\n');
    assert.equal((await ok(kiln(['start', 'loop']))).stdout, 'loop\n', 'starting a running container is no error');
    const taken = await kiln(['rename', 'loop', 'again']);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /The container name "\/again" is already in use/);
    assert.match((await ok(kiln(['ps', '--format', '{{.Names}} {{.Status}}']))).stdout, /^loop Up /m);
    await ok(kiln(['rm', '-f', 'again', 'loop']));
  });
});

describe('exec', { skip: cannotRun }, () => {
  it('runs a command in a running container with its environment, and -e, -u, -w, -i, -t, -d; exit codes come back', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    await ok(kiln(['run', '-d', '--name', 'box', '-e', 'FROM_RUN=1', 'busybox:x', 'sh', '-c', 'echo ready; while true; do sleep 0.05; done']));
    while (!(await ok(kiln(['logs', 'box']))).stdout.includes('ready')) await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await ok(kiln(['exec', '-e', 'EXTRA=2', '-u', '1000', '-w', '/tmp', 'box', 'sh', '-c', 'echo $FROM_RUN $EXTRA $(id -u) $(pwd)']))).stdout, '1 2 1000 /tmp\n');
    assert.equal((await ok(kiln(['exec', '-i', 'box', 'cat'], 'piped in\n'))).stdout, 'piped in\n');
    assert.equal((await kiln(['exec', 'box', 'sh', '-c', 'echo to-stderr >&2; exit 5'])).code, 5);
    assert.equal((await ok(kiln(['exec', '-d', 'box', 'sh', '-c', 'echo later > /tmp/detached']))).stdout, '');
    assert.equal((await ok(kiln(['exec', 'box', 'sh', '-c', 'while [ ! -s /tmp/detached ]; do sleep 0.05; done; cat /tmp/detached']))).stdout, 'later\n');
    // -it on a terminal (util-linux script's): the process gets one of its own (runc relays it).
    const onTerminal = spawn('script', ['--quiet', '--return', '--command', `${process.execPath} ${kilnBin} --root ${root} exec -it box sh -c 'tty; exit 4'`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let terminalOutput = '';
    onTerminal.stdout.on('data', (chunk: Buffer) => (terminalOutput += chunk.toString()));
    const terminalCode = await new Promise<number | null>((resolve) => onTerminal.on('close', resolve)); // stdin left open: no EOF typed
    onTerminal.stdin.destroy();
    assert.equal(terminalCode, 4, terminalOutput);
    assert.match(terminalOutput.replace(/\r/g, ''), /^\/dev\/pts\/\d+\n/m);
    const missing = await kiln(['exec', 'box', 'no-such-command']);
    assert.equal(missing.code, 127, missing.stderr);
    await ok(kiln(['stop', '-t', '0', 'box']));
    const stopped = await kiln(['exec', 'box', 'true']);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /is not running/);
    await ok(kiln(['rm', 'box']));
  });
});

describe('cp', { skip: cannotRun }, () => {
  it('copies files and directories in and out of running and stopped containers by docker cp\'s rules', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const host = await tempDir();
    await mkdir(join(host, 'dir', 'sub'), { recursive: true });
    await writeFile(join(host, 'dir', 'a'), 'a\n');
    await writeFile(join(host, 'dir', 'sub', 'b'), 'b\n');
    await writeFile(join(host, 'file'), 'f\n');
    await ok(kiln(['run', '-d', '--name', 'box', 'busybox:x', 'sh', '-c', 'mkdir /data; echo inside > /data/in; echo ready; while true; do sleep 0.05; done']));
    while (!(await ok(kiln(['logs', 'box']))).stdout.includes('ready')) await new Promise((resolve) => setImmediate(resolve));
    // In: into a directory under its own name, a directory's contents with /., a new name, and owners root's.
    assert.match((await ok(kiln(['cp', join(host, 'file'), 'box:/data/']))).stderr, /^Successfully copied \d.*B to box:\/data\/\n$/);
    await ok(kiln(['cp', join(host, 'dir'), 'box:/data']));
    await ok(kiln(['cp', `${join(host, 'dir')}/.`, 'box:/data/flat']));
    await ok(kiln(['cp', '-q', join(host, 'file'), 'box:/data/renamed']));
    const listing = (await ok(kiln(['exec', 'box', 'sh', '-c', 'cd /data && find . | sort && stat -c "%u:%g %n" renamed']))).stdout;
    assert.equal(listing, ['.', './dir', './dir/a', './dir/sub', './dir/sub/b', './file', './flat', './flat/a', './flat/sub', './flat/sub/b', './in', './renamed', '0:0 renamed', ''].join('\n'));
    // Out: a file to a new name, a directory into an existing one, and a tar on stdout.
    await ok(kiln(['cp', 'box:/data/in', join(host, 'out')]));
    assert.equal(await readFile(join(host, 'out'), 'utf8'), 'inside\n');
    await ok(kiln(['cp', 'box:/data/dir', join(host, 'dir')]));
    assert.equal(await readFile(join(host, 'dir', 'dir', 'sub', 'b'), 'utf8'), 'b\n');
    const tar = await kiln(['cp', 'box:/data/in', '-']);
    assert.equal(tar.code, 0);
    assert.deepEqual((await readEntries([tar.stdoutBytes])).map((e) => e.header.path), ['in']);
    // -L copies what a symlink points to, under the link's name; without it, the link itself.
    await symlink('file', join(host, 'link'));
    await ok(kiln(['cp', '-L', join(host, 'link'), 'box:/data/followed']));
    await ok(kiln(['cp', join(host, 'link'), 'box:/data/as-is']));
    await ok(kiln(['exec', 'box', 'ln', '-s', 'in', '/data/inner-link']));
    await ok(kiln(['cp', '-L', 'box:/data/inner-link', join(host, 'inner')]));
    assert.equal((await ok(kiln(['exec', 'box', 'sh', '-c', 'cat /data/followed; readlink /data/as-is']))).stdout, 'f\nfile\n');
    assert.equal(await readFile(join(host, 'inner'), 'utf8'), 'inside\n');
    // A stopped container's filesystem is mounted for the copy.
    await ok(kiln(['stop', '-t', '0', 'box']));
    await ok(kiln(['cp', join(host, 'file'), 'box:/data/after-stop']));
    await ok(kiln(['cp', 'box:/data/after-stop', join(host, 'back')]));
    assert.equal(await readFile(join(host, 'back'), 'utf8'), 'f\n');
    for (const [args, message] of [
      [['box:/nope', join(host, 'x')], /Could not find the file \/nope in container box/],
      [[join(host, 'dir'), 'box:/data/in'], /cannot copy a directory to a file: \/data\/in/],
      [[join(host, 'file'), 'box:/data/missing/'], /the destination directory \/data\/missing\/ must exist/],
      [[join(host, 'file'), join(host, 'out')], /must specify at least one container source/],
    ] as const) {
      const result = await kiln(['cp', ...args]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, message);
    }
    await ok(kiln(['rm', 'box']));
  });
});

describe('logs -f and attach', { skip: cannotRun }, () => {
  it('logs -f follows until the exit; attach sends stdin and gets the exit code; a terminal attach types, resizes and detaches with ctrl-p ctrl-q', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
    // A container that waits for a line on stdin before it writes: logs -f follows it to the end.
    const follow = (await ok(kiln(['run', '-d', '-i', 'busybox:lab', 'sh', '-c', 'echo one; read x; echo "got $x"; exit 3']))).stdout.trim();
    const following = kiln(['logs', '-f', follow]);
    const attached = await kiln(['attach', follow], 'hi\n');
    assert.deepEqual([attached.code, attached.stdout], [3, 'got hi\n'], 'attach gets only what comes next, and the exit code');
    assert.equal((await ok(following)).stdout, 'one\ngot hi\n');
    const stopped = await kiln(['attach', follow]);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /You cannot attach to a stopped container, start it first/);
    // With a terminal (util-linux script's): typed to, resized to 30x100, detached from (ctrl-p ctrl-q,
    // typed once the answer shows that the attach is reading), then attached to again: its stdin is open
    // across attaches, as with docker run -dit.
    const term = (await ok(kiln(['run', '-dit', 'busybox:lab', 'sh']))).stdout.trim();
    const onTerminal = async (input: string, then?: { after: RegExp; input: string }, flags = '', env = ''): Promise<{ code: number; output: string }> => {
      const command = `stty rows 30 cols 100; ${env} ${process.execPath} ${kilnBin} --root ${root} attach ${flags} ${term}`;
      const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (then && then.after.test(output)) child.stdin.write(then.input);
        if (then && then.after.test(output)) then = undefined;
      });
      child.stdin.write(input); // stdin left open: script would type its end as an EOF character
      const stuck = setTimeout(() => child.kill('SIGKILL'), 30_000); // a failure, not a hang
      const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
      clearTimeout(stuck);
      child.stdin.destroy();
      return { code, output: output.replace(/\r/g, '') };
    };
    const detached = await onTerminal('echo size $(stty size)\n', { after: /^size 30 100$/m, input: '\x10\x11' });
    assert.equal(detached.code, 1, detached.output);
    assert.match(detached.output, /^size 30 100$/m);
    assert.match(detached.output, /read escape sequence/);
    assert.match((await ok(kiln(['ps', '--format', '{{.Status}}']))).stdout, /^Up /, 'still running after the detach');
    // Other keys, from --detach-keys and from config.json's detachKeys (as docker reads them); the
    // default ones then pass through to the shell.
    const config = await tempDir();
    await writeFile(join(config, 'config.json'), JSON.stringify({ detachKeys: 'ctrl-a,x' }));
    const ownKeys = await onTerminal('echo own-$((2 * 3))\n', { after: /^own-6$/m, input: '\x10\x11\x18\x00' }, '--detach-keys=ctrl-x,ctrl-@');
    assert.equal(ownKeys.code, 1, ownKeys.output);
    assert.match(ownKeys.output, /read escape sequence/);
    const configKeys = await onTerminal('echo conf-$((3 * 3))\n', { after: /^conf-9$/m, input: '\x01x' }, '', `DOCKER_CONFIG=${config}`);
    assert.equal(configKeys.code, 1, configKeys.output);
    assert.match(configKeys.output, /read escape sequence/);
    const wrongKeys = await kiln(['attach', '--detach-keys', 'ctrl-1', term]);
    assert.equal(wrongKeys.code, 125, wrongKeys.stderr);
    assert.match(wrongKeys.stderr, /Invalid detach keys \(ctrl-1\) provided: unknown key 'ctrl-1'/);
    const ended = await onTerminal('echo again-$((6 * 7))\nexit 7\n');
    assert.equal(ended.code, 7, ended.output);
    assert.match(ended.output, /^again-42$/m);
    await ok(kiln(['rm', follow, term]));
  });
});

describe('signals', { skip: cannotRun }, () => {
  it('SIGTERM sent to kiln reaches the container\'s process', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    const child = spawn(process.execPath, [kilnBin, '--root', root, 'run', '--rm', 'busybox:x', 'sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('ready')) resolve();
      }),
    );
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 7);
    assert.match(out, /ready\ngot-term\n/);
  });

  it('kill -s sends a signal by name or number; attach passes on the signals it gets, unless --sig-proxy=false; stop and wait; ps filters', async () => {
    const { root, kiln } = await newKiln();
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:x']));
    // Each container says "ready" once its trap is set, then ticks until the signal comes.
    const trapping = async (name: string, signal: string, code: number): Promise<void> => {
      await ok(kiln(['run', '-d', '--name', name, 'busybox:x', 'sh', '-c', `trap "echo got-${signal}; exit ${code}" ${signal}; echo ready; while true; do echo tick; sleep 0.05; done`]));
      while (!(await ok(kiln(['logs', name]))).stdout.includes('ready')) await new Promise((resolve) => setImmediate(resolve));
    };
    const lastLine = async (name: string): Promise<string> => (await ok(kiln(['logs', '-f', name]))).stdout.trim().split('\n').pop() ?? '';
    const status = async (name: string): Promise<string> => (await ok(kiln(['ps', '-a', '--format', '{{.Names}} {{.Status}}']))).stdout.split('\n').find((line) => line.startsWith(`${name} `)) ?? '';
    await trapping('usr1', 'USR1', 5);
    assert.equal((await ok(kiln(['kill', '-s', 'sigusr1', 'usr1']))).stdout, 'usr1\n');
    assert.equal(await lastLine('usr1'), 'got-USR1');
    assert.match(await status('usr1'), /^usr1 Exited \(5\)/);
    await trapping('hup', 'HUP', 6);
    await ok(kiln(['kill', '--signal=1', 'hup']));
    assert.equal(await lastLine('hup'), 'got-HUP');
    const wrong = await kiln(['kill', '-s', 'NOPE', 'hup']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /Invalid signal: NOPE/);
    const stopped = await kiln(['kill', 'hup']);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /is not running/);
    // attach without a terminal: a signal to kiln goes to the container (docker's --sig-proxy), once
    // attach follows its output (its first tick: its handlers are set by then).
    const attachThenInterrupt = async (args: readonly string[]): Promise<number | null> => {
      const child = spawn(process.execPath, [kilnBin, '--root', root, 'attach', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let interrupted = false;
      child.stdout.on('data', () => {
        if (!interrupted) child.kill('SIGINT');
        interrupted = true;
      });
      return new Promise((resolve) => child.on('exit', resolve));
    };
    await trapping('int', 'INT', 4);
    assert.equal(await attachThenInterrupt(['int']), 4);
    assert.equal(await lastLine('int'), 'got-INT');
    await trapping('keep', 'INT', 4);
    await attachThenInterrupt(['--sig-proxy=false', 'keep']);
    assert.match(await status('keep'), /^keep Up /, 'the container goes on');
    // stop: the image's STOPSIGNAL (else SIGTERM), then SIGKILL after -t seconds; wait prints exit codes.
    await ok(kiln(['import', '-c', 'STOPSIGNAL SIGUSR2', await fixture('busybox-rootfs.tar'), 'busybox:usr2']));
    await ok(kiln(['run', '-d', '--name', 'stopsignal', 'busybox:usr2', 'sh', '-c', 'trap "echo got-USR2; exit 8" USR2; echo ready; while true; do sleep 0.05; done']));
    while (!(await ok(kiln(['logs', 'stopsignal']))).stdout.includes('ready')) await new Promise((resolve) => setImmediate(resolve));
    await trapping('term', 'TERM', 10);
    await ok(kiln(['run', '-d', '--name', 'stubborn', 'busybox:x', 'sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.05; done']));
    while (!(await ok(kiln(['logs', 'stubborn']))).stdout.includes('ready')) await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await ok(kiln(['stop', 'stopsignal', 'term']))).stdout, 'stopsignal\nterm\n');
    assert.equal((await ok(kiln(['wait', 'stopsignal', 'term']))).stdout, '8\n10\n');
    assert.equal(await lastLine('stopsignal'), 'got-USR2');
    const started = Date.now();
    await ok(kiln(['stop', '-t', '1', 'stubborn']));
    assert.ok(Date.now() - started >= 1000, 'waited the second out before SIGKILL');
    assert.equal((await ok(kiln(['wait', 'stubborn']))).stdout, '137\n');
    assert.equal((await ok(kiln(['stop', 'stubborn']))).stdout, 'stubborn\n', 'stopping a stopped container is no error');
    // ps: Docker's filters, -n and -l (created in this order: usr1 hup int keep stopsignal term stubborn).
    const names = async (args: readonly string[]): Promise<string[]> => (await ok(kiln(['ps', ...args, '--format', '{{.Names}}']))).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(await names([]), ['keep']);
    assert.deepEqual(await names(['-f', 'status=exited', '-f', 'name=^s']), ['stopsignal', 'stubborn'], 'a status filter looks at every container');
    assert.deepEqual(await names(['-f', 'exited=137']), ['stubborn']);
    assert.deepEqual(await names(['-a', '-f', 'ancestor=busybox:usr2']), ['stopsignal']);
    assert.deepEqual(await names(['-a', '-f', 'since=stopsignal', '-f', 'before=stubborn']), ['term']);
    assert.equal((await ok(kiln(['ps', '-l', '--format', '{{.Names}}']))).stdout, 'stubborn\n');
    assert.equal((await ok(kiln(['ps', '-n', '2', '--format', '{{.Names}}']))).stdout, 'stubborn\nterm\n');
    for (const [filter, message] of [['status=sleeping', /invalid filter 'status=sleeping'/], ['color=red', /invalid filter 'color'/]] as const) {
      const bad = await kiln(['ps', '-f', filter]);
      assert.equal(bad.code, 125);
      assert.match(bad.stderr, message);
    }
    await ok(kiln(['rm', '-f', 'usr1', 'hup', 'int', 'keep', 'stopsignal', 'term', 'stubborn']));
  });
});
