import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TarInput } from '../../src/layer/tar/writer.js';
import { diveFigures } from '../../src/analyze/layers/dive.js';
import { checkedFigures, dir, file, hardlink, opaque, symlink, whiteout } from '../helpers/analyze-layers.js';

/** dive's and kiln's figures of layers built here (bottom first); `baseLayers` for kiln's (checked to be native/sys's too: see figuresOf). */
const figuresOf = (layers: TarInput[][], baseLayers = 1) => checkedFigures(layers, baseLayers);

describe('analyze: dive figures, as dive computes them', () => {
  it('an overwritten file and a deleted file count in every layer they occur in, the surviving copy included', async () => {
    const { dive } = await figuresOf([
      [dir('etc'), file('etc/a', 100), file('etc/b', 50), dir('bin'), file('bin/sh', 1000)],
      [dir('etc'), file('etc/a', 120), whiteout('etc/b')],
      [dir('tmp'), file('tmp/x', 10)],
    ]);
    assert.deepEqual(dive.layerSizes, [1150, 120, 10]);
    assert.equal(dive.sizeBytes, 1280);
    assert.equal(dive.userSizeBytes, 130);
    // /etc/a: cum 220, min 100; /etc/b: the whiteout of a file weighs 0, so cum 50, min 0.
    assert.deepEqual(dive.fileReference, [
      { count: 2, sizeBytes: 220, file: '/etc/a' },
      { count: 2, sizeBytes: 50, file: '/etc/b' },
    ]);
    assert.equal(dive.inefficientBytes, 270);
    assert.equal(dive.efficiencyScore, (100 + 0 + 1000 + 10) / (220 + 50 + 1000 + 10));
    assert.equal(dive.userWastedRatio, 270 / 130);
  });

  it("a deleted directory's whiteout weighs what was under it, and an opaque marker drops out", async () => {
    const { dive } = await figuresOf([
      [dir('d'), file('d/x', 30), file('d/y', 70), dir('o'), file('o/p', 5)],
      [whiteout('d'), dir('o'), opaque('o'), file('o/q', 7)],
    ]);
    // /d is a leaf only in layer 1 (in layer 0 it has children): it occurs once, so nothing is wasted.
    assert.deepEqual(dive.fileReference, []);
    assert.equal(dive.inefficientBytes, 0);
    assert.equal(dive.efficiencyScore, 1);
    assert.equal(dive.sizeBytes, 112);
  });

  it("a whiteout of a directory deleted twice weighs the stacked tree below it, with earlier whiteouts applied", async () => {
    const { dive } = await figuresOf([
      [dir('d'), file('d/x', 30), file('d/y', 70)],
      [whiteout('d/y'), file('d/z', 11)],
      [whiteout('d')],
      [file('d', 3)],
    ]);
    // Layer 2's whiteout of /d weighs /d/x + /d/z (y was gone); layer 3 writes /d again, a leaf: count 2.
    assert.deepEqual(dive.fileReference, [{ count: 2, sizeBytes: 70, file: '/d/y' }, { count: 2, sizeBytes: 41 + 3, file: '/d' }]);
  });

  it('hardlinks and symlinks weigh 0; a whiteout of a path nothing had weighs 0', async () => {
    const { dive } = await figuresOf([
      [dir('bin'), file('bin/busybox', 1000), hardlink('bin/ls', 'bin/busybox'), symlink('bin/sh', 'busybox')],
      [whiteout('bin/busybox'), whiteout('nothing/here')],
    ]);
    assert.deepEqual(dive.layerSizes, [1000, 0]);
    assert.deepEqual(dive.fileReference, [{ count: 2, sizeBytes: 1000, file: '/bin/busybox' }]);
    assert.equal(dive.efficiencyScore, 0);
  });

  it('an empty directory is a leaf; a directory with entries is not', async () => {
    const { dive } = await figuresOf([[dir('empty'), dir('full'), file('full/f', 4)], [dir('empty'), dir('full')]]);
    // /empty is a leaf in both layers; /full only in layer 1.
    assert.deepEqual(dive.fileReference, [{ count: 2, sizeBytes: 0, file: '/empty' }]);
  });

  it('one layer: the score is 1 and the user-wasted ratio is n/a (dive divides by zero)', async () => {
    const { dive, kiln } = await figuresOf([[dir('etc'), file('etc/passwd', 42)]]);
    assert.equal(dive.efficiencyScore, 1);
    assert.equal(dive.inefficientBytes, 0);
    assert.equal(dive.userSizeBytes, 0);
    assert.equal(dive.userWastedRatio, undefined);
    assert.equal(kiln.efficiencyScore, undefined);
    assert.equal(kiln.reclaimableBytes, 0);
  });

  it('an image without layers has a score of 1 and nothing else', () => {
    const dive = diveFigures([]);
    assert.deepEqual({ ...dive }, { sizeBytes: 0, userSizeBytes: 0, layerSizes: [], inefficientBytes: 0, efficiencyScore: 1, userWastedRatio: undefined, fileReference: [] });
  });
});

describe("analyze: kiln's figures, from the layers stacked as a runtime stacks them", () => {
  it('reclaimable bytes are every replaced copy and every deleted file; the base-aware score leaves the base out', async () => {
    const layers = [
      [dir('etc'), file('etc/a', 100), file('etc/b', 50), dir('bin'), file('bin/sh', 1000)],
      [dir('etc'), file('etc/a', 120), whiteout('etc/b')],
      [dir('tmp'), file('tmp/x', 10), file('tmp/y', 25)],
      [whiteout('tmp/y')],
    ];
    const { kiln } = await figuresOf(layers, 1);
    assert.deepEqual(kiln.layers.map((l) => l.contentBytes), [1150, 120, 35, 0]);
    assert.equal(kiln.sizeBytes, 1305);
    assert.equal(kiln.reclaimableBytes, 100 + 50 + 25);
    // Only /tmp/y is the image's own waste: the base wrote /etc/a and /etc/b.
    assert.equal(kiln.userReclaimableBytes, 25);
    assert.equal(kiln.userSizeBytes, 155);
    assert.equal(kiln.efficiencyScore, 1 - 25 / 155);
    assert.deepEqual(kiln.wasted, [
      { path: '/etc/a', bytes: 100, layer: 0, endedBy: 1, how: 'overwritten' },
      { path: '/etc/b', bytes: 50, layer: 0, endedBy: 1, how: 'deleted' },
      { path: '/tmp/y', bytes: 25, layer: 2, endedBy: 3, how: 'deleted' },
    ]);
    assert.deepEqual(kiln.layers.map((l) => [l.reclaimableBytes, l.removedBytes]), [[150, 0], [0, 150], [25, 0], [0, 25]]);
    // With three base layers /tmp/y is the base's too, and the image adds nothing that wastes: n/a.
    const threeBase = await figuresOf(layers, 3);
    assert.equal(threeBase.kiln.userReclaimableBytes, 0);
    assert.equal(threeBase.kiln.userSizeBytes, 0);
    assert.equal(threeBase.kiln.efficiencyScore, undefined);
  });

  it('a deleted directory, an opaque directory and a file over a directory hide everything under them', async () => {
    const { kiln } = await figuresOf(
      [
        [dir('d'), file('d/x', 30), file('d/y', 70), dir('o'), file('o/p', 5), dir('t'), file('t/f', 40)],
        [whiteout('d'), dir('o'), opaque('o'), file('o/q', 7), file('t', 2)],
      ],
      0,
    );
    assert.equal(kiln.reclaimableBytes, 30 + 70 + 5 + 40);
    assert.deepEqual(kiln.largestFiles, [{ path: '/o/q', bytes: 7, layer: 1 }, { path: '/t', bytes: 2, layer: 1 }]);
    assert.deepEqual(kiln.largestDirectories, [{ path: '/o', bytes: 7 }]);
  });

  it("an opaque marker hides only the layers below, not its own layer's entries", async () => {
    const { overlay } = await figuresOf([[dir('o'), file('o/old', 5)], [file('o/new', 6), opaque('o')]], 0);
    assert.deepEqual([...overlay.live].map((v) => overlay.path(v)), ['o/new']);
  });

  it("a file's bytes are not reclaimable while a hardlink to it survives; symlinks weigh their target's length", async () => {
    const { kiln, overlay } = await figuresOf([[dir('bin'), file('bin/busybox', 1000), hardlink('bin/ls', 'bin/busybox'), symlink('bin/sh', 'busybox')], [whiteout('bin/busybox')]], 0);
    assert.equal(kiln.reclaimableBytes, 0);
    assert.deepEqual(kiln.layers.map((l) => l.contentBytes), [1000 + 'busybox'.length, 0]);
    assert.deepEqual(
      [...overlay.live].map((v, k) => [overlay.path(v), overlay.liveBytes[k]]),
      [['bin/ls', 1000], ['bin/sh', 7]],
    );
    const both = await figuresOf([[file('a', 10), hardlink('b', 'a')], [whiteout('a'), whiteout('b')]], 0);
    assert.equal(both.kiln.reclaimableBytes, 10);
  });

  it('lists the dead and the live versions in layer order, hardlinked ones included (the findings read the image\'s own files from the end)', async () => {
    const { overlay } = await figuresOf([
      [dir('bin'), file('bin/busybox', 1000), hardlink('bin/ls', 'bin/busybox'), file('etc', 3)],
      [file('bin/cat', 5), hardlink('bin/ln', 'bin/cat'), file('bin/ls', 2), whiteout('etc')],
      [file('bin/ln', 7), hardlink('bin/x', 'bin/ln'), file('bin/cat', 4)],
    ]);
    for (const list of [overlay.dead, overlay.live]) {
      const layers = [...list].map((v) => overlay.versionLayer[v] as number);
      assert.deepEqual(layers, [...layers].sort((a, b) => a - b));
    }
    assert.deepEqual(new Set([...overlay.live].map((v) => overlay.versionLayer[v])), new Set([0, 1, 2]));
  });

  it('a path written twice in one layer wastes the first copy', async () => {
    const { kiln } = await figuresOf([[file('x', 8), file('x', 9)]], 0);
    assert.equal(kiln.reclaimableBytes, 8);
    assert.equal(kiln.sizeBytes, 17);
  });
});
