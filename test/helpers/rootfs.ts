import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One path of a root filesystem: what an unpack must get right (no times). */
export interface TreeEntry {
  readonly path: string;
  readonly type: 'dir' | 'file' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  readonly mode: string;
  readonly uid: number;
  readonly gid: number;
  readonly size?: number;
  readonly sha256?: string;
  readonly linkname?: string;
}

/** Walks a directory into entries plus the inode of every regular file (hardlinks share one). */
export async function walkTree(root: string, skip: readonly string[] = []): Promise<{ entries: Map<string, TreeEntry>; inodes: Map<string, number> }> {
  const entries = new Map<string, TreeEntry>();
  const inodes = new Map<string, number>();
  async function visit(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const path = `${rel}/${name}`;
      if (skip.includes(path)) continue;
      const full = join(dir, name);
      const st = await lstat(full);
      const base = { path, mode: `0o${st.mode.toString(8)}`, uid: st.uid, gid: st.gid };
      if (st.isDirectory()) {
        entries.set(path, { ...base, type: 'dir' });
        await visit(full, path);
      } else if (st.isSymbolicLink()) {
        entries.set(path, { ...base, type: 'symlink', linkname: await readlink(full) });
      } else if (st.isFile()) {
        const sha256 = createHash('sha256').update(await readFile(full)).digest('hex');
        entries.set(path, { ...base, type: 'file', size: st.size, sha256 });
        inodes.set(path, st.ino);
      } else {
        entries.set(path, { ...base, type: st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'fifo' });
      }
    }
  }
  await visit(root, '');
  return { entries, inodes };
}

/** Asserts that an unpacked tree is exactly the expected one; hardlinks compare as shared inodes. */
export async function assertTreeMatches(root: string, expected: readonly TreeEntry[], skip: readonly string[] = []): Promise<void> {
  const { entries, inodes } = await walkTree(root, skip);
  const files = new Map(expected.filter((e) => e.type === 'file').map((e) => [e.path, e]));
  for (const want of expected) {
    const got = entries.get(want.path);
    assert.ok(got, `missing ${want.path}`);
    if (want.type === 'hardlink') {
      const target = `/${want.linkname?.replace(/^\//, '')}`;
      assert.equal(got.type, 'file', `${want.path} should be a file linked to ${target}`);
      assert.equal(inodes.get(want.path), inodes.get(target), `${want.path} and ${target} should share an inode`);
      const targetEntry = files.get(target);
      assert.equal(got.sha256, targetEntry?.sha256, `${want.path} content`);
      continue;
    }
    assert.deepEqual({ ...got }, { ...want }, `entry ${want.path}`);
  }
  const wanted = new Set(expected.map((e) => e.path));
  const extra = [...entries.keys()].filter((p) => !wanted.has(p));
  assert.deepEqual(extra, [], 'paths that should not be there');
}
