import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { autoDecompress } from '../../src/layer/compression.js';
import { readTar } from '../../src/layer/tar/reader.js';
import type { ImageConfig } from '../../src/oci/types.js';
import { readDockerArchive } from '../../src/transport/docker-archive.js';
import { TarTree } from '../../src/transport/tar-tree.js';

/** One path of a flattened image: what a user would compare (no times). */
export interface TreeEntry {
  readonly type: string;
  readonly mode: string;
  readonly owner: string;
  /** sha256 of a file's content (first 12 hex) or a symlink's target. */
  readonly content?: string;
}

/**
 * The root filesystem of the first image in a `docker save` archive, flattened: layers applied in order
 * with their whiteouts, hardlinks taken as the file they name.
 */
export async function savedImageTree(archive: string): Promise<{ config: ImageConfig; files: Map<string, TreeEntry> }> {
  const [named] = await readDockerArchive(await TarTree.open(archive, archive));
  if (!named) throw new Error(`${archive} holds no image`);
  const files = new Map<string, TreeEntry>();
  const remove = (path: string): void => {
    for (const key of [...files.keys()]) if (key === path || key.startsWith(`${path}/`)) files.delete(key);
  };
  for (const layer of named.image.layers) {
    const { stream } = await autoDecompress(await layer.open());
    for await (const { header, body } of readTar(stream)) {
      const path = posix.normalize(`/${header.path}`).replace(/\/$/, '') || '/';
      const base = posix.basename(path);
      const dir = posix.dirname(path);
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      if (base === '.wh..wh..opq') {
        for (const key of [...files.keys()]) if (key.startsWith(`${dir === '/' ? '' : dir}/`)) files.delete(key);
        continue;
      }
      if (base.startsWith('.wh.')) {
        remove(posix.join(dir, base.slice(4)));
        continue;
      }
      if (header.type !== 'directory') remove(path);
      const owner = `${header.uid}:${header.gid}`;
      const mode = (header.mode & 0o7777).toString(8);
      if (header.type === 'hardlink') {
        const target = files.get(posix.normalize(`/${header.linkname ?? ''}`));
        files.set(path, target ?? { type: 'file', mode, owner });
      } else if (header.type === 'file') {
        files.set(path, { type: 'file', mode, owner, content: createHash('sha256').update(Buffer.concat(chunks)).digest('hex').slice(0, 12) });
      } else if (header.type === 'symlink') {
        files.set(path, { type: 'symlink', mode: '777', owner, content: header.linkname ?? '' });
      } else {
        files.set(path, { type: header.type, mode, owner });
      }
    }
  }
  return { config: named.image.config, files };
}
