import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { type ServeLab, startServeLab } from '../helpers/serve.js';
import { dockerFacts, fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { isRoot } from '../helpers/paths.js';
import type { Registry } from '../helpers/registry.js';

/** Reads a dockerode stream (jsonmessage lines) to its end; rejects on an errorDetail. */
function finished(docker: Docker, stream: NodeJS.ReadableStream): Promise<{ stream?: string; status?: string; aux?: { ID?: string } }[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: { stream?: string; status?: string; aux?: { ID?: string } }[]) => (err ? reject(err) : resolve(output)));
  });
}

describe('kiln serve: the same flow with dockerode as the client', { skip: await fixturesUnavailable('whiteouts-docker20-save.tar', 'busybox-docker20-save.tar') }, () => {
  let lab: ServeLab | undefined;
  let dir: string;
  let docker: Docker;
  let registry: Registry | undefined;

  before(async () => {
    lab = await startServeLab('kiln-dockerode-');
    ({ dir, registry } = lab);
    docker = new Docker({ socketPath: lab.socket });
  });
  after(async () => {
    await lab?.stop();
  });

  it('ping, version, load, list, inspect, tag, history, remove, prune, df', async () => {
    assert.equal(String(await docker.ping()), 'OK');
    assert.equal((await docker.version()).ApiVersion, '1.41');
    await finished(docker, await docker.loadImage(createReadStream(await fixture('whiteouts-docker20-save.tar'))));
    const images = await docker.listImages();
    assert.deepEqual(images.map((i) => i.RepoTags), [['whiteouts:lab']]);
    const image = docker.getImage('whiteouts:lab');
    const whiteouts = await dockerFacts('whiteouts');
    assert.equal((await image.inspect()).Id, whiteouts.inspect.Id);
    await image.tag({ repo: 'dockerode/w', tag: '1' });
    const history = (await docker.getImage('dockerode/w:1').history()) as { CreatedBy: string }[];
    assert.deepEqual(history.map((h) => h.CreatedBy), whiteouts.historyNoTrunc.map((h) => h.CreatedBy), 'the history Docker gave');
    assert.deepEqual(await docker.getImage('dockerode/w:1').remove(), [{ Untagged: 'dockerode/w:1' }]);
    const df = (await docker.df()) as { Images: unknown[] };
    assert.equal(df.Images.length, 1);
    const pruned = await docker.pruneImages({ filters: { dangling: ['false'] } });
    assert.ok(pruned.ImagesDeleted?.some((e) => e.Deleted === whiteouts.inspect.Id));
    assert.deepEqual(await docker.listImages(), []);
  });

  it('build (a tar context), run with output and exit code, push and pull', { skip: !isRoot && 'builds and containers need root' }, async () => {
    await finished(docker, await docker.loadImage(createReadStream(await fixture('busybox-docker20-save.tar'))));
    await docker.getImage('busybox:lab').tag({ repo: 'busybox', tag: 'latest' });
    const context = join(dir, 'context');
    await mkdir(context);
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox AS b\nRUN echo from-build > /f\nFROM busybox\nCOPY --from=b /f /f\nCMD ["cat", "/f"]\n');
    const output = await finished(docker, await docker.buildImage({ context, src: ['Dockerfile'] }, { t: 'dockerode-built:1' }));
    assert.ok(output.some((m) => m.aux?.ID?.startsWith('sha256:')), JSON.stringify(output));
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const stderr = new PassThrough();
    // Without a TTY the output is multiplexed; given two streams, dockerode demultiplexes it.
    const [result] = (await docker.run('dockerode-built:1', [], [stdout, stderr], { Tty: false, HostConfig: { AutoRemove: true } })) as [{ StatusCode: number }];
    assert.equal(result.StatusCode, 0);
    assert.equal(text, 'from-build\n');
    if (registry) {
      const name = `${registry.host}/dockerode/built`;
      await docker.getImage('dockerode-built:1').tag({ repo: name, tag: '1' });
      const pushed = await finished(docker, await docker.getImage(`${name}:1`).push({}));
      assert.ok(pushed.some((m) => /^1: digest: sha256:/.test(m.status ?? '')), JSON.stringify(pushed));
      await docker.getImage(`${name}:1`).remove();
      const pulled = await finished(docker, await docker.pull(`${name}:1`));
      assert.ok(pulled.some((m) => (m.status ?? '').startsWith('Status: ')), JSON.stringify(pulled));
    }
  });
  it('attach with stdin (multiplexed output) and with a terminal (raw output, resized)', { skip: !isRoot && 'containers need root' }, async () => {
    await finished(docker, await docker.loadImage(createReadStream(await fixture('busybox-docker20-save.tar'))));
    const collect = (stream: NodeJS.ReadableStream): Promise<string> =>
      new Promise((resolve) => {
        let text = '';
        stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
        stream.on('end', () => resolve(text));
      });
    // stdin: attached before start, ended by the client; the output comes back multiplexed.
    const piped = await docker.createContainer({ Image: 'busybox:lab', Cmd: ['sh', '-c', 'tr a-z A-Z; exit 2'], OpenStdin: true, StdinOnce: true, AttachStdin: true });
    const stream = await piped.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    const stdout = new PassThrough();
    docker.modem.demuxStream(stream, stdout, new PassThrough());
    const upper = collect(stdout);
    stream.on('end', () => stdout.end());
    await piped.start();
    stream.end('shout\n');
    assert.equal(((await piped.wait()) as { StatusCode: number }).StatusCode, 2);
    assert.equal(await upper, 'SHOUT\n');
    assert.equal(((await piped.inspect()) as { Config: { OpenStdin: boolean; Tty: boolean } }).Config.OpenStdin, true);
    await piped.remove();
    // A terminal: raw output; a resize reaches the running process.
    const term = await docker.createContainer({ Image: 'busybox:lab', Cmd: ['sh', '-c', 'stty size; read line; stty size'], Tty: true, OpenStdin: true, StdinOnce: true });
    const raw = await term.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    const screen = collect(raw);
    await term.start();
    await term.resize({ h: 50, w: 132 });
    raw.write('go\n');
    assert.equal(((await term.wait()) as { StatusCode: number }).StatusCode, 0);
    assert.match((await screen).replace(/\r/g, ''), /^24 80\n(go\n)?50 132\n$/);
    await term.remove();
  });
});
