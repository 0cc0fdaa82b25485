import { buffer } from 'node:stream/consumers';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';
import { type LayerListing, listTar } from '../../src/analyze/layers/walk.js';

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
