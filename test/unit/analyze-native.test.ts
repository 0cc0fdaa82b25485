import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { link, mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ImageAnalysis } from '../../src/analyze/analysis.js';
import { analysisJson } from '../../src/analyze/json.js';
import { LayerEntries, listLayer, scanLayerFile } from '../../src/analyze/layers/walk.js';
import type { TarInput } from '../../src/layer/tar/writer.js';
import type { Digest } from '../../src/oci/digest.js';
import { sys } from '../../src/sys.js';
import { checkedFigures, dir, file, hardlink, layerTar, opaque, symlink as symlinkEntry, whiteout } from '../helpers/analyze-layers.js';
import { tempDir } from '../helpers/paths.js';
import { reseal } from '../helpers/tar.js';

/**
 * native/sys's tarscan, tarjson, figures and hashranges do, faster, what walk.ts, json.ts, tree.ts,
 * dive.ts, overlay.ts and waste.ts do: on every tar
 * tarscan reads, its entries must be the JavaScript scan's, field for field; tarjson's text must be
 * json.ts's; what it leaves (undefined) the JavaScript scan reads.
 */
const addon = sys();
const NO_DIFF_ID = `sha256:${'0'.repeat(64)}` as Digest;
const skip = addon?.tarscan && addon.tarjson && addon.hashranges && addon.figures ? false : 'native/sys is not built with tarscan (npm run install)';

/** A tar behind a few bytes of something else, as a layer lies in an archive: [path, start, end]. */
async function placed(bytes: Buffer): Promise<[string, number, number]> {
  const path = join(await tempDir(), 'archive');
  await writeFile(path, Buffer.concat([Buffer.from('lead'), bytes]));
  return [path, 4, 4 + bytes.length];
}

function columns(entries: LayerEntries): unknown[] {
  return Array.from({ length: entries.length }, (_, i) => entries.entry(i));
}

/** The tar's entries through tarscan (undefined when it leaves the tar) and through the JavaScript scan. */
async function bothScans(bytes: Buffer): Promise<{ native: LayerEntries | undefined; js: LayerEntries }> {
  const [path, start, end] = await placed(bytes);
  const handle = await open(path, 'r');
  try {
    const scanned = await addon?.tarscan?.(handle.fd, start, end);
    const js = await scanLayerFile(handle.fd, start, end, 'test layer', false);
    return { native: scanned && LayerEntries.unpack(scanned), js };
  } finally {
    await handle.close();
  }
}

/** The JSON document's text with the file lists json.ts writes, and with those tarjson made. */
async function documents(entries: LayerEntries): Promise<[string, string]> {
  const document: ImageAnalysis = {
    layer: [{ index: 0, digestId: 'sha256:0', sizeBytes: 0, command: '' }],
    image: { sizeBytes: 0, inefficientBytes: 0, efficiencyScore: 1, fileReference: [] },
    kiln: { wasted: [] } as unknown as ImageAnalysis['kiln'],
  };
  const rendered = await entries.fileListJson();
  assert.ok(rendered, 'tarjson made the list');
  const text = (pieces: Iterable<string | Buffer>): string => Buffer.concat([...pieces].map((p) => (typeof p === 'string' ? Buffer.from(p) : p))).toString();
  return [text(analysisJson(document, [entries])), text(analysisJson(document, [entries], [rendered]))];
}

const usual: TarInput[] = [
  dir('etc'),
  file('etc/passwd', 'root:x:0:0'),
  file('./etc/dotted', 'a', { mode: 0o4755, uid: 1000, gid: 1001 }),
  file('etc/sticky', 'b', { mode: 0o3777 }),
  symlinkEntry('etc/link', '../target with "quotes" and \\'),
  hardlink('etc/hard', './etc/passwd'),
  { header: { path: 'etc/fifo', type: 'fifo', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } },
  file(`long/${'segment/'.repeat(20)}name`, 5),
  symlinkEntry('long-link', 'x'.repeat(150)),
  file('ünïcode/名前', 'é'),
  file('odd\nname\t"\u0001', 'x'),
  file('big-ids', 'i', { uid: 9_000_000, gid: 9_000_001 }),
  whiteout('etc/gone'),
  opaque('var/cache'),
  { header: { path: '.wh..wh.plnk/1', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } },
  { header: { path: './', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 } },
  file('big', 700_000),
  ...Array.from({ length: 300 }, (_, i) => file(`many/f${i}`, (i * 37) % 1500)),
];

describe('native analysis: tarscan, tarjson, figures, hashranges', { skip }, () => {
  it('tarscan reads the usual tars as the JavaScript scan does, and tarjson writes their list as json.ts does', async () => {
    const { native, js } = await bothScans(await layerTar(usual));
    assert.ok(native, 'tarscan read the tar (PAX and long names, UTF-8, whiteouts are usual)');
    assert.equal(native.length, js.length);
    assert.deepEqual(columns(native), columns(js));
    const [written, rendered] = await documents(native);
    assert.equal(rendered, written);
    assert.equal((JSON.parse(rendered) as { layer: { fileList: unknown[] }[] }).layer[0]?.fileList.length, js.length);
  });

  it('GNU tar\'s own long names and links (its L and K headers) as the JavaScript scan reads them', async () => {
    const root = await tempDir();
    const long = `${'deep/'.repeat(25)}file`;
    await mkdir(join(root, 'tree', long, '..'), { recursive: true });
    await writeFile(join(root, 'tree', long), 'content');
    await symlink(`../${'t'.repeat(120)}`, join(root, 'tree', 'link'));
    await link(join(root, 'tree', long), join(root, 'tree', 'hard'));
    const archive = join(root, 'gnu.tar');
    execFileSync('tar', ['--format=gnu', '-C', join(root, 'tree'), '-cf', archive, '.']);
    const { native, js } = await bothScans(await readFile(archive));
    assert.ok(native, 'tarscan read the GNU tar');
    assert.deepEqual(columns(native), columns(js));
    assert.ok(native.names.includes(long) && native.links.size === 2);
    const [written, rendered] = await documents(native);
    assert.equal(rendered, written);
  });

  it('an empty layer: no entries, an empty list', async () => {
    const { native, js } = await bothScans(await layerTar([]));
    assert.equal(native?.length, 0);
    assert.equal(js.length, 0);
    const [written, rendered] = await documents(native ?? js);
    assert.equal(rendered, written);
  });

  it('leaves the odd tars to the JavaScript scan: base-256, a latin1 name, a path to clean, devices, a bad checksum, a tar cut short', async () => {
    const base256 = await layerTar([file('f', 'abc')]);
    Buffer.from([0x80, 0, 0, 0, 0, 0x2d, 0xc6, 0xc0]).copy(base256, 108);
    const latin1 = await layerTar([file('cafe', 'x')]);
    latin1[3] = 0xe9;
    const corrupt = await layerTar([file('a', 'x'), file('b', 'y')]);
    corrupt[1024 + 10] = 0x7e;
    const cut = await layerTar([file('a', 1000)]);
    const odd: Buffer[] = [
      reseal(base256),
      reseal(latin1),
      await layerTar([file('a/../b', 'x')]),
      await layerTar([file('/abs', 'x')]),
      await layerTar([{ header: { path: 'dev/null', type: 'char', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 0, devmajor: 1, devminor: 3 } }]),
      corrupt,
      cut.subarray(0, 700),
    ];
    for (const [i, bytes] of odd.entries()) {
      const [path, start, end] = await placed(bytes);
      const handle = await open(path, 'r');
      try {
        assert.equal(await addon?.tarscan?.(handle.fd, start, end), undefined, `tar ${i} is left to the JavaScript scan`);
      } finally {
        await handle.close();
      }
    }
    // And the listing still reads them, or says what is wrong, as before.
    const { js } = await bothScans(reseal(latin1));
    assert.equal(js.names[0], 'café');
    const [path, start, end] = await placed(corrupt);
    const handle = await open(path, 'r');
    try {
      await assert.rejects(scanLayerFile(handle.fd, start, end, 'test layer'), /bad header checksum after entry "a"/);
    } finally {
      await handle.close();
    }
  });

  it('figures: the same index, dive figures, stacked layers and wasted list as JavaScript computes, on 200 random images', async () => {
    // Names with ASCII, two-, three- and four-byte UTF-8 (surrogate pairs and U+E000 order differently in
    // UTF-16 than in UTF-8), quotes and spaces; deep paths whose directories no entry names.
    const SEGMENTS = ['a', 'b', 'é', '名', '😀', '\ue000', 'x y', 'q"', 'deep'];
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(list: readonly T[]): T => list[random(list.length)] as T;
    const pathOf = (): string => Array.from({ length: 1 + random(3) }, () => pick(SEGMENTS)).join('/');
    // Wasted paths of equal size sort by path as JavaScript compares strings: U+1F600 (a surrogate pair) before U+E000.
    const ties = ['\ue000', '😀', 'z', 'é', 'a/😀', 'a/\ue000'];
    const { kiln } = await checkedFigures([ties.map((path) => file(path, 5)), ties.map((path) => whiteout(path))], 0);
    assert.deepEqual(
      kiln.wasted.map((w) => w.path),
      ['/a/😀', '/a/\ue000', '/z', '/é', '/😀', '/\ue000'],
    );
    for (let image = 0; image < 200; image++) {
      const layers: TarInput[][] = Array.from({ length: 1 + random(4) }, () => {
        const entries: TarInput[] = [];
        const files: string[] = [];
        for (let n = 2 + random(14); n > 0; n--) {
          const path = pathOf();
          const what = random(10);
          if (what < 4) {
            entries.push(file(path, pick([0, 1, 5, 5, 100, 4096])));
            files.push(path);
          } else if (what < 5) entries.push(dir(path));
          else if (what < 6) entries.push(symlinkEntry(path, pathOf()));
          else if (what < 7) entries.push(hardlink(path, files.length > 0 && random(4) > 0 ? pick(files) : pathOf()));
          else if (what < 9) entries.push(whiteout(path));
          else entries.push(opaque(path));
        }
        return entries;
      });
      await checkedFigures(layers, random(layers.length + 1));
    }
  });

  it('a big tar is read in pieces as it is read whole, also where a piece starts inside a file that holds a tar, or in a run of PAX headers', async () => {
    // Regions of a 36 MB tar in five orders, so that the middle, where tarscan's second piece starts,
    // falls in each: a big file, a file whose body is itself a tar (whose headers look real), entries with
    // PAX headers (long names), another big file, small files.
    const inner = await layerTar(Array.from({ length: 4000 }, (_, i) => file(`inner/f${i}`, 1000)));
    const regions: TarInput[][] = [
      [file('big/one', 14 << 20)],
      [{ header: { mode: 0o644, uid: 0, gid: 0, mtime: 0, path: 'nested/inner.tar', type: 'file', size: inner.length }, body: inner }],
      Array.from({ length: 2500 }, (_, i) => file(`pax/${'long-name-'.repeat(12)}${i}`, 700)),
      [file('big/two', 12 << 20)],
      Array.from({ length: 1500 }, (_, i) => file(`small/f${i}`, (i * 97) % 700)),
    ];
    for (let turn = 0; turn < regions.length; turn++) {
      const entries = [...regions.slice(turn), ...regions.slice(0, turn)].flat();
      const { native, js } = await bothScans(await layerTar(entries));
      assert.ok(native, `order ${turn}: tarscan read the tar`);
      assert.equal(native.length, js.length);
      assert.deepEqual(columns(native), columns(js), `order ${turn}`);
    }
    // A header spoilt in the second piece: the whole tar goes to the JavaScript scan, which says where.
    const bytes = await layerTar(regions.flat());
    const { js } = await bothScans(bytes);
    const last = (js.offsets[js.length - 1] as number) - 512;
    bytes.writeUInt8((bytes.readUInt8(last + 10) ^ 0xff) & 0xff, last + 10);
    const [path, start, end] = await placed(bytes);
    const handle = await open(path, 'r');
    try {
      assert.equal(await addon?.tarscan?.(handle.fd, start, end), undefined);
      await assert.rejects(scanLayerFile(handle.fd, start, end, 'test layer'), /bad header checksum after entry "small\/f1498"/);
    } finally {
      await handle.close();
    }
  });

  it('hashranges: the SHA-256 of each range, and undefined for a range past the end', async () => {
    const bytes = Buffer.from('0123456789'.repeat(300_000));
    const [path] = await placed(bytes);
    const digests = await addon?.hashranges?.(path, new Float64Array([4, 10, 14, 0, 100, 2_500_000]));
    const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
    assert.equal(digests?.subarray(0, 32).toString('hex'), sha(bytes.subarray(0, 10)));
    assert.equal(digests?.subarray(32, 64).toString('hex'), sha(Buffer.alloc(0)));
    assert.equal(digests?.subarray(64, 96).toString('hex'), sha(bytes.subarray(96, 96 + 2_500_000)));
    assert.equal(await addon?.hashranges?.(path, new Float64Array([3_000_000, 10])), undefined);
  });

  it('a listing from a local file fingerprints its files by their content', async () => {
    const bytes = await layerTar([file('a', 'same'), file('b', 'same'), file('c', 'other'), file('d', 3_000_000)]);
    const [path, start, end] = await placed(bytes);
    const listing = await listLayer({ mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: NO_DIFF_ID, open: () => Promise.reject(new Error('read in place')), locate: () => Promise.resolve({ path, start, size: end - start }) }, 'test layer');
    await listing.fingerprint([0, 1, 2, 3]);
    const digest = (content: string | Buffer): string => createHash('sha256').update(content).digest('base64');
    assert.deepEqual([0, 1, 2, 3].map((i) => listing.fingerprints.get(i)), [digest('same'), digest('same'), digest('other'), digest(Buffer.alloc(3_000_000, 'd'))]);
    const cut = await placed(bytes.subarray(0, 2048 + 512 * 3));
    const truncated = await listLayer({ mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: NO_DIFF_ID, open: () => Promise.reject(new Error('read in place')), locate: () => Promise.resolve({ path: cut[0], start: cut[1], size: cut[2] - cut[1] }) }, 'test layer').catch((err: Error) => err);
    assert.match(truncated instanceof Error ? truncated.message : 'listed', /unexpected end of data/);
  });
});
