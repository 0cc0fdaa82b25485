import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyzeLayers } from '../../src/analyze/analysis.js';
import { analysisJson } from '../../src/analyze/json.js';
import type { LayerEntries, LayerEntry } from '../../src/analyze/layers/walk.js';
import type { Digest } from '../../src/oci/digest.js';
import { dir, file, hardlink, listLayers, opaque, symlink, whiteout } from '../helpers/analyze-layers.js';

/** dive's fields of an entry, as dive's export lists them (archive/tar's header and Go's os.FileMode). */
function diveEntry(entry: LayerEntry): Record<string, unknown> {
  const typeFlag = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' }[entry.kind as string] ?? '0';
  const typeBits = { directory: 2 ** 31, symlink: 2 ** 27, block: 2 ** 26, char: 2 ** 26 + 2 ** 21, fifo: 2 ** 25 }[entry.kind as string] ?? 0;
  const special = (entry.mode & 0o4000 ? 2 ** 23 : 0) + (entry.mode & 0o2000 ? 2 ** 22 : 0) + (entry.mode & 0o1000 ? 2 ** 20 : 0);
  return {
    path: entry.name,
    typeFlag: typeFlag.charCodeAt(0),
    linkName: entry.link ?? '',
    size: entry.size,
    fileMode: (entry.mode & 0o777) + special + typeBits,
    uid: entry.uid,
    gid: entry.gid,
    isDir: entry.kind === 'directory',
  };
}

describe('analyze: the JSON document', () => {
  it('is JSON.stringify(…, null, 2) of the analysis with every file list, byte for byte, whatever the names hold', async () => {
    const odd = ['caf\u00e9', 'quote"d', 'back\\slash', 'new\nline', 'tab\there', 'bell\u0007', 'del\u007f', '\u{1f600}', 'x'.repeat(150)];
    const listings = await listLayers([
      [dir('etc'), file('etc/a', 100, { mode: 0o4755, uid: 1000, gid: 2000 }), dir('odd'), ...odd.map((name) => file(`odd/${name}`, 3)), symlink('etc/l', 'caf\u00e9"/\\'), hardlink('etc/h', 'etc/a')],
      [dir('etc', { mode: 0o1777 }), file('etc/a', 123456, { uid: 2 ** 21 - 1 }), whiteout('odd/quote"d'), dir('tmp'), opaque('tmp')],
      [],
    ]);
    const { analysis, fileLists } = await analyzeLayers({
      source: 'test "source"',
      imageId: 'sha256:test' as Digest,
      names: ['n\u00e4me'],
      history: undefined,
      layers: listings.map((listing, i) => ({ diffId: `sha256:${i}` as Digest, listing })),
      base: { layers: 1, how: 'flag' },
      lines: new Map(),
      attribution: 'none',
      singleStage: undefined,
    });
    assert.ok(analysis.kiln.wasted.length > 0, 'the layers waste bytes');
    const text = Buffer.concat([...analysisJson(analysis, fileLists)].map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece))).toString();
    const expected = JSON.stringify({ ...analysis, layer: analysis.layer.map((layer) => ({ ...layer, fileList: Array.from({ length: fileLists[layer.index]?.length ?? 0 }, (_, i) => diveEntry((fileLists[layer.index] as LayerEntries).entry(i))) })) }, null, 2);
    assert.equal(text, `${expected}\n`);
  });
});
