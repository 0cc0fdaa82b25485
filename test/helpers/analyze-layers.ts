import assert from 'node:assert/strict';
import { buffer } from 'node:stream/consumers';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageAnalysis } from '../../src/analyze/analysis.js';
import { contentNeeded, findings } from '../../src/analyze/findings.js';
import { analysisJson } from '../../src/analyze/json.js';
import { type DiveFigures, diveFigures } from '../../src/analyze/layers/dive.js';
import { nativeFigures } from '../../src/analyze/layers/native.js';
import { type Overlay, stackLayers } from '../../src/analyze/layers/overlay.js';
import { KIND, type LayerListing, listLayer, listTar } from '../../src/analyze/layers/walk.js';
import { type KilnFigures, kilnFigures } from '../../src/analyze/waste.js';
import { sys } from '../../src/sys.js';
import type { Digest } from '../../src/oci/digest.js';
import { tempDir } from './paths.js';

const NO_DIFF_ID = `sha256:${'0'.repeat(64)}` as Digest;

/** Entries of a layer tar for the analysis tests, written by kiln's own tar writer. */
const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 } as const;

export const dir = (path: string, extra: Partial<TarHeader> = {}): TarInput => ({ header: { ...base, mode: 0o755, path: `${path}/`, type: 'directory', ...extra } });
export const file = (path: string, content: string | number, extra: Partial<TarHeader> = {}): TarInput => {
  const body = typeof content === 'number' ? Buffer.alloc(content, path) : Buffer.from(content);
  return { header: { ...base, path, type: 'file', size: body.length, ...extra }, body };
};
export const hardlink = (path: string, target: string): TarInput => ({ header: { ...base, path, type: 'hardlink', linkname: target } });
export const symlink = (path: string, target: string): TarInput => ({ header: { ...base, mode: 0o777, path, type: 'symlink', linkname: target } });
/** A whiteout of `path`: an empty file named `.wh.<name>` beside it. */
export const whiteout = (path: string): TarInput => {
  const slash = path.lastIndexOf('/');
  return { header: { ...base, path: `${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`, type: 'file' } };
};
/** An opaque marker: `dir`'s content in the layers below is hidden. */
export const opaque = (path: string): TarInput => ({ header: { ...base, path: `${path}/.wh..wh..opq`, type: 'file' } });

/** A layer tar's bytes. */
export function layerTar(entries: readonly TarInput[]): Promise<Buffer> {
  return buffer(writeTar(entries));
}

/** Layers listed as the analysis lists a stream (every file's content hashed on the way). */
export async function listLayers(layers: readonly (readonly TarInput[])[]): Promise<LayerListing[]> {
  return Promise.all(layers.map(async (entries) => listTar([await layerTar(entries)], 'test layer')));
}

/** Layers listed as the analysis lists a layer lying uncompressed in a file: through native/sys's tarscan, where it is built. */
export async function listLayersInPlace(layers: readonly (readonly TarInput[])[]): Promise<LayerListing[]> {
  const dir = await tempDir();
  return Promise.all(
    layers.map(async (entries, i) => {
      const bytes = await layerTar(entries);
      const path = join(dir, `layer-${i}.tar`);
      await writeFile(path, bytes);
      return listLayer({ mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: NO_DIFF_ID, open: () => Promise.reject(new Error('read in place')), locate: () => Promise.resolve({ path, start: 0, size: bytes.length }) }, 'test layer');
    }),
  );
}

/** An overlay's columns and index, as plain values to compare (JavaScript's keep room beyond the paths and versions there are). */
function overlayColumns(overlay: Overlay): Record<string, unknown> {
  const { index } = overlay;
  const versions = overlay.layers.reduce((sum, entries) => sum + Array.from(entries.kinds.subarray(0, entries.length)).filter((kind) => kind !== KIND.whiteout && kind !== KIND.opaque).length, 0);
  const plain = (array: ArrayLike<number>, length = array.length): number[] => Array.from(array).slice(0, length);
  const columnsOf = overlay as unknown as Record<string, ArrayLike<number>>;
  return {
    paths: index.paths,
    parent: plain(index.parent, index.size),
    firstChild: plain(index.firstChild, index.size),
    nextSibling: plain(index.nextSibling, index.size),
    ...Object.fromEntries(['versionLayer', 'versionIndex', 'versionNode', 'endLayer', 'endDeleted', 'endBy'].map((key) => [key, plain(columnsOf[key] as ArrayLike<number>, versions)])),
    ...Object.fromEntries(['dead', 'deadBytes', 'live', 'liveBytes', 'layerBytes'].map((key) => [key, plain(columnsOf[key] as ArrayLike<number>)])),
  };
}

/** The wasted list's text in the JSON document, as json.ts writes it from the list, or as given. */
function wastedText(wasted: ImageAnalysis['kiln']['wasted'], given?: Buffer): string {
  const document = { layer: [], image: { sizeBytes: 0, inefficientBytes: 0, efficiencyScore: 1, fileReference: [] }, kiln: { wasted } } as unknown as ImageAnalysis;
  return Buffer.concat([...analysisJson(document, [], [], given)].map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece))).toString();
}

/**
 * dive's and kiln's figures of layers built here (bottom first; `baseLayers` for kiln's), computed in
 * JavaScript from the layers streamed; where native/sys is built, its figures of the same layers read in
 * place must be the same, to the order of every list and the text of the wasted list.
 */
export async function checkedFigures(layers: readonly (readonly TarInput[])[], baseLayers = 1): Promise<{ dive: DiveFigures; kiln: KilnFigures; overlay: Overlay }> {
  const listings = await listLayers(layers);
  const entries = listings.map((l) => l.entries);
  const overlay = stackLayers(entries);
  const figures = { dive: diveFigures(entries), kiln: kilnFigures(overlay, baseLayers), overlay };
  if (!sys()?.figures) return figures;
  const native = await nativeFigures((await listLayersInPlace(layers)).map((l) => l.entries), true, baseLayers);
  assert.ok(native, 'native/sys computed the figures');
  assert.deepEqual(native.dive, figures.dive);
  assert.deepEqual(overlayColumns(native.overlay), overlayColumns(overlay));
  const sorted = await native.sorted;
  const kiln = kilnFigures(native.overlay, baseLayers, { ...native.waste, order: sorted.order });
  assert.deepEqual({ ...kiln, wastedOrder: Array.from(kiln.wastedOrder) }, { ...figures.kiln, wastedOrder: Array.from(figures.kiln.wastedOrder) });
  assert.equal(wastedText(kiln.wasted, sorted.json), wastedText(figures.kiln.wasted));
  assert.deepEqual(native.contentNeeded, contentNeeded(overlay, baseLayers));
  // The findings read only the wasted versions native/sys names: the same findings.
  const context = { layers: [], baseLayers, singleStage: undefined, fingerprint: (layer: number, index: number) => listings[layer]?.fingerprints.get(index) };
  assert.deepEqual(findings(native.overlay, { ...context, findable: native.findable }), findings(overlay, context));
  return figures;
}
