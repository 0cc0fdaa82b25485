import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadImages } from '../../src/engine/archive.js';
import { Engine } from '../../src/engine/engine.js';
import { isKilnError } from '../../src/errors.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/paths.js';
import { prng } from '../helpers/prng.js';

const ARCHIVES = ['busybox-docker20-save.tar', 'whiteouts-docker20-save.tar', 'whiteouts-oci-layout', 'whiteouts-oci-zstd'] as const;
const unavailable = await fixturesUnavailable(...ARCHIVES);

describe('GC under random load/tag/untag/prune sequences', { skip: unavailable }, () => {
  for (const seed of [1, 2, 3]) {
    it(`never loses a referenced blob and always frees unreferenced ones (seed ${seed})`, async () => {
      const random = prng(seed);
      const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
      const engine = await Engine.open(await tempDir('kiln-gc-'));
      const steps: string[] = [];
      try {
        for (let step = 0; step < 25; step++) {
          const names = engine.store.db.names().map((n) => n.name);
          const ids = engine.store.db.images().map((i) => i.id);
          const op = Math.floor(random() * 6);
          try {
            if (op === 0 || ids.length === 0) {
              const archive = pick(ARCHIVES) as (typeof ARCHIVES)[number];
              steps.push(`load ${archive}`);
              await loadImages(engine, { path: await fixture(archive) }, () => undefined);
            } else if (op === 1) {
              const id = pick(ids) as string;
              const target = `t${Math.floor(random() * 4)}/img:${Math.floor(random() * 3)}`;
              steps.push(`tag ${id} ${target}`);
              engine.tag(id, target);
            } else if (op === 2 && names.length > 0) {
              const name = pick(names) as string;
              steps.push(`rmi ${name}`);
              await engine.removeImages([name]);
            } else if (op === 3) {
              const id = pick(ids) as string;
              steps.push(`rmi -f ${id}`);
              await engine.removeImages([id], { force: true });
            } else if (op === 4) {
              steps.push('image prune');
              await engine.pruneImages();
            } else {
              steps.push('image prune -a');
              await engine.pruneImages({ all: true });
            }
          } catch (err) {
            if (!isKilnError(err, 'CONFLICT')) throw err;
          }
          const report = await engine.check();
          assert.deepEqual(report.problems, [], `problems after: ${steps.join(' → ')}`);
          assert.deepEqual(report.orphans, [], `orphans after: ${steps.join(' → ')}`);
          for (const image of engine.store.db.images()) {
            // Every stored image can still be read back whole.
            const read = await engine.store.image(image);
            assert.equal(read.layers.length, read.config.rootfs.diff_ids.length);
          }
        }
      } finally {
        engine.close();
      }
    });
  }
});
