import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type DockerFacts, dockerFacts, fixture, fixturesUnavailable, ociLayoutImage } from '../helpers/fixtures.js';
import { newKiln, ok, runKiln } from '../helpers/kiln.js';
import { file, imageArchive } from '../helpers/hostile-layers.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

// Images Docker made in this run, and what Docker printed about them: kiln must print the same.
const unavailable = await fixturesUnavailable('busybox-docker20-save.tar', 'whiteouts-docker20-save.tar', 'whiteouts-oci-layout', 'busybox-rootfs.tar');
let BUSYBOX: string;
let WHITEOUTS: string;
let busybox: DockerFacts;
let whiteouts: DockerFacts;
before(async () => {
  if (unavailable) return;
  [BUSYBOX, WHITEOUTS, busybox, whiteouts] = await Promise.all([fixture('busybox-docker20-save.tar'), fixture('whiteouts-docker20-save.tar'), dockerFacts('busybox'), dockerFacts('whiteouts')]);
});
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('kiln CLI speaks Docker\'s image verbs', { skip: unavailable }, () => {
  it('images: the default table, -q, --no-trunc, --digests, filters and templates', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', WHITEOUTS]));
    await ok(kiln(['tag', 'busybox:lab', 'localhost:5000/team/bb:v1']));
    const table = (await ok(kiln(['images']))).stdout.split('\n');
    assert.match(table[0] as string, /^REPOSITORY {15}TAG {7}IMAGE ID {7}CREATED +SIZE$/);
    assert.match(table[1] as string, new RegExp(`^whiteouts {16}lab {7}${whiteouts.images.ID} {3}\\S.* ago +${escape(whiteouts.images.Size)}$`));
    assert.equal(table.length, 5);
    assert.equal((await ok(kiln(['images', '-q']))).stdout, `${whiteouts.images.ID}\n${busybox.images.ID}\n${busybox.images.ID}\n`);
    assert.equal((await ok(kiln(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}', '--no-trunc', 'busybox']))).stdout, `busybox:lab ${busybox.inspect.Id} ${busybox.images.Size}\n`);
    assert.equal((await ok(kiln(['images', '-f', 'reference=localhost:5000/*/*', '--format', '{{.Repository}}']))).stdout, 'localhost:5000/team/bb\n');
    assert.equal((await ok(kiln(['images', '-f', 'dangling=true', '-q']))).stdout, '');
    assert.equal((await ok(kiln(['images', '-f', `before=whiteouts:lab`, '--format', '{{.Tag}}']))).stdout, 'lab\nv1\n');
    assert.equal((await ok(kiln(['images', '-f', `since=busybox:lab`, '--format', '{{.Repository}}']))).stdout, 'whiteouts\n');
    const digests = (await ok(kiln(['images', '--digests', '--format', 'table {{.Repository}}\t{{.Digest}}', 'whiteouts']))).stdout;
    assert.equal(digests, 'REPOSITORY   DIGEST\nwhiteouts    <none>\n');
    const json = JSON.parse((await ok(kiln(['images', '--format', 'json', 'whiteouts']))).stdout) as Record<string, string>;
    assert.equal(json.ID, whiteouts.images.ID);
    assert.equal(json.Tag, 'lab');
    const bad = await kiln(['images', '-f', 'colour=red']);
    assert.equal(bad.code, 125);
    assert.equal(bad.stderr, "Error: invalid filter 'colour'\n");
  });

  it('images -f before= and since= compare creation times whole, as Docker does: within one second too', async () => {
    const { kiln } = await newKiln();
    const dir = await tempDir();
    // Three images made in the same second, a tenth of a second apart (their layers differ, so their IDs do).
    for (const [tag, created] of [['early:1', '2026-01-02T03:04:05.1Z'], ['middle:1', '2026-01-02T03:04:05.25Z'], ['late:1', '2026-01-02T03:04:05.300000001Z']] as const) {
      await ok(kiln(['load', '-i', await imageArchive(join(dir, `${tag}.tar`), tag, [[file(tag)]], undefined, created)]));
    }
    const listed = async (filter: string): Promise<string> => (await ok(kiln(['images', '-f', filter, '--format', '{{.Repository}}']))).stdout;
    assert.equal(await listed('before=middle:1'), 'early\n');
    assert.equal(await listed('since=middle:1'), 'late\n');
    assert.equal(await listed('before=early:1'), '');
    assert.equal(await listed('since=late:1'), '');
  });

  it('rmi untags, then deletes with the layers nothing else uses, and refuses ambiguous IDs', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', WHITEOUTS]));
    await ok(kiln(['tag', 'busybox:lab', 'other/bb:1']));
    const conflict = await kiln(['rmi', busybox.images.ID]);
    assert.equal(conflict.code, 1);
    assert.equal(conflict.stderr, `Error: conflict: unable to delete ${busybox.images.ID} (must be forced) - image is referenced in multiple repositories\n`);
    assert.equal((await ok(kiln(['rmi', 'other/bb:1']))).stdout, 'Untagged: other/bb:1\n');
    // The busybox layer is shared with whiteouts, so only the image goes.
    assert.equal((await ok(kiln(['rmi', 'busybox:lab']))).stdout, `Untagged: busybox:lab\nDeleted: ${busybox.inspect.Id}\n`);
    const deleted = (await ok(kiln(['rmi', 'whiteouts:lab']))).stdout.split('\n');
    assert.equal(deleted[0], 'Untagged: whiteouts:lab');
    assert.equal(deleted.filter((l) => l.startsWith('Deleted: ')).length, 4, 'the image and its three chain IDs');
    // The last is the chain ID of the base layer, which is its diffID.
    assert.equal(deleted.at(-2), `Deleted: ${busybox.inspect.RootFS.Layers[0]}`);
    const missing = await kiln(['rmi', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error: No such image: nope\n');
    assert.match((await ok(kiln(['system', 'check']))).stdout, /^0 blobs verified, 0 images, 0 names: clean\n$/);
  });

  it('history, inspect and import -c', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', WHITEOUTS]));
    // Docker's history, as the daemon that built the image printed it; after a load only the top row has an ID.
    const history = (await ok(kiln(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Size}}', 'whiteouts:lab']))).stdout;
    const rows = (docker: typeof whiteouts.history) => docker.map((row, i) => `${i === 0 ? row.ID : '<missing>'}|${row.CreatedBy}|${row.Size}\n`).join('');
    assert.equal(history, rows(whiteouts.historyNoTrunc));
    assert.equal(whiteouts.historyNoTrunc[0]?.ID, whiteouts.inspect.Id);
    const truncated = (await ok(kiln(['history', '--format', '{{.CreatedBy}}', 'whiteouts:lab']))).stdout;
    assert.equal(truncated, whiteouts.history.map((row) => `${row.CreatedBy}\n`).join(''));
    assert.match(truncated, /…\n/, 'a long CreatedBy is cut as Docker cuts it');
    assert.equal((await ok(kiln(['history', '-q', 'whiteouts:lab']))).stdout.split('\n')[0], whiteouts.images.ID);
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Env 1}} {{len .RootFS.Layers}}', 'whiteouts:lab']))).stdout, '1000 /d HELLO=world 3\n');
    const imported = (await ok(kiln(['import', '-c', 'ENTRYPOINT ["/bin/sh"]', '-c', 'EXPOSE 8080', '-c', 'LABEL tier=base', '--platform', 'linux/arm64/v8', '-', 'imported:1'], await readFile(await fixture('busybox-rootfs.tar'))))).stdout.trim();
    const [inspect] = JSON.parse((await ok(kiln(['inspect', imported]))).stdout) as { RepoTags: string[]; Architecture: string; Variant: string; Comment: string; Config: { Entrypoint: string[]; ExposedPorts: object; Labels: object } }[];
    assert.deepEqual(inspect?.RepoTags, ['imported:1']);
    assert.deepEqual([inspect?.Architecture, inspect?.Variant, inspect?.Comment], ['arm64', 'v8', 'Imported from -']);
    assert.deepEqual(inspect?.Config.Entrypoint, ['/bin/sh']);
    assert.deepEqual(inspect?.Config.ExposedPorts, { '8080/tcp': {} });
    assert.deepEqual(inspect?.Config.Labels, { tier: 'base' });
    assert.equal((await ok(kiln(['images', '-f', 'label=tier=base', '--format', '{{.Repository}}']))).stdout, 'imported\n');
    const badChange = await kiln(['import', '-c', 'RUN true', await fixture('busybox-rootfs.tar')]);
    assert.equal(badChange.code, 125);
    assert.match(badChange.stderr, /^Error: change "RUN true": RUN is not a valid change command/);
  });

  it('prune, system df and usage errors', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', BUSYBOX]));
    await ok(kiln(['load', '-i', await fixture('whiteouts-oci-layout')]));
    await ok(kiln(['load', '-i', WHITEOUTS])); // takes the whiteouts:lab name: the OCI copy becomes dangling
    assert.equal((await ok(kiln(['images', '-f', 'dangling=true', '--format', '{{.Repository}}:{{.Tag}}']))).stdout, '<none>:<none>\n');
    const df = (await ok(kiln(['system', 'df']))).stdout.split('\n');
    assert.match(df[0] as string, /^TYPE {12}TOTAL {5}ACTIVE {4}SIZE {6}RECLAIMABLE$/);
    assert.match(df[1] as string, /^Images {10}3 {9}0 {9}\S+MB +\S+MB \(100%\)$/);
    const declined = await kiln(['image', 'prune'], 'n\n');
    assert.match(declined.stdout, /WARNING! This will remove all dangling images\.\nAre you sure you want to continue\? \[y\/N\] $/);
    assert.equal((await ok(kiln(['images', '-a', '-q']))).stdout.split('\n').length, 4);
    const pruned = (await ok(kiln(['image', 'prune', '-f']))).stdout;
    // The dangling image is skopeo's copy, whose config skopeo rewrote: another ID than Docker's.
    const { config } = await ociLayoutImage('whiteouts-oci-layout');
    assert.match(pruned, new RegExp(`^Deleted Images:\ndeleted: ${config}\n(deleted: sha256:[a-f0-9]{64}\n)*\nTotal reclaimed space: \\S+B\n$`));
    assert.equal((await ok(kiln(['images', '-a', '-q']))).stdout.split('\n').length, 3);
    assert.equal((await kiln(['images', '--bogus'])).code, 125);
    // A root whose parent exists but takes no new entry (Node's recursive mkdir looped for ever there).
    const unusable = await runKiln('/proc/kiln-store', ['images']);
    assert.equal(unusable.code, 125);
    assert.match(unusable.stderr, /cannot use \/proc\/kiln-store as kiln's store: .*choose another with --root/);
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
