import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newKiln, ok } from '../helpers/kiln.js';
import { fixturesDir, repoRoot } from '../helpers/paths.js';

const BUSYBOX = join(fixturesDir, 'busybox-docker20-save.tar');
const WHITEOUTS = join(fixturesDir, 'whiteouts-docker20-save.tar');
const BUSYBOX_ID = 'sha256:6ecc29ffc19e62d3521d74c3aa3a3dd53dccadb0ceb6d59fedd32486666a0c62';

describe('kiln CLI speaks Docker\'s image verbs', () => {
  it('images: the default table, -q, --no-trunc, --digests, filters and templates', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', WHITEOUTS]));
    await ok(kiln(['tag', 'busybox:lab', 'localhost:5000/team/bb:v1']));
    const table = (await ok(kiln(['images']))).stdout.split('\n');
    assert.match(table[0] as string, /^REPOSITORY {15}TAG {7}IMAGE ID {7}CREATED +SIZE$/);
    assert.match(table[1] as string, /^whiteouts {16}lab {7}0762feae08f0 {3}\S.* ago +1\.99MB$/);
    assert.equal(table.length, 5);
    assert.equal((await ok(kiln(['images', '-q']))).stdout, '0762feae08f0\n6ecc29ffc19e\n6ecc29ffc19e\n');
    assert.equal((await ok(kiln(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}', '--no-trunc', 'busybox']))).stdout, `busybox:lab ${BUSYBOX_ID} 1.99MB\n`);
    assert.equal((await ok(kiln(['images', '-f', 'reference=localhost:5000/*/*', '--format', '{{.Repository}}']))).stdout, 'localhost:5000/team/bb\n');
    assert.equal((await ok(kiln(['images', '-f', 'dangling=true', '-q']))).stdout, '');
    assert.equal((await ok(kiln(['images', '-f', `before=whiteouts:lab`, '--format', '{{.Tag}}']))).stdout, 'lab\nv1\n');
    assert.equal((await ok(kiln(['images', '-f', `since=busybox:lab`, '--format', '{{.Repository}}']))).stdout, 'whiteouts\n');
    const digests = (await ok(kiln(['images', '--digests', '--format', 'table {{.Repository}}\t{{.Digest}}', 'whiteouts']))).stdout;
    assert.equal(digests, 'REPOSITORY   DIGEST\nwhiteouts    <none>\n');
    const json = JSON.parse((await ok(kiln(['images', '--format', 'json', 'whiteouts']))).stdout) as Record<string, string>;
    assert.equal(json.ID, '0762feae08f0');
    assert.equal(json.Tag, 'lab');
    const bad = await kiln(['images', '-f', 'colour=red']);
    assert.equal(bad.code, 125);
    assert.equal(bad.stderr, "Error: invalid filter 'colour'\n");
  });

  it('rmi untags, then deletes with the layers nothing else uses, and refuses ambiguous IDs', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', WHITEOUTS]));
    await ok(kiln(['tag', 'busybox:lab', 'other/bb:1']));
    const conflict = await kiln(['rmi', '6ecc29ffc19e']);
    assert.equal(conflict.code, 1);
    assert.equal(conflict.stderr, 'Error: conflict: unable to delete 6ecc29ffc19e (must be forced) - image is referenced in multiple repositories\n');
    assert.equal((await ok(kiln(['rmi', 'other/bb:1']))).stdout, 'Untagged: other/bb:1\n');
    // The busybox layer is shared with whiteouts, so only the image goes.
    assert.equal((await ok(kiln(['rmi', 'busybox:lab']))).stdout, `Untagged: busybox:lab\nDeleted: ${BUSYBOX_ID}\n`);
    const whiteouts = (await ok(kiln(['rmi', 'whiteouts:lab']))).stdout.split('\n');
    assert.equal(whiteouts[0], 'Untagged: whiteouts:lab');
    assert.equal(whiteouts.filter((l) => l.startsWith('Deleted: ')).length, 4, 'the image and its three chain IDs');
    assert.equal(whiteouts.at(-2), 'Deleted: sha256:3d4218ba55fb3ae9cc2f557341f0b8504531e0bbf955b5007445449f8baf2c91');
    const missing = await kiln(['rmi', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error: No such image: nope\n');
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^0 blobs verified, 0 images, 0 names: clean\n$/);
  });

  it('history, inspect and import -c', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', WHITEOUTS]));
    const history = (await ok(kiln(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Size}}', 'whiteouts:lab']))).stdout.split('\n');
    assert.equal(history[0], 'sha256:0762feae08f0d91d3829c5818de04335fde708c65aecef4d5dc3863ef6e5409c|/bin/sh -c #(nop)  CMD ["cat" "/d/sub/c"]|0B');
    assert.equal(history[6], '<missing>||1.99MB');
    const truncated = (await ok(kiln(['history', '--format', '{{.CreatedBy}}', 'whiteouts:lab']))).stdout.split('\n');
    assert.equal(truncated[4], '/bin/sh -c rm /d/gone && rm -rf /d/sub && mk…');
    assert.equal((await ok(kiln(['history', '-q', 'whiteouts:lab']))).stdout.split('\n')[0], '0762feae08f0');
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Env 1}} {{len .RootFS.Layers}}', 'whiteouts:lab']))).stdout, '1000 /d HELLO=world 3\n');
    const imported = (await ok(kiln(['import', '-c', 'ENTRYPOINT ["/bin/sh"]', '-c', 'EXPOSE 8080', '-c', 'LABEL tier=base', '--platform', 'linux/arm64/v8', '-', 'imported:1'], await import('node:fs/promises').then((fs) => fs.readFile(join(fixturesDir, 'busybox-rootfs.tar')))))).stdout.trim();
    const [inspect] = JSON.parse((await ok(kiln(['inspect', imported]))).stdout) as { RepoTags: string[]; Architecture: string; Variant: string; Comment: string; Config: { Entrypoint: string[]; ExposedPorts: object; Labels: object } }[];
    assert.deepEqual(inspect?.RepoTags, ['imported:1']);
    assert.deepEqual([inspect?.Architecture, inspect?.Variant, inspect?.Comment], ['arm64', 'v8', 'Imported from -']);
    assert.deepEqual(inspect?.Config.Entrypoint, ['/bin/sh']);
    assert.deepEqual(inspect?.Config.ExposedPorts, { '8080/tcp': {} });
    assert.deepEqual(inspect?.Config.Labels, { tier: 'base' });
    assert.equal((await ok(kiln(['images', '-f', 'label=tier=base', '--format', '{{.Repository}}']))).stdout, 'imported\n');
    const badChange = await kiln(['import', '-c', 'RUN true', join(fixturesDir, 'busybox-rootfs.tar')]);
    assert.equal(badChange.code, 125);
    assert.match(badChange.stderr, /^Error: change "RUN true": RUN is not a valid change command/);
  });

  it('prune, system df and usage errors', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', join(fixturesDir, 'whiteouts-oci-layout')]));
    await ok(kiln(['load', '-i', WHITEOUTS])); // takes the whiteouts:lab name: the OCI copy becomes dangling
    assert.equal((await ok(kiln(['images', '-f', 'dangling=true', '--format', '{{.Repository}}:{{.Tag}}']))).stdout, '<none>:<none>\n');
    const df = (await ok(kiln(['system', 'df']))).stdout.split('\n');
    assert.match(df[0] as string, /^TYPE {12}TOTAL {5}ACTIVE {4}SIZE {6}RECLAIMABLE$/);
    assert.match(df[1] as string, /^Images {10}3 {9}0 {9}\S+MB +\S+MB \(100%\)$/);
    const declined = await kiln(['image', 'prune'], 'n\n');
    assert.match(declined.stdout, /WARNING! This will remove all dangling images\.\nAre you sure you want to continue\? \[y\/N\] $/);
    assert.equal((await ok(kiln(['images', '-a', '-q']))).stdout.split('\n').length, 4);
    const pruned = (await ok(kiln(['image', 'prune', '-f']))).stdout;
    assert.match(pruned, /^Deleted Images:\ndeleted: sha256:3b9f757f1dad[a-f0-9]{52}\n(deleted: sha256:[a-f0-9]{64}\n)*\nTotal reclaimed space: \S+B\n$/);
    assert.equal((await ok(kiln(['images', '-a', '-q']))).stdout.split('\n').length, 3);
    assert.equal((await kiln(['images', '--bogus'])).code, 125);
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^\d+ blobs verified, 2 images, 2 names: clean\n$/);
  });

  it('--version and version, with a template, as docker prints them', async () => {
    const { kiln } = await newKiln();
    const { version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await ok(kiln(['--version']))).stdout, `kiln version ${version}\n`);
    assert.equal((await ok(kiln(['-v']))).stdout, `kiln version ${version}\n`);
    const lines = (await ok(kiln(['version']))).stdout.split('\n');
    // With ISA-L's headers installed (as setup.sh does), npm ci must have built native/.
    const gzip = existsSync('/usr/include/isa-l/igzip_lib.h') ? 'ISA-L (native/igzip.node)' : 'node:zlib (native/ not built: see README)';
    assert.deepEqual(lines, ['Client: kiln', ` Version:           ${version}`, ' API version:       1.41 (minimum version 1.24)', ` Node version:      v${process.versions.node}`, lines[4], ` gzip:              ${gzip}`, '']);
    assert.match(lines[4] ?? '', /^ OS\/Arch: +linux\/(amd64|arm64)$/);
    assert.equal((await ok(kiln(['version', '-f', '{{.Client.Version}} {{.Client.ApiVersion}}']))).stdout, `${version} 1.41\n`);
    const broken = await kiln(['version', '--format', '{{.Client']);
    assert.equal(broken.code, 125);
    assert.match(broken.stderr, /^Error: template parsing error/);
  });
});
