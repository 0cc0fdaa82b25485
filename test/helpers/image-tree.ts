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
  /** A regular file's size in bytes. */
  readonly size?: number;
  /** sha256 of a file's content (first 12 hex) or a symlink's target. */
  readonly content?: string;
  /** Extended attributes, `name=value` (values hex), sorted. */
  readonly xattrs?: readonly string[];
  /** The other names of a regular file that are the same file (hardlinks), sorted. */
  readonly links?: readonly string[];
}

/**
 * The root filesystem of the first image in a `docker save` archive, flattened: layers applied in order
 * with their whiteouts; the names of one file (hardlinks in a layer) are a group, which a later layer
 * that writes one of them leaves (as overlayfs's copy-up does).
 */
export async function savedImageTree(archive: string): Promise<{ config: ImageConfig; files: Map<string, TreeEntry> }> {
  const [named] = await readDockerArchive(await TarTree.open(archive, archive));
  if (!named) throw new Error(`${archive} holds no image`);
  const files = new Map<string, TreeEntry>();
  /** Path → the first name of its file (only for files with other names). */
  const inode = new Map<string, string>();
  const remove = (path: string, keepSelf = false): void => {
    for (const key of [...files.keys()]) {
      if ((key === path && !keepSelf) || key.startsWith(`${path === '/' ? '' : path}/`)) {
        files.delete(key);
        inode.delete(key);
      }
    }
  };
  for (const layer of named.image.layers) {
    const { stream } = await autoDecompress(await layer.open());
    for await (const { header, body } of readTar(stream)) {
      const path = posix.normalize(`/${header.path}`).replace(/\/$/, '') || '/';
      const base = posix.basename(path);
      const dir = posix.dirname(path);
      const hash = createHash('sha256');
      for await (const chunk of body) hash.update(chunk);
      if (base === '.wh..wh..opq') {
        remove(dir, true);
        continue;
      }
      if (base.startsWith('.wh.')) {
        remove(posix.join(dir, base.slice(4)));
        continue;
      }
      if (header.type !== 'directory' || files.get(path)?.type !== 'directory') remove(path);
      const owner = `${header.uid}:${header.gid}`;
      const mode = (header.mode & 0o7777).toString(8);
      const xattrs = header.xattrs && header.xattrs.size > 0 ? [...header.xattrs].map(([k, v]) => `${k}=${v.toString('hex')}`).sort() : undefined;
      const extra = xattrs ? { xattrs } : {};
      if (header.type === 'hardlink') {
        const targetPath = posix.normalize(`/${header.linkname ?? ''}`);
        const target = files.get(targetPath);
        if (target) {
          files.set(path, target);
          inode.set(targetPath, inode.get(targetPath) ?? targetPath);
          inode.set(path, inode.get(targetPath) as string);
        } else files.set(path, { type: 'dangling hardlink', mode, owner, content: targetPath });
      } else if (header.type === 'file') {
        files.set(path, { type: 'file', mode, owner, size: header.size, content: hash.digest('hex').slice(0, 12), ...extra });
      } else if (header.type === 'symlink') {
        files.set(path, { type: 'symlink', mode: '777', owner, content: header.linkname ?? '', ...extra });
      } else {
        files.set(path, { type: header.type, mode, owner, ...extra });
      }
    }
  }
  const groups = new Map<string, string[]>();
  for (const [path, first] of inode) groups.set(first, [...(groups.get(first) ?? []), path]);
  for (const names of groups.values()) {
    if (names.length < 2) continue;
    for (const path of names) files.set(path, { ...(files.get(path) as TreeEntry), links: names.filter((n) => n !== path).sort() });
  }
  return { config: named.image.config, files };
}
