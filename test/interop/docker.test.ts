import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Dockerd, dockerdUnavailable, startDockerd } from '../helpers/dockerd.js';
import { newKiln, ok } from '../helpers/kiln.js';
import { dockerFacts, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';

const unavailable = (await dockerdUnavailable()) ?? (await fixturesUnavailable('whiteouts-docker20-save.tar', 'busybox-rootfs.tar'));

describe('a real Docker daemon reads what kiln writes, and the other way round', { skip: unavailable }, () => {
  let dockerd: Dockerd;
  before(async () => {
    dockerd = await startDockerd();
  });
  after(() => dockerd?.stop());

  it('docker load takes kiln save output: same image IDs, same listing, and the image runs', async () => {
    const { kiln } = await newKiln();
    await ok(kiln(['load', '-i', await fixture('whiteouts-docker20-save.tar')]));
    const imported = (await ok(kiln(['import', '-c', 'CMD ["echo", "imported"]', await fixture('busybox-rootfs.tar'), 'imported:1']))).stdout.trim();
    const archive = join(await tempDir(), 'kiln.tar');
    await ok(kiln(['save', '-o', archive, 'whiteouts:lab', 'imported:1']));
    assert.equal(await dockerd.docker(['load', '-i', archive]), 'Loaded image: whiteouts:lab\nLoaded image: imported:1\n');
    const format = '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}';
    assert.equal(await dockerd.docker(['images', '--no-trunc', '--format', format]), (await ok(kiln(['images', '--no-trunc', '--format', format]))).stdout);
    assert.equal(await dockerd.docker(['inspect', '-f', '{{.Id}}', 'imported:1']), `${imported}\n`);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'whiteouts:lab']), 'c\n');
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'imported:1']), 'imported\n');
    const historyFormat = '{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}';
    assert.equal(await dockerd.docker(['history', '--format', historyFormat, 'whiteouts:lab']), (await ok(kiln(['history', '--format', historyFormat, 'whiteouts:lab']))).stdout);
  });

  it('kiln load takes docker save output with every tag, and inspects like Docker', async () => {
    await dockerd.docker(['tag', 'whiteouts:lab', 'other/w:2']);
    const archive = join(await tempDir(), 'docker.tar');
    await dockerd.docker(['save', '-o', archive, 'whiteouts:lab', 'other/w:2']);
    const { kiln } = await newKiln();
    assert.equal((await ok(kiln(['load', '-i', archive]))).stdout, 'Loaded image: whiteouts:lab\nLoaded image: other/w:2\n');
    const fields = '{{.Id}} {{json .RepoTags}} {{.Created}} {{.Size}} {{.Os}}/{{.Architecture}} {{json .RootFS}} {{json .Config}}';
    assert.equal((await ok(kiln(['inspect', '-f', fields, 'other/w:2']))).stdout, await dockerd.docker(['inspect', '-f', fields, 'other/w:2']));
    assert.equal((await ok(kiln(['inspect', '-f', '{{.Id}}', 'whiteouts:lab']))).stdout, `${(await dockerFacts('whiteouts')).inspect.Id}\n`);
    const df = '{{.Type}} {{.TotalCount}} {{.Size}}';
    const dockerDf = (await dockerd.docker(['system', 'df', '--format', df])).split('\n')[0];
    // Docker's store also holds the imported image from the test above.
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'imported:1']));
    assert.equal((await ok(kiln(['system', 'df', '--format', df]))).stdout.split('\n')[0], dockerDf);
  });

  it('image events: the same actions, actors and names as dockerd for load, tag, save, import, rmi and prune', async () => {
    const { kiln } = await newKiln();
    const busybox = await fixture('busybox-docker20-save.tar');
    const rootfs = await fixture('busybox-rootfs.tar');
    const scratch = await tempDir();
    // To the millisecond: the test before this one saved an image in dockerd, maybe within the same second.
    const since = new Date().toISOString();
    const steps = [['load', '-i', busybox], ['tag', 'busybox:lab', 'busybox:events'], ['save', '-o', join(scratch, 'out.tar'), 'busybox:events'], ['import', rootfs, 'imported:events'], ['rmi', 'busybox:events', 'imported:events'], ['image', 'prune', '-f']];
    for (const step of steps) {
      await dockerd.docker(step);
      await ok(kiln(step));
    }
    const until = String(Math.floor(Date.now() / 1000) + 1);
    const format = '{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.reclaimed}}';
    const events = ['events', '--since', since, '--until', until, '--filter', 'type=image', '--format', format];
    // An import's image ID has its own creation time in each store; what a prune reclaims, its own sizes.
    const normalise = (text: string) => {
      const importedId = /^image import (\S+)/m.exec(text)?.[1] ?? 'none';
      return text.replaceAll(importedId, 'IMPORTED').replace(/^(image prune .*) \d+$/m, '$1 N');
    };
    const fromDocker = await dockerd.docker(events);
    const fromKiln = (await ok(kiln(events))).stdout;
    assert.equal(normalise(fromKiln), normalise(fromDocker));
    assert.match(fromKiln, /^image tag sha256:\S+ busybox:events/m);
  });
});
