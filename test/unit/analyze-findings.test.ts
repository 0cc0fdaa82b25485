import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { analyzeLayers } from '../../src/analyze/analysis.js';
import { instructionOf, layerOrigins, matchDockerfile, sourceLine } from '../../src/analyze/history.js';
import { type LayerEntry, type LayerListing, listLayer } from '../../src/analyze/layers/walk.js';
import { parseInstructions } from '../../src/dockerfile/instructions.js';
import type { Digest } from '../../src/oci/digest.js';
import type { HistoryEntry } from '../../src/oci/types.js';
import type { TarInput } from '../../src/layer/tar/writer.js';
import { dir, file, layerTar, listLayers, whiteout } from '../helpers/analyze-layers.js';
import { tempDir } from '../helpers/paths.js';

const DOCKERFILE = `FROM base
COPY app.bin /app/app.bin
RUN chmod +x /app/app.bin
RUN apt-get update && apt-get install -y gcc
RUN rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY data /data
RUN chown -R 1000:1000 /data
COPY . /src
RUN cp /app/app.bin /app/copy.bin
RUN make > /tmp/build.log
RUN rm /tmp/build.log
`;

const APP = 'x'.repeat(5000);
/** One layer per instruction after FROM, over a one-layer base. */
const LAYERS: TarInput[][] = [
  [dir('bin'), file('bin/busybox', 2000), dir('etc'), file('etc/passwd', 100)],
  [dir('app'), file('app/app.bin', APP)],
  [dir('app'), file('app/app.bin', APP, { mode: 0o755 })],
  [
    file('var/lib/apt/lists/deb.debian.org_Packages', 3000),
    file('var/cache/apt/archives/gcc.deb', 4000),
    file('usr/bin/gcc-12', 1500),
    file('usr/include/stdio.h', 800),
    file('var/lib/dpkg/info/libc6-dev:amd64.list', 50),
  ],
  [whiteout('var/lib/apt/lists/deb.debian.org_Packages'), whiteout('var/cache/apt/archives/gcc.deb')],
  [dir('data'), file('data/a', 700), file('data/b', 900)],
  [dir('data', { uid: 1000, gid: 1000 }), file('data/a', 700, { uid: 1000, gid: 1000 }), file('data/b', 900, { uid: 1000, gid: 1000 })],
  [dir('src'), file('src/.git/objects/ab', 2500), file('src/main.c', 300)],
  [file('app/copy.bin', APP)],
  [file('tmp/build.log', 1234)],
  [whiteout('tmp/build.log')],
];
const HISTORY: HistoryEntry[] = [
  { created_by: 'ADD file:0123 in / ' },
  { created_by: 'CMD ["sh"]', empty_layer: true },
  ...DOCKERFILE.split('\n')
    .slice(1, -1)
    .map((line) => ({ created_by: line.startsWith('RUN ') ? `RUN /bin/sh -c ${line.slice(4)}` : line })),
];

async function analyzed(layers: TarInput[][], history: HistoryEntry[], lines: boolean) {
  const listings = await listLayers(layers);
  const dockerfile = parseInstructions(DOCKERFILE, 'Dockerfile');
  const { analysis } = await analyzeLayers({
    source: 'test',
    imageId: 'sha256:test' as Digest,
    names: [],
    history,
    layers: listings.map((listing, i) => ({ diffId: `sha256:${i}` as Digest, listing })),
    base: { layers: 1, how: 'flag' },
    lines: lines ? matchDockerfile(history, dockerfile, 2) : new Map(),
    attribution: lines ? 'dockerfile' : 'none',
    singleStage: true,
  });
  return analysis;
}

describe('analyze: findings name the rule, the bytes, the line that wrote them and the fix', () => {
  it('finds a chmod and a chown -R that copy files, a package cache removed too late, a toolchain, a .git, a duplicate and a deleted file', async () => {
    const { kiln } = await analyzed(LAYERS, HISTORY, true);
    const summary = kiln.findings.map((f) => ({ rule: f.rule, bytes: f.bytes, line: f.line, fixLine: f.fixLine, paths: f.paths }));
    assert.deepEqual(summary, [
      { rule: 'package-cache', bytes: 7000, line: 4, fixLine: 5, paths: ['/var/lib/apt/lists/deb.debian.org_Packages', '/var/cache/apt/archives/gcc.deb'] },
      { rule: 'chown-chmod', bytes: 5000, line: 2, fixLine: 3, paths: ['/app/app.bin'] },
      { rule: 'duplicate-content', bytes: 5000, line: 9, fixLine: undefined, paths: ['/app/copy.bin'] },
      { rule: 'context-leak', bytes: 2500, line: 8, fixLine: undefined, paths: ['/src/.git/objects/ab'] },
      { rule: 'build-toolchain', bytes: 2300, line: 4, fixLine: undefined, paths: ['/usr/bin/gcc-12', '/usr/include/stdio.h'] },
      { rule: 'chown-chmod', bytes: 1600, line: 6, fixLine: 7, paths: ['/data/a', '/data/b'] },
      { rule: 'deleted-later', bytes: 1234, line: 10, fixLine: 11, paths: ['/tmp/build.log'] },
    ]);
    const message = (rule: string, line: number): string => kiln.findings.find((f) => f.rule === rule && f.line === line)?.message ?? '';
    assert.match(message('chown-chmod', 2), /`COPY --chmod=755` at line 2, and drop the chmod at line 3/);
    assert.match(message('chown-chmod', 6), /`COPY --chown=1000:1000` at line 6, and drop the chown at line 7/);
    assert.match(message('package-cache', 4), /apt's lists and package cache \(2 files\) written at line 4 are removed at line 5, too late.*rm -rf \/var\/lib\/apt\/lists\/\*/);
    assert.match(message('build-toolchain', 4), /A build toolchain \(libc6-dev\) is in the final image.*multi-stage build/);
    assert.match(message('context-leak', 8), /add `.git` to .dockerignore/);
    assert.match(message('deleted-later', 10), /Delete them in the RUN that makes them \(move the deletion into line 10\)/);
    // Every byte the image's own layers wrote and did not keep is told by one finding.
    const dead = kiln.findings.filter((f) => f.fixLine !== undefined).reduce((sum, f) => sum + f.bytes, 0);
    assert.equal(kiln.userReclaimableBytes, dead);
    assert.equal(kiln.userReclaimableBytes, 5000 + 7000 + 1600 + 1234);
  });

  it('without lines, a finding names the layer and its command', async () => {
    const { kiln } = await analyzed(LAYERS, HISTORY, false);
    const chmod = kiln.findings.find((f) => f.rule === 'chown-chmod' && f.layer === 1);
    assert.equal(chmod?.line, null);
    assert.match(chmod?.message ?? '', /^layer 2 \(RUN \/bin\/sh -c chmod \+x \/app\/app\.bin\) writes 1 file/);
  });

  it("the base image's own waste is no finding, and deleting base files is none either", async () => {
    const { kiln } = await analyzed([[file('a', 10), file('b', 20)], [file('a', 11)], [whiteout('b')]], [{ created_by: 'ADD x' }, { created_by: 'RUN /bin/sh -c echo > /a' }, { created_by: 'RUN /bin/sh -c rm /b' }], false);
    assert.deepEqual(kiln.findings, []);
    assert.equal(kiln.reclaimableBytes, 30);
    assert.equal(kiln.userReclaimableBytes, 0);
  });
});

describe('analyze: Dockerfile lines for history entries', () => {
  it('reads the instruction of each builder’s created_by', () => {
    assert.deepEqual(instructionOf('RUN /bin/sh -c apt-get update # buildkit'), { keyword: 'RUN', text: 'RUN /bin/sh -c apt-get update' });
    assert.deepEqual(instructionOf('/bin/sh -c #(nop) COPY file:abc in /app '), { keyword: 'COPY', text: 'COPY file:abc in /app' });
    assert.deepEqual(instructionOf('|2 A=1 B=2 /bin/sh -c make'), { keyword: 'RUN', text: 'RUN /bin/sh -c make' });
    assert.deepEqual(instructionOf('/bin/sh -c apt-get install -y gcc'), { keyword: 'RUN', text: 'RUN /bin/sh -c apt-get install -y gcc' });
  });

  it('pairs layers with the non-empty history entries in order, as dive does', () => {
    const origins = layerOrigins([{ created_by: 'ADD a' }, { created_by: 'ENV X=1', empty_layer: true }, { created_by: 'RUN b' }], 3);
    assert.deepEqual(origins, [{ historyIndex: 0, createdBy: 'ADD a', comment: '' }, { historyIndex: 2, createdBy: 'RUN b', comment: '' }, { historyIndex: undefined, createdBy: '', comment: '' }]);
  });

  it("matches a Dockerfile to the classic builder's history, skipping what it lacks and what the base wrote", () => {
    const dockerfile = parseInstructions('FROM busybox AS build\nRUN make\nFROM build\nENV A=1\nCOPY app /app\n# a comment\nRUN chmod +x /app \\\n  && true\nCMD ["/app"]\n', 'Dockerfile');
    const history: HistoryEntry[] = [
      { created_by: '/bin/sh -c #(nop) ADD file:1 in / ' },
      { created_by: '/bin/sh -c #(nop)  CMD ["sh"]', empty_layer: true },
      { created_by: '/bin/sh -c make' },
      { created_by: '/bin/sh -c #(nop)  ENV A=1', empty_layer: true },
      { created_by: '/bin/sh -c #(nop) COPY file:2 in /app ' },
      { created_by: '/bin/sh -c chmod +x /app   && true' },
      { created_by: '/bin/sh -c #(nop)  CMD ["/app"]', empty_layer: true },
    ];
    const lines = matchDockerfile(history, dockerfile, 2);
    assert.deepEqual(
      [...lines].map(([index, source]) => [index, source.line, source.endLine]),
      [[2, 2, 2], [3, 4, 4], [4, 5, 5], [5, 7, 8], [6, 9, 9]],
    );
    assert.deepEqual(sourceLine({ file: 'f', startLine: 3, endLine: 4, original: 'RUN a' }), { file: 'f', line: 3, endLine: 4, instruction: 'RUN a' });
  });
});

describe('analyze: a layer read in place and a layer streamed give the same listing and contents', () => {
  it('lists the same entries, and hashes on demand what the stream hashed on the way', async () => {
    const layer = await layerTar(LAYERS[3] as TarInput[]);
    const path = join(await tempDir(), 'layer.tar');
    await writeFile(path, layer);
    const inPlace = await listLayer({ mediaType: '', diffId: 'sha256:x' as Digest, open: () => Promise.reject(new Error('not streamed')), locate: () => Promise.resolve({ path, start: 0, size: layer.length }) }, 'layer');
    const [streamed] = await listLayers([LAYERS[3] as TarInput[]]);
    const entries = (listing: LayerListing | undefined): LayerEntry[] => Array.from({ length: listing?.entries.length ?? 0 }, (_, i) => (listing as LayerListing).entries.entry(i));
    assert.deepEqual(entries(inPlace), entries(streamed));
    assert.equal(entries(inPlace).length, 5);
    assert.equal(inPlace.fingerprints.size, 0);
    await inPlace.fingerprint([0, 2, 4]);
    assert.deepEqual([...inPlace.fingerprints].sort(), [0, 2, 4].map((i) => [i, streamed?.fingerprints.get(i)]));
  });
});
