import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newKiln, ok } from '../helpers/kiln.js';
import { fixturesDir, isRoot, tempDir } from '../helpers/paths.js';

const cannotRun = !isRoot ? 'kiln run needs root' : spawnSync('sh', ['-c', 'command -v runc']).status !== 0 ? 'runc is not installed (scripts/setup.sh installs it as root)' : undefined;

for (const driver of ['overlay', 'vfs']) describe(`kiln run in a real OCI runtime over ${driver} snapshots`, { skip: cannotRun }, () => {
  it('passes stdout and the exit code through, runs as the image USER, binds volumes, isolates the network', async () => {
    const store = await newKiln();
    const { root } = store;
    // Every run goes through the driver under test.
    const kiln = (args: readonly string[]) => store.kiln(args[0] === 'run' ? ['run', '--storage-driver', driver, ...args.slice(1)] : args);
    await ok(kiln(['import', '-c', 'CMD ["sh"]', join(fixturesDir, 'busybox-rootfs.tar'), 'busybox:x']));
    const hi = await kiln(['run', '--rm', 'busybox:x', 'sh', '-c', 'echo hi; exit 3']);
    assert.equal(hi.stdout, 'hi\n');
    assert.equal(hi.code, 3);

    await ok(kiln(['load', '-i', join(fixturesDir, 'whiteouts-docker20-save.tar')]));
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

    // The whiteouts image and busybox:x share their base layer: three layer snapshots, not four.
    const snapshotDirs = await readdir(join(root, 'snapshots'));
    assert.equal(snapshotDirs.length, 3);
    await ok(kiln(['rmi', 'whiteouts:lab', 'busybox:x']));
    assert.deepEqual(await readdir(join(root, 'snapshots')), [], 'snapshots go with the last image that needs them');
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean\n$/);
  });

  it('refuses to keep containers it cannot manage yet, with a clear message', async () => {
    const { kiln } = await newKiln();
    const result = await kiln(['run', 'busybox:x', 'true']);
    assert.equal(result.code, 125);
    assert.match(result.stderr, /^Error: kiln keeps no stopped containers yet: pass --rm/);
  });
});
