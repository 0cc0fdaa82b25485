import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { savedImageTree } from '../helpers/image-tree.js';
import { newKiln, ok } from '../helpers/kiln.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot, tempDir } from '../helpers/paths.js';
import { BUILD_CASES, type BuildCase, writeContext } from '../helpers/build-cases.js';
import { readEntries } from '../helpers/tar.js';
import { execFileAsync } from '../../src/exec-file.js';

const skip = isRoot ? ((await fixturesUnavailable('busybox-docker20-save.tar')) ?? false) : 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root';

/** A store with busybox:latest loaded from Docker's own save (the same image ID in every store). */
async function storeWithBusybox() {
  const store = await newKiln();
  await ok(store.kiln(['load', '-i', await fixture('busybox-docker20-save.tar')]));
  await ok(store.kiln(['tag', 'busybox:lab', 'busybox:latest']));
  return store;
}

function buildCase(name: string): BuildCase {
  const found = BUILD_CASES.find((c) => c.name === name);
  if (!found) throw new Error(`no build case ${name}`);
  return found;
}

/** Builds and returns the flattened tree and config, plus the build's stderr. */
async function buildAndRead(kiln: Awaited<ReturnType<typeof newKiln>>['kiln'], context: string, tag: string, args: readonly string[] = []) {
  const built = await ok(kiln(['build', '--progress', 'plain', '-t', tag, ...args, context]));
  const archive = join(await tempDir(), 'image.tar');
  await ok(kiln(['save', '-o', archive, tag]));
  return { ...(await savedImageTree(archive)), log: built.stderr };
}

/** Why the --ssh test cannot run here, if it cannot: it needs OpenSSH's agent and tools. */
function sshTools(): string | false {
  const missing = ['ssh-agent', 'ssh-add', 'ssh-keygen', 'ldd', 'pgrep'].filter((tool) => !['/usr/bin', '/bin'].some((dir) => existsSync(join(dir, tool))));
  return missing.length > 0 ? `needs ${missing.join(', ')} (Debian's openssh-client)` : false;
}

async function fileText(kiln: Awaited<ReturnType<typeof newKiln>>['kiln'], image: string, path: string): Promise<string> {
  return (await ok(kiln(['run', '--rm', '--network', 'none', image, 'cat', path]))).stdout;
}

describe('kiln build: BuildKit syntax the classic builder lacks', { skip }, () => {
  it('runs heredoc scripts, with and without a shebang, and an explicit interpreter', async () => {
    const { kiln } = await storeWithBusybox();
    await ok(kiln(['build', '-q', '-t', 'hd:1', await writeContext(buildCase('heredoc-run'))]));
    assert.equal(await fileText(kiln, 'hd:1', '/hd1'), 'first\nsecond\n');
    assert.equal(await fileText(kiln, 'hd:1', '/hd2'), 'sh\n');
    await ok(kiln(['build', '-q', '-t', 'hd:2', await writeContext(buildCase('heredoc-run-shebang'))]));
    assert.equal(await fileText(kiln, 'hd:2', '/shebang'), 'via /dev/pipes/EOF\n');
  });

  it('copies heredocs as files: expanded, literal when the delimiter is quoted, tabs chomped with <<-', async () => {
    const { kiln } = await storeWithBusybox();
    const { files } = await buildAndRead(kiln, await writeContext(buildCase('heredoc-copy')), 'hc:1');
    assert.deepEqual(files.get('/greeting')?.type, 'file');
    assert.equal(await fileText(kiln, 'hc:1', '/greeting'), 'hello world\n');
    assert.equal(await fileText(kiln, 'hc:1', '/literal'), 'hello $WHO\n');
    assert.equal(await fileText(kiln, 'hc:1', '/chomped'), 'indented\n');
  });

  it('applies --chmod, --link and --exclude', async () => {
    const { kiln } = await storeWithBusybox();
    const { files } = await buildAndRead(kiln, await writeContext(buildCase('copy-chmod-link-exclude')), 'cl:1');
    assert.equal(files.get('/private/a.txt')?.mode, '600');
    assert.equal(files.get('/linked/b.txt')?.type, 'file');
    assert.ok(files.has('/nomd/one') && files.has('/nomd/sub/two'));
    assert.equal(files.has('/nomd/sub/readme.md'), false);
  });

  it('COPY --parents keeps each source\'s path (below a /./ pivot) with its parent directories, from the context and from a stage', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({
      name: 'copy-parents',
      buildkit: false,
      files: { 'packages/a/package.json': 'a', 'packages/b/package.json': 'b', 'packages/a/src/i.js': 'i', 'apps/x/package.json': 'x' },
      dockerfile: [
        'FROM busybox AS stage',
        'RUN mkdir -p /out/deep/er && echo s > /out/deep/er/s.txt',
        'FROM busybox',
        'COPY --parents packages/*/package.json apps/x/package.json /app/',
        'COPY --parents packages/a/src /tree/',
        'COPY --parents ./packages/./a/src/i.js /pivot/',
        'COPY --parents --from=stage /out/deep/er/s.txt /staged/',
        'COPY packages/a/src/i.js /flat/',
        '',
      ].join('\n'),
    });
    await chmod(join(context, 'packages', 'b'), 0o700);
    const { files } = await buildAndRead(kiln, context, 'parents:1');
    const under = (dir: string): string[] => [...files.keys()].filter((path) => path.startsWith(`${dir}/`)).sort();
    assert.deepEqual(under('/app'), ['/app/apps', '/app/apps/x', '/app/apps/x/package.json', '/app/packages', '/app/packages/a', '/app/packages/a/package.json', '/app/packages/b', '/app/packages/b/package.json']);
    assert.equal(files.get('/app/packages/b')?.mode, '700', 'a parent directory keeps its mode');
    assert.deepEqual(under('/tree'), ['/tree/packages', '/tree/packages/a', '/tree/packages/a/src', '/tree/packages/a/src/i.js']);
    assert.deepEqual(under('/pivot'), ['/pivot/a', '/pivot/a/src', '/pivot/a/src/i.js']);
    assert.deepEqual(under('/staged'), ['/staged/out', '/staged/out/deep', '/staged/out/deep/er', '/staged/out/deep/er/s.txt']);
    assert.deepEqual(under('/flat'), ['/flat/i.js'], 'without --parents, the base name alone');
  });

  it('mounts binds from the context and from a stage, tmpfs, and --network=none has only loopback; mount points leave no trace', async () => {
    const { kiln } = await storeWithBusybox();
    const bind = await buildAndRead(kiln, await writeContext(buildCase('run-mount-bind')), 'mb:1');
    assert.equal(await fileText(kiln, 'mb:1', '/from-context'), '1\n');
    assert.equal(await fileText(kiln, 'mb:1', '/from-stage'), 'tool\n');
    assert.equal(bind.files.has('/mnt'), false);
    assert.equal(bind.files.has('/t'), false);
    const tmpfs = await buildAndRead(kiln, await writeContext(buildCase('run-mount-tmpfs-network-none')), 'mt:1');
    assert.equal(await fileText(kiln, 'mt:1', '/nets'), 'lo\n');
    assert.equal(tmpfs.files.has('/scratch'), false);
  });

  it('keeps a cache mount between builds (the cache is not in the image)', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext(buildCase('run-mount-cache'));
    await ok(kiln(['build', '-q', '-t', 'mc:1', context]));
    await ok(kiln(['build', '-q', '--no-cache', '-t', 'mc:2', context]));
    assert.equal(await fileText(kiln, 'mc:1', '/seen'), 'run\n');
    assert.equal(await fileText(kiln, 'mc:2', '/seen'), 'run\nrun\n');
    const { files } = await buildAndRead(kiln, context, 'mc:2');
    assert.equal(files.has('/cache/runs'), false);
  });
});

describe("kiln build: BuildKit's results where the classic builder's differ", { skip }, () => {
  it('WORKDIR makes its directories for the USER, so the user can write there', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({
      name: 'workdir-user',
      buildkit: false,
      // The Dockerfile, with useradd -m spelled out (busybox has no useradd).
      dockerfile: 'FROM busybox\nRUN echo appuser:x:1500:1500::/home/appuser:/bin/sh >> /etc/passwd && echo appuser:x:1500: >> /etc/group && mkdir -p /home/appuser && chown 1500:1500 /home/appuser\nUSER appuser\nWORKDIR /home/appuser/work\nRUN echo "$(id -un) $(pwd)" > note.txt\n',
    });
    const { files } = await buildAndRead(kiln, context, 'wu:1');
    assert.equal(await fileText(kiln, 'wu:1', '/home/appuser/work/note.txt'), 'appuser /home/appuser/work\n');
    assert.equal(files.get('/home/appuser/work')?.owner, '1500:1500');
    // Only the directories WORKDIR made are the user's.
    assert.equal(files.get('/home')?.owner, '0:0');
  });

  it('COPY --from reads a path one layer of the stage holds, one spread over its layers, and one through a symlink, each whole', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({
      name: 'copy-from-layers',
      buildkit: false,
      dockerfile: [
        'FROM busybox AS build',
        'RUN mkdir /out && echo a > /out/a && ln -s /out /link',
        'RUN echo b > /out/b && mkdir /solo && echo s > /solo/s && chown 7:8 /solo/s && chmod 640 /solo/s',
        'FROM busybox',
        'COPY --from=build /out /spread',
        'COPY --from=build /solo /solo',
        'COPY --from=build /link/a /through-link',
        'COPY --from=build /out/a /solo /both/',
        'COPY --from=busybox /bin/busybox /bb',
        '',
      ].join('\n'),
    });
    const { files } = await buildAndRead(kiln, context, 'layers:1');
    for (const path of ['/spread/a', '/spread/b', '/solo/s', '/through-link', '/both/a', '/both/s', '/bb']) assert.equal(files.get(path)?.type, 'file', path);
    assert.equal(files.get('/through-link')?.content, files.get('/spread/a')?.content);
    assert.deepEqual([files.get('/solo/s')?.owner, files.get('/solo/s')?.mode, files.get('/both/s')?.owner], ['7:8', '640', '7:8']);
    assert.equal(files.get('/bb')?.size, files.get('/bin/busybox')?.size);
  });

  it('a three-stage build lists only its result in images; images -a and the cache keep the stages', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({
      name: 'three-stages',
      buildkit: false,
      dockerfile: 'FROM busybox AS one\nRUN echo 1 > /one\nFROM busybox AS two\nRUN echo 2 > /two\nFROM busybox\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n',
    });
    const first = await ok(kiln(['build', '-q', '-t', 'three:1', context]));
    const listed = (await ok(kiln(['images', '--format', '{{.Repository}}:{{.Tag}}']))).stdout.trim().split('\n').sort();
    assert.deepEqual(listed, ['busybox:lab', 'busybox:latest', 'three:1']);
    assert.equal((await ok(kiln(['images', '-q', '--filter', 'dangling=true']))).stdout, '');
    // Both stages' RUN images and the final stage's first COPY, beside busybox and the result.
    const all = (await ok(kiln(['images', '-a', '-q', '--no-trunc']))).stdout.trim().split('\n');
    assert.equal(new Set(all).size, 5, all.join(' '));
    const second = await ok(kiln(['build', '--progress', 'plain', '-t', 'three:1', context]));
    assert.equal((second.stderr.match(/CACHED/g) ?? []).length, 4, second.stderr);
    assert.equal((second.stderr.match(/DONE/g) ?? []).length, 0, second.stderr);
    assert.equal((await ok(kiln(['images', '-q', '--no-trunc', 'three:1']))).stdout.trim(), first.stdout.trim());
    // A build without a tag (here of a stage the first build made) gives a `<none>` result, which images lists, as BuildKit's.
    const stage = (await ok(kiln(['build', '-q', '--target', 'two', context]))).stdout.trim();
    assert.ok(all.includes(stage), stage);
    assert.equal((await ok(kiln(['images', '-q', '--no-trunc', '--filter', 'dangling=true']))).stdout.trim(), stage);
  });
});

describe('kiln build: cache, reproducibility, secrets', { skip }, () => {
  const project = (extra = ''): BuildCase => ({
    name: 'project',
    buildkit: false,
    files: { 'app/main.txt': 'main\n', 'app/lib.txt': 'lib\n', 'config.txt': 'config\n' },
    dockerfile: `FROM busybox\nRUN echo deps > /deps\nCOPY config.txt /etc/app/\nRUN cat /etc/app/config.txt > /configured\nCOPY app /app\nRUN ls /app > /listing\n${extra}`,
  });

  it('a second build of an unchanged project is all cache hits with the same image ID, and survives a new process', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext(project());
    // Outside the context, which it would change.
    const iidfile = join(await tempDir(), 'iid');
    const first = await ok(kiln(['build', '--progress', 'plain', '--iidfile', iidfile, '-t', 'p:1', context]));
    assert.equal((first.stderr.match(/CACHED/g) ?? []).length, 0);
    const second = await ok(kiln(['build', '--progress', 'plain', '-t', 'p:1', context]));
    assert.equal((second.stderr.match(/CACHED/g) ?? []).length, 5, second.stderr);
    assert.equal((second.stderr.match(/DONE/g) ?? []).length, 0, second.stderr);
    const quiet = await ok(kiln(['build', '-q', context]));
    assert.equal(quiet.stdout.trim(), (await readFile(iidfile, 'utf8')).trim());
  });

  it('changing one context file reruns only the steps from its COPY on', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext(project());
    await ok(kiln(['build', '-q', '-t', 'p:1', context]));
    await writeFile(join(context, 'app', 'lib.txt'), 'lib changed\n');
    const rebuilt = await ok(kiln(['build', '--progress', 'plain', '-t', 'p:2', context]));
    const lines = rebuilt.stderr.split('\n');
    const status = (step: string): string => {
      const id = lines.find((l) => l.includes(step))?.split(' ')[0];
      return lines.find((l) => l.startsWith(`${id} CACHED`) || l.startsWith(`${id} DONE`))?.split(' ')[1] ?? 'missing';
    };
    assert.deepEqual(
      ['RUN echo deps', 'COPY config.txt', 'RUN cat', 'COPY app', 'RUN ls'].map(status),
      ['CACHED', 'CACHED', 'CACHED', 'DONE', 'DONE'],
    );
    // An mtime change alone is not a change.
    await writeFile(join(context, 'config.txt'), 'config\n');
    const touched = await ok(kiln(['build', '--progress', 'plain', '-t', 'p:3', context]));
    assert.equal((touched.stderr.match(/CACHED/g) ?? []).length, 5, touched.stderr);
  });

  it('--cache-from a kiln-built image loaded into another store reuses its steps: nothing runs, same image ID', async () => {
    const first = await storeWithBusybox();
    const context = await writeContext(project());
    const id = (await ok(first.kiln(['build', '-q', '-t', 'p:1', context]))).stdout.trim();
    const archive = join(await tempDir(), 'p.tar');
    await ok(first.kiln(['save', '-o', archive, 'p:1']));
    const second = await storeWithBusybox();
    await ok(second.kiln(['load', '-i', archive]));
    const iidfile = join(await tempDir(), 'iid');
    const rebuilt = await ok(second.kiln(['build', '--progress', 'plain', '--cache-from', 'p:1', '--iidfile', iidfile, context]));
    assert.equal((rebuilt.stderr.match(/CACHED/g) ?? []).length, 5, rebuilt.stderr);
    assert.equal((rebuilt.stderr.match(/DONE/g) ?? []).length, 0, rebuilt.stderr);
    assert.equal((await readFile(iidfile, 'utf8')).trim(), id);
    // Without it, the other store runs every step.
    const third = await storeWithBusybox();
    const cold = await ok(third.kiln(['build', '--progress', 'plain', context]));
    assert.equal((cold.stderr.match(/CACHED/g) ?? []).length, 0);
  });

  it('--add-host, --network, --ulimit and --shm-size are a RUN step\'s cache key, as they are BuildKit\'s: a build without them runs the step again', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'add-host', buildkit: false, dockerfile: 'FROM busybox\nRUN grep -c db.example /etc/hosts > /count || true\n' });
    await ok(kiln(['build', '-q', '--add-host', 'db.example:10.1.2.3', '-t', 'hosts:with', context]));
    await ok(kiln(['build', '-q', '-t', 'hosts:without', context]));
    assert.equal(await fileText(kiln, 'hosts:with', '/count'), '1\n');
    assert.equal(await fileText(kiln, 'hosts:without', '/count'), '0\n');
    assert.match((await kiln(['build', '--add-host', 'db.example:nowhere', context])).stderr, /invalid --add-host "db.example:nowhere": use HOST:IP/);
    // So is --network: a RUN built without a network is not the one a build with the host's takes (a CI
    // job that checks a Dockerfile builds offline must not be answered from the cache of an online build).
    // What the step sees of the network: its resolv.conf (empty without one) and its interfaces (lo alone).
    const network = await writeContext({ name: 'network-key', buildkit: false, dockerfile: 'FROM busybox\nRUN (wc -c < /etc/resolv.conf; wc -l < /proc/net/dev) > /seen\n' });
    await ok(kiln(['build', '-q', '--network', 'none', '-t', 'net:none', network]));
    await ok(kiln(['build', '-q', '-t', 'net:host', network]));
    assert.equal(await fileText(kiln, 'net:none', '/seen'), '0\n3\n');
    assert.notEqual(await fileText(kiln, 'net:host', '/seen'), '0\n3\n');
    // And --ulimit: the step's rlimits, which BuildKit's exec op counts too.
    const ulimit = await writeContext({ name: 'ulimit-key', buildkit: false, dockerfile: 'FROM busybox\nRUN echo $(ulimit -n) $(ulimit -Hn) > /limits\n' });
    await ok(kiln(['build', '-q', '--ulimit', 'nofile=100:200', '-t', 'ulimit:with', ulimit]));
    await ok(kiln(['build', '-q', '-t', 'ulimit:without', ulimit]));
    assert.equal(await fileText(kiln, 'ulimit:with', '/limits'), '100 200\n');
    assert.notEqual(await fileText(kiln, 'ulimit:without', '/limits'), '100 200\n');
    assert.match((await kiln(['build', '--ulimit', 'files=1', ulimit])).stderr, /invalid argument "files=1" for "--ulimit" flag: invalid ulimit type: files/);
    // And --shm-size: the size of the step's /dev/shm (a tmpfs mount of BuildKit's exec op).
    const shm = await writeContext({ name: 'shm-size-key', buildkit: false, dockerfile: 'FROM busybox\nRUN grep " /dev/shm " /proc/mounts | grep -o "size=[0-9]*k" > /shm\n' });
    await ok(kiln(['build', '-q', '--shm-size', '128m', '-t', 'shm:with', shm]));
    await ok(kiln(['build', '-q', '-t', 'shm:without', shm]));
    assert.equal(await fileText(kiln, 'shm:with', '/shm'), 'size=131072k\n');
    assert.equal(await fileText(kiln, 'shm:without', '/shm'), 'size=65536k\n');
  });

  it('two clean builds with SOURCE_DATE_EPOCH give the same image ID', async () => {
    const ids: string[] = [];
    for (const how of ['environment', 'flag']) {
      const { kiln } = await storeWithBusybox();
      const context = await writeContext(project());
      const built = how === 'flag' ? kiln(['build', '-q', '--timestamp', '1700000000', context]) : kiln(['build', '-q', context], undefined, { SOURCE_DATE_EPOCH: '1700000000' });
      ids.push((await ok(built)).stdout.trim());
    }
    assert.match(ids[0] ?? '', /^sha256:[a-f0-9]{64}$/);
    assert.equal(ids[0], ids[1]);
  });

  it('a secret mounted in RUN appears in no blob of the store, no history and no cache key', async () => {
    const { root, kiln } = await storeWithBusybox();
    const secretValue = 'kiln-secret-value-31337';
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), secretValue);
    const context = await writeContext({
      name: 'secret',
      buildkit: false,
      dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=token wc -c < /run/secrets/token > /length && cp /run/secrets/token /dev/null\n',
    });
    await ok(kiln(['build', '-q', '--secret', `id=token,src=${join(dir, 'token')}`, '-t', 's:1', context]));
    assert.equal((await fileText(kiln, 's:1', '/length')).trim(), String(secretValue.length));
    const blobs = join(root, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) {
      assert.equal((await readFile(join(blobs, name))).includes(secretValue), false, `blob ${name} holds the secret`);
    }
    assert.equal((await readFile(join(root, 'kiln.db'))).includes(secretValue), false);
    const { files } = await buildAndRead(kiln, context, 's:1', ['--secret', `id=token,src=${join(dir, 'token')}`]);
    assert.equal(files.has('/run/secrets/token'), false);
  });

  it('--secret from the environment (env=, type=env, or an id naming a set variable): the RUN reads it, no blob, record or file outlives the build', async () => {
    const { root, kiln } = await storeWithBusybox();
    const secretValue = 'kiln-env-secret-4711';
    const context = await writeContext({
      name: 'env-secret',
      buildkit: false,
      dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=token --mount=type=secret,id=KILN_TEST_TOKEN,target=/t2 --mount=type=secret,id=typed,target=/t3 cat /run/secrets/token /t2 /t3 | wc -c > /length\n',
    });
    const env = { KILN_TEST_TOKEN: secretValue, KILN_OTHER: secretValue };
    const spooled = async (): Promise<string[]> => (await readdir('/dev/shm').catch(() => [] as string[])).filter((n) => n.startsWith('kiln-secrets-'));
    const before = await spooled();
    await ok(kiln(['build', '-q', '--secret', 'id=token,env=KILN_OTHER', '--secret', 'id=KILN_TEST_TOKEN', '--secret', 'id=typed,type=env,src=KILN_OTHER', '-t', 'es:1', context], undefined, env));
    assert.equal((await fileText(kiln, 'es:1', '/length')).trim(), String(secretValue.length * 3));
    assert.deepEqual(await spooled(), before, 'the secrets\' files are gone after the build');
    const blobs = join(root, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) assert.equal((await readFile(join(blobs, name))).includes(secretValue), false, `blob ${name} holds the secret`);
    assert.equal((await readFile(join(root, 'kiln.db'))).includes(secretValue), false);
    const unset = await kiln(['build', '--secret', 'id=token,env=KILN_UNSET_VARIABLE', context]);
    assert.equal(unset.code, 125);
    assert.match(unset.stderr, /^Error: --secret id=token: the environment variable KILN_UNSET_VARIABLE is not set/);
    assert.match((await kiln(['build', '--secret', 'id=token,mode=0400', context])).stderr, /unexpected key 'mode'/);
  });

  it('RUN --security=insecure runs privileged once --allow security.insecure grants it, and is its own cache key; attestation flags are accepted', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({
      name: 'insecure',
      buildkit: false,
      dockerfile: 'FROM busybox\nRUN --security=insecure mkdir /m && mount -t tmpfs none /m && grep CapEff /proc/self/status > /caps\nRUN grep CapEff /proc/self/status >> /caps\n',
    });
    const refused = await kiln(['build', context]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Dockerfile:2:\d+: RUN --security=insecure runs its command privileged .* add --allow security\.insecure/);
    const built = await ok(kiln(['build', '-q', '--allow', 'security.insecure', '--provenance=false', '--sbom=false', '-t', 'insecure:1', context]));
    assert.equal(built.stderr, '', 'turning attestations off is no warning');
    const [privileged, sandboxed] = (await fileText(kiln, 'insecure:1', '/caps')).trim().split('\n');
    assert.match(privileged ?? '', /^CapEff:\s+0*1?f{2,}[0-9a-f]*$/);
    assert.equal(sandboxed, 'CapEff:\t00000000a80425fb', 'the next RUN has Docker\'s default capabilities');
    const again = await ok(kiln(['build', '--progress', 'plain', '--allow', 'security.insecure', '--attest', 'type=provenance,mode=max', context]));
    assert.equal((again.stderr.match(/CACHED/g) ?? []).length, 2, again.stderr);
    assert.match(again.stderr, /\[Warning\] --attest type=provenance,mode=max: kiln attaches no attestations/);
    // The same command without --security=insecure is another step, which runs (and cannot mount) in the sandbox.
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nRUN mkdir /m && mount -t tmpfs none /m && grep CapEff /proc/self/status > /caps\n');
    const sandboxed2 = await kiln(['build', '--progress', 'plain', '--allow', 'security.insecure', context]);
    assert.equal(sandboxed2.code, 1);
    assert.doesNotMatch(sandboxed2.stderr, /CACHED/);
    assert.match((await kiln(['build', '--allow', 'device', context])).stderr, /invalid --allow "device"/);
  });

  it('independent stages run at the same time', async () => {
    const { kiln } = await storeWithBusybox();
    // Stage a can only finish when stage b has run: one after the other, a would wait out its 60 s.
    const context = await writeContext({
      name: 'parallel',
      buildkit: false,
      dockerfile: [
        'FROM busybox AS a',
        'RUN --mount=type=cache,target=/sync,id=parallel-test i=0; while [ ! -f /sync/b ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; test -f /sync/b && echo a > /a',
        'FROM busybox AS b',
        'RUN --mount=type=cache,target=/sync,id=parallel-test touch /sync/b && echo b > /b',
        'FROM busybox',
        'COPY --from=a /a /a',
        'COPY --from=b /b /b',
        '',
      ].join('\n'),
    });
    await ok(kiln(['build', '-q', '-t', 'par:1', context]));
    assert.equal(await fileText(kiln, 'par:1', '/a'), 'a\n');
  });

  it('cache mounts: sharing=locked gives a RUN the cache alone, sharing=private a directory of its own, kept for later', async () => {
    const { kiln } = await storeWithBusybox();
    // Two stages per mode run at once; each says whether the other came into its cache in 3 s.
    const stage = (name: string, other: string, sharing: string): string[] => [
      `FROM busybox AS ${name}`,
      `RUN --mount=type=cache,target=/c,id=modes-${sharing},sharing=${sharing} touch /c/in-${name}; echo run-${name} >> /c/runs; i=0; while [ ! -e /c/in-${other} ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; if [ -e /c/in-${other} ]; then echo overlap; else echo alone; fi > /seen; rm /c/in-${name}`,
    ];
    const context = await writeContext({
      name: 'sharing',
      buildkit: false,
      dockerfile: [
        ...stage('a', 'b', 'locked'),
        ...stage('b', 'a', 'locked'),
        ...stage('c', 'd', 'private'),
        ...stage('d', 'c', 'private'),
        'FROM busybox',
        ...['a', 'b', 'c', 'd'].map((name) => `COPY --from=${name} /seen /seen-${name}`),
        'RUN --mount=type=cache,target=/c,id=modes-locked,sharing=locked sort /c/runs > /locked-runs',
        'RUN --mount=type=cache,target=/c,id=modes-private,sharing=private cat /c/runs > /private-runs',
        '',
      ].join('\n'),
    });
    await ok(kiln(['build', '-q', '-t', 'sharing:1', context]));
    for (const name of ['a', 'b', 'c', 'd']) assert.equal(await fileText(kiln, 'sharing:1', `/seen-${name}`), 'alone\n', name);
    assert.equal(await fileText(kiln, 'sharing:1', '/locked-runs'), 'run-a\nrun-b\n', 'one directory, used in turn');
    assert.match(await fileText(kiln, 'sharing:1', '/private-runs'), /^run-[cd]\n$/, 'one of the two private directories, kept');
  });

  it('gives the platform ARGs (TARGETPLATFORM & co.) and proxy args, which stay out of the history', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'platform-args', buildkit: false, dockerfile: 'ARG TARGETARCH\nFROM busybox\nARG TARGETPLATFORM\nARG TARGETOS\nRUN echo "$TARGETPLATFORM $TARGETOS $HTTP_PROXY" > /platform\n' });
    await ok(kiln(['build', '-q', '-t', 'pa:1', '--build-arg', 'HTTP_PROXY=http://proxy.example:3128', context]));
    const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
    assert.equal(await fileText(kiln, 'pa:1', '/platform'), `linux/${arch} linux http://proxy.example:3128\n`);
    const history = (await ok(kiln(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'pa:1']))).stdout;
    assert.doesNotMatch(history, /proxy\.example/);
    assert.match(history, /TARGETPLATFORM=linux\//);
  });

  it('history names the intermediate images a build kept, and the base image, as the classic builder does', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'history-ids', buildkit: false, dockerfile: 'FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nLABEL step=three\n' });
    await ok(kiln(['build', '-q', '-t', 'hist:1', context]));
    const rows = (await ok(kiln(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}', 'hist:1']))).stdout.trimEnd().split('\n');
    const ids = rows.map((r) => r.split('|')[0] ?? '');
    const base = (await ok(kiln(['inspect', '--format', '{{.Id}}', 'busybox']))).stdout.trim();
    const baseRows = (await ok(kiln(['history', '-q', 'busybox']))).stdout.trimEnd().split('\n').length;
    assert.equal(rows.length, baseRows + 3);
    assert.equal(ids[0], (await ok(kiln(['inspect', '--format', '{{.Id}}', 'hist:1']))).stdout.trim(), 'the image itself on top');
    // Each step's image on its own row, distinct, each the parent of the one above.
    for (const [i, step] of [[1, 'echo two'], [2, 'echo one']] as const) {
      assert.match(ids[i] ?? '', /^sha256:[a-f0-9]{64}$/, `the row of ${step} has its intermediate image's ID`);
      assert.match(rows[i] ?? '', new RegExp(step));
      assert.equal((await ok(kiln(['inspect', '--format', '{{.Parent}}', ids[i - 1] ?? '']))).stdout.trim(), ids[i]);
    }
    assert.equal(ids[3], base, 'the base image names the row of its last history entry');
    assert.deepEqual(ids.slice(4), Array(baseRows - 1).fill('<missing>'), "the base's older rows stay <missing>");
  });

  it('builds only the stages the target needs', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'target', buildkit: false, dockerfile: 'FROM busybox AS broken\nRUN exit 1\nFROM busybox AS good\nRUN echo ok > /ok\nFROM broken\n' });
    await ok(kiln(['build', '-q', '--target', 'good', '-t', 't:1', context]));
    assert.equal(await fileText(kiln, 't:1', '/ok'), 'ok\n');
  });

  it('ADD downloads a URL (following redirects, mode 600, Last-Modified as mtime) and checks --checksum', async () => {
    const { kiln } = await storeWithBusybox();
    const body = 'downloaded\n';
    const server = createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: '/file.txt' }).end();
      else res.writeHead(200, { 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
      const context = await writeContext({ name: 'add-url', buildkit: false, dockerfile: `FROM busybox\nADD http://127.0.0.1:${port}/file.txt /web/\nADD --checksum=${digest} http://127.0.0.1:${port}/redirect /web/checked.txt\n` });
      const { files } = await buildAndRead(kiln, context, 'web:1');
      assert.equal(files.get('/web/file.txt')?.mode, '600');
      assert.equal(files.get('/web/checked.txt')?.content, createHash('sha256').update(body).digest('hex').slice(0, 12));
      assert.match((await ok(kiln(['run', '--rm', 'web:1', 'ls', '-l', '--full-time', '/web/file.txt']))).stdout, /2015-10-21 07:28:00/);
      const wrong = await writeContext({ name: 'add-url-bad', buildkit: false, dockerfile: `FROM busybox\nADD --checksum=sha256:${'0'.repeat(64)} http://127.0.0.1:${port}/file.txt /x\n` });
      const failed = await kiln(['build', wrong]);
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /but --checksum says sha256:0000/);
      // A URL that is none (a port that is no number) is the Dockerfile's error, on its line.
      const invalid = await writeContext({ name: 'add-url-invalid', buildkit: false, dockerfile: 'FROM busybox\nADD http://127.0.0.1:x/file.txt /x\n' });
      const refused = await kiln(['build', invalid]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /Dockerfile:2: ADD http:\/\/127\.0\.0\.1:x\/file\.txt \/x: http:\/\/127\.0\.0\.1:x\/file\.txt is not a valid URL\n/);
      assert.doesNotMatch(refused.stderr, /internal error|\n\s+at /);
    } finally {
      server.close();
    }
  });

  it('refuses the step that would give the image a 126th layer, on its line, before it runs (overlayfs cannot mount some 500)', async () => {
    const { kiln } = await storeWithBusybox();
    const steps = Array.from({ length: 130 }, (_, i) => `WORKDIR /w${i + 1}`);
    const context = await writeContext({ name: 'deep', buildkit: false, dockerfile: ['FROM busybox', ...steps, 'RUN touch /never', ''].join('\n') });
    const result = await kiln(['build', '--progress', 'plain', context]);
    assert.equal(result.code, 1);
    // busybox has one layer: the 125th WORKDIR (line 126) would make the 126th.
    assert.match(result.stderr, /\nError: \S*Dockerfile:126: WORKDIR \/w125: the image would have 126 layers, more than the 125 an image can have \(max depth exceeded\)\n$/);
    assert.doesNotMatch(result.stderr, /RUN touch \/never|internal error/);
  });

  it('--no-cache-filter rebuilds only the named stage', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'filter', buildkit: false, dockerfile: 'FROM busybox AS deps\nRUN echo deps > /deps\nFROM busybox\nCOPY --from=deps /deps /deps\nRUN echo final > /final\n' });
    await ok(kiln(['build', '-q', context]));
    const again = await ok(kiln(['build', '--progress', 'plain', '--no-cache-filter', 'deps', context]));
    assert.match(again.stderr, /\[deps 1\/1\] RUN echo deps > \/deps\n#\d+ DONE/);
  });

  it('--progress tty redraws a BuildKit-style display whose last frame shows every step and FINISHED', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'tty', buildkit: false, dockerfile: 'FROM busybox\nRUN echo hi\nENV A=1\n' });
    const result = await ok(kiln(['build', '--progress', 'tty', context]));
    const frames = result.stderr.split('[+] Building');
    const last = frames.at(-1) ?? '';
    assert.ok(frames.length > 2, 'the display is redrawn');
    assert.match(last, /^ \d+\.\ds \(2\/2\) FINISHED\n/);
    assert.match(last, / => \[stage-0 1\/2\] RUN echo hi +\d+\.\ds\n/);
    assert.match(last, / => \[stage-0 2\/2\] ENV A=1 +\d+\.\ds\n/);
  });

  it('--squash makes the build\'s layers one, with the same root filesystem and a merge history entry', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'squash', buildkit: false, files: { 'a.txt': 'a\n' }, dockerfile: 'FROM busybox\nCOPY a.txt /a.txt\nRUN echo b > /b && rm /etc/group\nRUN rm /a.txt && mkdir /d && echo c > /d/c\nENV X=1\n' });
    const plain = await buildAndRead(kiln, context, 'sq:plain');
    const squashed = await buildAndRead(kiln, context, 'sq:squashed', ['--squash']);
    assert.equal(plain.config.rootfs.diff_ids.length, 4);
    assert.equal(squashed.config.rootfs.diff_ids.length, 2);
    assert.equal(squashed.config.rootfs.diff_ids[0], plain.config.rootfs.diff_ids[0]);
    assert.deepEqual([...squashed.files.entries()].sort(), [...plain.files.entries()].sort());
    assert.equal(squashed.files.has('/etc/group'), false);
    assert.deepEqual(squashed.config.config?.Env, plain.config.config?.Env);
    const history = squashed.config.history ?? [];
    assert.match(history.at(-1)?.comment ?? '', /^merge sha256:[a-f0-9]{64} to sha256:[a-f0-9]{64}$/);
    assert.equal(history.filter((h) => !h.empty_layer).length, 2);
  });

  it('reads the Dockerfile from stdin with -f -', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await tempDir();
    await ok(kiln(['build', '-q', '-f', '-', '-t', 'stdin:1', context], 'FROM busybox\nRUN echo stdin > /stdin\n'));
    assert.equal(await fileText(kiln, 'stdin:1', '/stdin'), 'stdin\n');
  });

  it('--metadata-file: buildx\'s build result metadata (the config and manifest digests, the names in full); {} for a build with -o', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'metadata', buildkit: false, dockerfile: 'FROM busybox\nRUN echo x > /x\n' });
    const dir = await tempDir();
    const id = (await ok(kiln(['build', '-q', '-t', 'meta:1', '-t', 'registry.example:5000/a/b', '--metadata-file', join(dir, 'meta.json'), context]))).stdout.trim();
    const metadata = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
    const descriptor = metadata['containerimage.descriptor'] as { mediaType: string; digest: string; size: number };
    assert.deepEqual(Object.keys(metadata), ['containerimage.config.digest', 'containerimage.descriptor', 'containerimage.digest', 'image.name']);
    assert.equal(metadata['containerimage.config.digest'], id);
    assert.equal(metadata['containerimage.digest'], descriptor.digest);
    assert.equal(metadata['image.name'], 'docker.io/library/meta:1,registry.example:5000/a/b:latest');
    // The manifest is the one save writes.
    await ok(kiln(['save', '-o', join(dir, 'meta.tar'), 'meta:1']));
    const index = (await readEntries([await readFile(join(dir, 'meta.tar'))])).find((entry) => entry.header.path === 'index.json');
    const manifest = (JSON.parse(index?.body.toString() ?? '{}') as { manifests?: { digest: string; size: number; mediaType: string }[] }).manifests?.[0];
    assert.deepEqual({ digest: manifest?.digest, size: manifest?.size, mediaType: manifest?.mediaType }, { digest: descriptor.digest, size: descriptor.size, mediaType: descriptor.mediaType });
    await ok(kiln(['build', '-q', '-o', join(dir, 'out'), '--metadata-file', join(dir, 'none.json'), context]));
    assert.equal(await readFile(join(dir, 'none.json'), 'utf8'), '{}\n');
  });

  it('--ssh: RUN --mount=type=ssh reaches an agent (the caller\'s, or one of kiln\'s holding key files) through a socket of its own, as BuildKit\'s', { skip: sshTools() }, async () => {
    const { kiln } = await storeWithBusybox();
    const dir = await tempDir('kiln-agent-test-');
    await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-test', '-f', join(dir, 'key')]);
    const fingerprint = (await execFileAsync('ssh-keygen', ['-l', '-f', join(dir, 'key')])).stdout.trim().split(' ')[1] ?? '';
    // The caller's agent, holding the key.
    const socket = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise((resolve) => agent.stdout.once('data', resolve));
      await execFileAsync('ssh-add', ['-q', join(dir, 'key')], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      // ssh-add and the libraries it needs, from this machine, into the image.
      const context = await writeContext({
        name: 'ssh',
        buildkit: false,
        dockerfile: [
          'FROM busybox',
          'COPY root/ /',
          'RUN --mount=type=ssh ssh-add -l > /keys; echo "$SSH_AUTH_SOCK" > /sock; stat -c \'%a %u:%g %F\' "$SSH_AUTH_SOCK" >> /sock',
          'RUN --mount=type=ssh,id=other,target=/tmp/agent,mode=0660,uid=5,gid=6,required ssh-add -l > /other; stat -c \'%a %u:%g %F\' /tmp/agent >> /other; echo "$SSH_AUTH_SOCK" >> /other',
          '',
        ].join('\n'),
      });
      const ldd = (await execFileAsync('ldd', ['/usr/bin/ssh-add'])).stdout;
      for (const file of ['/usr/bin/ssh-add', ...(ldd.match(/\/\S+/g) ?? [])]) {
        await mkdir(join(context, 'root', dirname(file)), { recursive: true });
        await copyFile(file, join(context, 'root', file));
      }
      await ok(kiln(['build', '-q', '-t', 'ssh:1', '--ssh', 'default', '--ssh', `other=${join(dir, 'key')}`, context], undefined, { SSH_AUTH_SOCK: socket }));
      assert.match(await fileText(kiln, 'ssh:1', '/keys'), new RegExp(`^256 ${fingerprint.replace(/[+/]/g, '\\$&')} kiln-test \\(ED25519\\)\n$`));
      // BuildKit's socket: /run/buildkit/ssh_agent.0, root's, 0600; SSH_AUTH_SOCK names the first ssh mount.
      assert.equal(await fileText(kiln, 'ssh:1', '/sock'), '/run/buildkit/ssh_agent.0\n600 0:0 socket\n');
      assert.match(await fileText(kiln, 'ssh:1', '/other'), /^256 \S+ kiln-test \(ED25519\)\n660 5:6 socket\n\/tmp\/agent\n$/);
      // The agent kiln started for the key file is gone with the build.
      assert.equal((await execFileAsync('pgrep', ['-f', 'ssh-agent -D -a /tmp/kiln-ssh-']).catch(() => ({ stdout: '' }))).stdout, '');
      for (const [args, env, dockerfile, message] of [
        [[], {}, 'FROM busybox\nRUN --mount=type=ssh,required true\n', /ssh agent default is required; pass it with --ssh default/],
        [['--ssh', 'default'], { SSH_AUTH_SOCK: '' }, 'FROM busybox\n', /--ssh default: SSH_AUTH_SOCK is not set/],
        [['--ssh', `default=${join(dir, 'nothing')}`], {}, 'FROM busybox\n', /is no agent socket and no key file/],
        [[], {}, 'FROM busybox\nRUN --mount=type=ssh,source=/x true\n', /ssh does not support source/],
      ] as const) {
        const result = await kiln(['build', ...args, await writeContext({ name: 'ssh-error', buildkit: false, dockerfile })], undefined, env);
        assert.notEqual(result.code, 0, dockerfile);
        assert.match(result.stderr, message);
      }
      // Without --ssh, an ssh mount that is not required is left out: the command finds no agent.
      await ok(kiln(['build', '-q', '-t', 'ssh:2', await writeContext({ name: 'ssh-none', buildkit: false, dockerfile: 'FROM busybox\nRUN --mount=type=ssh test ! -e "$SSH_AUTH_SOCK" && echo none > /none\n' })]));
      assert.equal(await fileText(kiln, 'ssh:2', '/none'), 'none\n');
    } finally {
      agent.kill();
    }
  });

  it('--build-context: a directory COPY --from and RUN --mount from= read (its .dockerignore applied, its files in the cache key), and images that FROM and stages of that name become', async () => {
    const { kiln } = await storeWithBusybox();
    // (writeContext writes a Dockerfile in it too.)
    const docs = await writeContext({ name: 'docs', buildkit: false, dockerfile: '', files: { 'a.md': 'a\n', 'sub/b.md': 'b\n', 'draft.md': 'draft\n', '.dockerignore': 'draft.md\n' } });
    const context = await writeContext({
      name: 'named-contexts',
      buildkit: false,
      files: { 'main.txt': 'main\n' },
      // `alpine` is not in the store: the named context stands for it (FROM alpine:latest is the name alpine),
      // and the stage `tools` is replaced by the image the context names.
      dockerfile: 'FROM busybox AS tools\nRUN echo from the stage > /tool\nFROM alpine:latest\nCOPY --from=docs . /docs/\nRUN --mount=from=docs,target=/d ls -R /d > /mounted\nCOPY --from=tools /bin/busybox /from-tools\nCOPY main.txt /\n',
    });
    const contexts = ['--build-context', `docs=${docs}`, '--build-context', 'alpine=docker-image://busybox:lab', '--build-context', 'tools=docker-image://busybox'];
    await ok(kiln(['build', '-q', '-t', 'named:1', ...contexts, context]));
    assert.equal((await ok(kiln(['run', '--rm', 'named:1', 'sh', '-c', 'ls -R /docs; cat /mounted /main.txt; test -f /from-tools && echo tools from the image']))).stdout, '/docs:\nDockerfile\na.md\nsub\n\n/docs/sub:\nb.md\n/d:\nDockerfile\na.md\nsub\n\n/d/sub:\nb.md\nmain\ntools from the image\n');
    // A file of the named directory is part of the cache key: unchanged, every step is cached; changed, its steps run again.
    assert.equal(((await ok(kiln(['build', '--progress', 'plain', '-t', 'named:1', ...contexts, context]))).stderr.match(/CACHED/g) ?? []).length, 4);
    await writeFile(join(docs, 'a.md'), 'changed\n');
    await ok(kiln(['build', '-q', '-t', 'named:2', ...contexts, context]));
    assert.equal(await fileText(kiln, 'named:2', '/docs/a.md'), 'changed\n');
    // docker-image://scratch is the empty image.
    const scratch = await writeContext({ name: 'named-scratch', buildkit: false, dockerfile: 'FROM base\nCOPY main.txt /\n', files: { 'main.txt': 'main\n' } });
    const built = await buildAndRead(kiln, scratch, 'named:3', ['--build-context', 'base=docker-image://scratch']);
    assert.deepEqual([...built.files.keys()], ['/main.txt']);
    for (const [args, dockerfile, message] of [
      [[`docs=${docs}`], 'FROM docs\n', /FROM docs: a build context of files \(--build-context docs=DIR\) cannot be a stage's base in kiln; read it with COPY --from=docs/],
      [['empty=docker-image://scratch'], 'FROM busybox\nCOPY --from=empty / /x\n', /--from=empty names an empty build context \(docker-image:\/\/scratch\): there is nothing to read from it/],
      [['src=https://example.com/src.tar'], 'FROM busybox\n', /--build-context src=https:\/\/example.com\/src.tar: https contexts are not supported; give a local directory or docker-image:\/\/REF/],
      [['Bad=/tmp'], 'FROM busybox\n', /invalid --build-context "Bad=\/tmp": use NAME=DIR or NAME=docker-image:\/\/REF/],
      [['missing=/nonexistent/dir'], 'FROM busybox\n', /the build context \/nonexistent\/dir does not exist/],
    ] as const) {
      const failing = await writeContext({ name: 'named-error', buildkit: false, dockerfile });
      const result = await kiln(['build', ...args.flatMap((a) => ['--build-context', a]), failing]);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message);
    }
  });
});

describe('kiln build -o: the result\'s files instead of an image', { skip }, () => {
  it('writes them where asked, names no image, and refuses outputs it cannot write, as the docker CLI words it', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'output', buildkit: false, dockerfile: 'FROM busybox AS build\nRUN mkdir /out && echo made > /out/made\nFROM scratch\nCOPY --from=build /out /\n' });
    const out = await tempDir();
    // -q prints the ID of the image named, and there is none: an empty line, as BuildKit's.
    assert.equal((await ok(kiln(['build', '-q', '-t', 'not-named:1', '-o', join(out, 'dir'), context]))).stdout, '\n');
    assert.equal(await readFile(join(out, 'dir', 'made'), 'utf8'), 'made\n');
    assert.equal((await stat(join(out, 'dir'))).mode & 0o777, 0o700);
    assert.match((await kiln(['inspect', 'not-named:1'])).stderr, /No such object: not-named:1/);
    // An image with no layers writes an empty directory.
    const empty = await writeContext({ name: 'output-empty', buildkit: false, dockerfile: 'FROM scratch\nLABEL nothing=here\n' });
    await ok(kiln(['build', '-q', '-o', join(out, 'empty'), empty]));
    assert.deepEqual(await readdir(join(out, 'empty')), []);
    // `-` is a tar on stdout, and nothing else there.
    const tar = await ok(kiln(['build', '-q', '-o', '-', context]));
    assert.deepEqual((await readEntries([tar.stdoutBytes])).map((e) => `${e.header.path} ${e.body.toString()}`), ['made made\n']);
    for (const [spec, message] of [
      ['type=wasm', /invalid --output "type=wasm": the wasm exporter is not supported/],
      ['type=local', /dest is required for local output/],
      ['dest=somewhere', /type is required for output/],
      [`type=tar,dest=${out}`, /destination file is a directory/],
    ] as const) {
      const result = await kiln(['build', '-o', spec, context]);
      assert.notEqual(result.code, 0, spec);
      assert.match(result.stderr, message);
    }
    assert.match((await kiln(['build', '-o', join(out, 'a'), '-o', join(out, 'b'), context])).stderr, /currently only single export is supported/);
    // cacheonly: the build runs and leaves its cache, names nothing and writes nothing.
    const cacheOnly = await writeContext({ name: 'output-cacheonly', buildkit: false, dockerfile: 'FROM busybox\nRUN echo cached-only > /c\n' });
    const before = (await ok(kiln(['images', '-q']))).stdout;
    assert.equal((await ok(kiln(['build', '-q', '-o', 'type=cacheonly', cacheOnly]))).stdout, '\n');
    assert.equal((await ok(kiln(['images', '-q']))).stdout, before);
    assert.match((await ok(kiln(['build', '--progress', 'plain', cacheOnly]))).stderr, /#\d+ CACHED/);
  });
});

describe('kiln build: errors name the file and line and say what to do', { skip }, () => {
  it('says a COPY --from source whose name is too long for a file is not there (it was an internal error)', async () => {
    const { kiln } = await storeWithBusybox();
    const long = `/e${'t'.repeat(300)}`;
    const context = await writeContext({ name: 'long-source', buildkit: false, dockerfile: `FROM busybox AS a\nRUN echo x > /x\nFROM busybox\nCOPY --from=a ${long} /x\n` });
    const result = await kiln(['build', '--network', 'none', context]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`Dockerfile:4: COPY --from=a ${long} /x: "${long}" not found in the source image`));
    assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
  });

  it('suggests the closest instruction for a typo', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'typo', buildkit: false, dockerfile: 'FROM busybox\nCOPPY a b\n' });
    const result = await kiln(['build', context]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Dockerfile:2:1: unknown instruction: COPPY\n {2}2 \| COPPY a b\n {4}\| \^\ndid you mean COPY\?/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('shows a failed RUN step with its exit code and last output lines', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'fail', buildkit: false, dockerfile: 'FROM busybox\nRUN echo about to fail; echo on stderr >&2; exit 3\n' });
    const result = await kiln(['build', context]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Dockerfile:2: RUN echo about to fail.*returned a non-zero code: 3/);
    // stdout and stderr are separate pipes: their lines may come in either order.
    const tail = result.stderr.split('last 2 lines of its output:\n')[1] ?? '';
    assert.deepEqual(tail.split('\n').filter(Boolean).sort(), ['  about to fail', '  on stderr']);
  });

  it('a RUN that fails while the steps before it are still being stored leaves them stored and cached, and a clean store', async () => {
    const { kiln } = await storeWithBusybox();
    const steps = 'FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n';
    const failing = await writeContext({ name: 'fail-after', buildkit: false, dockerfile: `${steps}RUN exit 5\n` });
    assert.match((await kiln(['build', '--progress', 'plain', failing])).stderr, /returned a non-zero code: 5/);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /: clean$/m);
    const fixed = await writeContext({ name: 'fixed-after', buildkit: false, dockerfile: `${steps}RUN cat /one /two > /three\n` });
    const built = await ok(kiln(['build', '--progress', 'plain', '-t', 'after:1', fixed]));
    assert.equal(built.stderr.match(/CACHED/g)?.length, 2, built.stderr);
    assert.equal(await fileText(kiln, 'after:1', '/three'), 'one\ntwo\n');
  });

  for (const runtime of ['runc', 'crun']) {
    it(`${runtime}: a RUN whose command is missing fails with 127, one that cannot be executed with 126, as BuildKit's do`, async () => {
      const { kiln } = await storeWithBusybox();
      const missing = await writeContext({ name: `missing-${runtime}`, buildkit: false, dockerfile: 'FROM busybox\nRUN ["/no-such-command"]\n' });
      const result = await kiln(['build', '-q', '--runtime', runtime, missing]);
      assert.match(result.stderr, /returned a non-zero code: 127/);
      const notExecutable = await writeContext({ name: `noexec-${runtime}`, buildkit: false, dockerfile: 'FROM busybox\nRUN ["/etc/passwd"]\n' });
      assert.match((await kiln(['build', '-q', '--runtime', runtime, notExecutable])).stderr, /returned a non-zero code: 126/);
    });
  }

  it('keeps the whole output of a failed step in a file only root reads, under the store, until system prune', async () => {
    const { root, kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'long', buildkit: false, dockerfile: 'FROM busybox\nRUN seq 1 100; exit 1\n' });
    const result = await kiln(['build', '-q', context]);
    const file = /its whole output is in (\S+):/.exec(result.stderr)?.[1];
    assert.ok(file, result.stderr);
    assert.equal(await readFile(file, 'utf8'), Array.from({ length: 100 }, (_v, i) => `${i + 1}\n`).join(''));
    assert.match(result.stderr, / {2}81\n[\s\S]* {2}100\n$/);
    assert.equal(dirname(file), join(root, 'step-logs'));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(file))).mode & 0o777, 0o700);
    await ok(kiln(['system', 'prune', '-f']));
    assert.equal(existsSync(dirname(file)), false);
  });

  it("masks a RUN's secrets in its output: on the screen, in the error and in the kept log", async () => {
    const { kiln } = await storeWithBusybox();
    const dir = await tempDir();
    const secretValue = 'hunter2-kiln-secret';
    await writeFile(join(dir, 'token'), `${secretValue}\n`);
    const context = await writeContext({
      name: 'leak',
      buildkit: false,
      // The value is printed whole, inside a line, and split over two writes; then the step fails.
      dockerfile: "FROM busybox\nRUN --mount=type=secret,id=token seq 1 30; cat /run/secrets/token; echo \"token=$(cat /run/secrets/token)!\"; printf hunter2-; sleep 0.2; printf 'kiln-secret\\n'; exit 1\n",
    });
    const result = await kiln(['build', '--progress', 'plain', '--secret', `id=token,src=${join(dir, 'token')}`, context]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.includes(secretValue), false, result.stderr);
    assert.match(result.stderr, /token=\*\*\*\*!/);
    const file = /its whole output is in (\S+):/.exec(result.stderr)?.[1];
    assert.ok(file, result.stderr);
    const kept = await readFile(file, 'utf8');
    assert.equal(kept.includes(secretValue), false, kept);
    assert.match(kept, /^\*\*\*\*$/m);
  });

  it('names the .dockerignore rule that hid a missing COPY source', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'ignored', buildkit: false, files: { 'secret.txt': 's', '.dockerignore': '*.txt\n' }, dockerfile: 'FROM busybox\nCOPY secret.txt /\n' });
    const result = await kiln(['build', context]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /"secret.txt" not found in the build context \(it is excluded by the rule "\*\.txt" in .*\.dockerignore\)/);
  });

  it('refuses to COPY a file whose name starts with .wh. (a layer would take it for a whiteout), unless .dockerignore leaves it out', async () => {
    const { kiln } = await storeWithBusybox();
    const files = { 'keep.txt': 'k', 'dir/.wh.keep.txt': 'not a whiteout' };
    const context = await writeContext({ name: 'wh', buildkit: false, files, dockerfile: 'FROM busybox\nCOPY . /copied/\n' });
    const result = await kiln(['build', context]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Dockerfile:2: COPY.*cannot copy "dir\/\.wh\.keep\.txt": names that start with \.wh\. mark deletions in image layers/);
    const ignored = await writeContext({ name: 'wh-ignored', buildkit: false, files: { ...files, '.dockerignore': '**/.wh.*\n' }, dockerfile: 'FROM busybox\nCOPY . /copied/\n' });
    await ok(kiln(['build', '-q', '-t', 'wh:1', ignored]));
  });

  it('never reads or writes outside the context and the image: `..`, symlinks out of the context, symlinks in the image', async () => {
    const { kiln } = await storeWithBusybox();
    const outside = await tempDir('kiln-outside-');
    await writeFile(join(outside, 'secret'), 'host secret');
    const context = await writeContext({
      name: 'hostile',
      buildkit: false,
      files: { 'a.txt': 'a', 'escape': { symlink: join(outside, 'secret') }, 'climb': { symlink: '../../../../../../' } },
      dockerfile: `FROM busybox\nRUN ln -s ${outside} /evil && ln -s ../../../../${outside} /evil2\nCOPY a.txt /evil/\nCOPY a.txt /evil2/planted\nCOPY a.txt ../../../../../../../tmp/\n`,
    });
    await ok(kiln(['build', '-q', '-t', 'hostile:1', context]));
    assert.deepEqual(await readdir(outside), ['secret']);
    const { files } = await buildAndRead(kiln, context, 'hostile:1');
    assert.equal(files.get(`${outside}/a.txt`)?.type, 'file');
    assert.equal(files.get(`${outside}/planted`)?.type, 'file');
    assert.equal(files.get('/tmp/a.txt')?.type, 'file');
    for (const source of ['escape', 'climb/etc/passwd', '../../../../etc/passwd']) {
      await writeFile(join(context, 'Dockerfile'), `FROM busybox\nCOPY ${source} /stolen\n`);
      const result = await kiln(['build', context]);
      assert.equal(result.code, 1, source);
      assert.match(result.stderr, /not (found )?in the build context/, source);
    }
  });

  it('refuses a foreign platform and unknown flags clearly', async () => {
    const { kiln } = await storeWithBusybox();
    const context = await writeContext({ name: 'platform', buildkit: false, dockerfile: 'FROM busybox\nCOPY --bogus=1 a b\n' });
    const platform = await kiln(['build', '--platform', 'linux/s390x', context]);
    assert.match(platform.stderr, /kiln builds only for this machine's platform/);
    const flag = await kiln(['build', context]);
    assert.match(flag.stderr, /Dockerfile:2:6: unknown flag: --bogus \(COPY takes --from, --chown[^\n]*\n {2}2 \| COPY --bogus=1 a b\n {4}\| {6}\^/);
    // A context that is a file, or none: that is what is wrong, not its Dockerfile (no internal error).
    const file = await kiln(['build', join(context, 'Dockerfile')]);
    assert.deepEqual([file.code, file.stderr], [125, `Error: the build context ${join(context, 'Dockerfile')} is not a directory: give the directory that holds the Dockerfile and the files it copies (unpack an archive first)\n`]);
    const none = await kiln(['build', join(context, 'nothing')]);
    assert.deepEqual([none.code, none.stderr], [1, `Error: the build context ${join(context, 'nothing')} does not exist\n`]);
  });
});
