import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { scanLayer } from '../../src/layer/scan.js';
import { writeTar } from '../../src/layer/tar/writer.js';
import { HOSTILE_LAYERS, SOUND_LAYERS } from '../helpers/hostile-layers.js';

const scan = (entries: Parameters<typeof writeTar>[0]) => scanLayer(writeTar(entries), () => Promise.resolve(), 'hostile layer');

describe('the scan every layer gets where it enters the store', () => {
  for (const { name, entries, message, atIngest } of HOSTILE_LAYERS) {
    if (atIngest) {
      it(`refuses ${name}, naming the entry`, async () => {
        await assert.rejects(scan(entries), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message) && err.message.startsWith('hostile layer: entry '));
      });
    } else {
      it(`leaves ${name} to the unpack`, async () => {
        await scan(entries);
      });
    }
  }

  for (const { name, entries } of SOUND_LAYERS) {
    it(`takes ${name}`, async () => {
      await scan(entries);
    });
  }
});
