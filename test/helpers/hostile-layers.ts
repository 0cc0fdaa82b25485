import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { buffer } from 'node:stream/consumers';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type TarInput, writeTar } from '../../src/layer/tar/writer.js';

/** A tar entry for a test layer: a file's body is `size` bytes of 'x'. */
export const h = (path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): TarInput => {
  const header: TarHeader = { path, type, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtime: 0, ...extra };
  return { header, body: type === 'file' ? Buffer.alloc(header.size, 0x78) : undefined };
};
export const file = (path: string) => h(path, 'file', { size: 4 });
export const sym = (path: string, linkname: string) => h(path, 'symlink', { linkname });
export const hard = (path: string, linkname: string) => h(path, 'hardlink', { linkname });

export interface HostileLayer {
  readonly name: string;
  readonly entries: readonly TarInput[];
  /** How the refusal reads (after "<what>: entry <path> "). */
  readonly message: RegExp;
  /**
   * Unsafe whatever the layers below hold, so refused where the layer enters the store (load, pull,
   * import) as well as at unpack; the others depend on the tree below, or on privilege, and only an
   * unpack can tell.
   */
  readonly atIngest: boolean;
  readonly options?: { readonly privileged?: boolean; readonly whiteouts?: 'overlay' | 'delete' };
}

const hostile = (name: string, entries: TarInput[], message: RegExp, atIngest: boolean, options?: HostileLayer['options']): HostileLayer => ({ name, entries, message, atIngest, ...(options ? { options } : {}) });

/** Hostile layers: each must be refused with a clear error and write nothing outside the root. */
export const HOSTILE_LAYERS: readonly HostileLayer[] = [
  hostile('a relative climb', [file('../evil')], /points outside/, true),
  hostile('a climb after a directory', [file('a/../../evil')], /points outside/, true),
  hostile('an absolute climb', [file('/../evil')], /points outside/, true),
  hostile('a deep climb', [file('../../../../../../tmp/evil')], /points outside/, true),
  hostile('exactly ..', [h('..', 'directory')], /points outside/, true),
  hostile('a directory climb', [h('../newdir/', 'directory')], /points outside/, true),
  hostile('a long PAX name that climbs', [file(`x/${'y'.repeat(120)}/../../../evil`)], /points outside/, true),
  // No filesystem takes these: the system calls failed with ENAMETOOLONG, an internal error (ADD of such an archive).
  hostile('a name over 255 bytes', [file(`d/${'n'.repeat(256)}`)], /has a name longer than the 255 bytes a file name can have/, false),
  hostile('a path over 4095 bytes', [file(`${'d/'.repeat(2100)}f`)], /has a path longer than the 4095 bytes a path can have/, false),
  hostile('a symlink to a path over 4095 bytes', [sym('link', 'x'.repeat(4096))], /is a symlink to a path longer than the 4095 bytes/, false),
  hostile('a file through an absolute symlink', [sym('link', '/outside'), file('link/evil')], /through the symlink "link"/, true),
  hostile('a file through a relative symlink', [sym('link', '../outside'), file('link/evil')], /through the symlink/, true),
  hostile('a file through a symlink to ..', [sym('link', '..'), file('link/outside/evil')], /through the symlink/, true),
  hostile('a file through a symlink chain', [sym('a', 'b'), sym('b', '../outside'), file('a/evil')], /through the symlink/, true),
  hostile('a file through a symlink to /', [sym('link', '/'), file('link/tmp/evil')], /through the symlink/, true),
  hostile('a directory through a symlink', [sym('link', '../outside'), h('link/sub/', 'directory')], /through the symlink/, true),
  hostile('a nested path through a symlinked directory', [h('d/', 'directory'), sym('d/link', '/'), file('d/link/etc/evil')], /through the symlink "d\/link"/, true),
  hostile('a symlink replaced then written through', [h('x/', 'directory'), sym('x', '../outside'), file('x/evil')], /through the symlink/, true),
  hostile('a hardlink through a symlink', [sym('link', '../outside'), hard('link/h', 'file')], /through the symlink/, true),
  hostile('a fifo through a symlink', [sym('link', '../outside'), h('link/fifo', 'fifo')], /through the symlink/, true),
  hostile('a hardlink that climbs out', [hard('h', '../outside/secret')], /points outside/, true),
  hostile('a hardlink to an absolute host path', [hard('h', '/etc/passwd')], /does not exist/, false),
  hostile('a hardlink whose target passes a symlink', [sym('link', '../outside'), hard('h', 'link/secret')], /through the symlink/, true),
  hostile('a hardlink to a directory', [h('d/', 'directory'), hard('h', 'd')], /hardlink to the directory/, false),
  hostile('a hardlink to nothing', [hard('h', 'missing')], /does not exist/, false),
  hostile('a hardlink to the root', [hard('h', '.')], /root directory/, true),
  hostile('a whiteout that climbs', [h('../.wh.outside', 'file')], /points outside/, true),
  hostile('a whiteout through a symlink', [sym('link', '../outside'), h('link/.wh.secret', 'file')], /through the symlink/, true),
  hostile('a whiteout with no name', [h('.wh.', 'file')], /whiteout with no name/, true),
  hostile('an opaque marker through a symlink', [sym('link', '../outside'), h('link/.wh..wh..opq', 'file')], /through the symlink/, true),
  hostile('a char device without privilege', [h('dev/mem', 'char', { devmajor: 1, devminor: 1 })], /device node, which needs root/, false, { privileged: false }),
  hostile('a block device without privilege', [h('dev/sda', 'block', { devmajor: 8, devminor: 0 })], /device node, which needs root/, false, { privileged: false }),
  hostile('an overlay whiteout without privilege', [h('.wh.gone', 'file')], /need root/, false, { privileged: false, whiteouts: 'overlay' }),
  hostile('a file under a file', [file('f'), file('f/child')], /not a directory/, false),
  hostile('a file through a hardlink to a symlink', [sym('link', '../outside'), hard('alias', 'link'), file('alias/evil')], /through the symlink "alias"/, true),
];

/** Layers shaped like hostile ones that are sound: neither the store's door nor an unpack may refuse them. */
export const SOUND_LAYERS: readonly { readonly name: string; readonly entries: readonly TarInput[] }[] = [
  { name: 'a symlink replaced by a directory, then written under', entries: [sym('x', '../outside'), h('x/', 'directory'), file('x/f')] },
  { name: 'a symlink whited out, then a directory in its place', entries: [sym('x', '/etc'), h('.wh.x', 'file'), h('x/', 'directory'), file('x/f')] },
  { name: 'a directory holding a symlink replaced by a file, then by a directory again', entries: [h('d/', 'directory'), sym('d/s', '/'), file('d'), h('d/', 'directory'), file('d/s/f')] },
  { name: 'symlinks out of the root that nothing is written through', entries: [sym('up', '../../..'), sym('abs', '/etc/passwd'), file('other')] },
  { name: 'a hardlink by an absolute name to a file of the layer', entries: [h('etc/', 'directory'), file('etc/passwd'), hard('h', '/etc/passwd')] },
  { name: 'names with .. that stay inside', entries: [h('a/', 'directory'), file('a/../b'), file('..x')] },
];

/**
 * Writes to `path` a `docker save` archive (the legacy layout) of one image named `tag`, its layers made
 * of `layers`, its config's history and creation time the given ones (none when not given).
 */
export async function imageArchive(path: string, tag: string, layers: readonly (readonly TarInput[])[], history?: readonly { readonly created_by: string; readonly empty_layer?: boolean }[], created?: string): Promise<string> {
  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
  const tars = await Promise.all(layers.map((entries) => buffer(writeTar(entries))));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: tars.map((tar) => `sha256:${sha256(tar)}`) }, ...(history ? { history } : {}), ...(created ? { created } : {}) }));
  const files = new Map<string, Buffer>([[`${sha256(config)}.json`, config], ...tars.map((tar): [string, Buffer] => [`${sha256(tar)}/layer.tar`, tar])]);
  files.set('manifest.json', Buffer.from(JSON.stringify([{ Config: `${sha256(config)}.json`, RepoTags: [tag], Layers: tars.map((tar) => `${sha256(tar)}/layer.tar`) }])));
  await writeFile(path, await buffer(writeTar([...files].map(([name, body]) => ({ ...h(name, 'file', { size: body.length }), body })))));
  return path;
}
