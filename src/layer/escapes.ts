import { posix } from 'node:path';
import { KilnError } from '../errors.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './whiteout.js';
import type { TarHeader } from './tar/header.js';

/**
 * The checks a layer gets where it enters the store (scanLayer), on its own entries alone: entries that
 * no unpack could place inside the root, whatever the layers below hold. Refused are a name or a
 * hardlink's target that climbs out with `..`, a hardlink to the root itself, a whiteout with no name,
 * and an entry written (or a hardlink's target reached) through a symlink that an earlier entry of the
 * same layer made. What depends on the layers below (a symlink of theirs that this layer writes through,
 * a hardlink to a file that is not there) only an unpack can tell: applyLayer refuses it on the real tree.
 * Lifecycle: one per layer, `check` called on every entry in archive order.
 */
export class LayerEscapes {
  /** The symlinks the entries so far have left, by path relative to the root. */
  private readonly symlinks = new Set<string>();
  /** Every directory some symlink was made under: where an entry that replaces a directory must look. */
  private readonly aboveSymlinks = new Set<string>();

  constructor(private readonly what: string) {}

  check(header: TarHeader): void {
    const path = this.inside(header, header.path, 'points outside the root filesystem');
    if (path === '') return; // the root directory's own entry
    this.notThrough(header, path, 'would be written through the symlink');
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (base === WHITEOUT_PREFIX) this.refuse(header, 'is a whiteout with no name');
      if (base !== OPAQUE_MARKER) this.forget(`${path.slice(0, slash + 1)}${base.slice(WHITEOUT_PREFIX.length)}`);
      return;
    }
    let linksSymlink = false;
    if (header.type === 'hardlink') {
      const quoted = JSON.stringify(header.linkname ?? '');
      const target = this.inside(header, header.linkname ?? '', `is a hardlink to ${quoted}, which points outside the root filesystem`);
      if (target === '') this.refuse(header, 'is a hardlink to the root directory');
      this.notThrough(header, target, `is a hardlink to ${quoted}, reached through the symlink`);
      linksSymlink = this.symlinks.has(target); // a hardlink to a symlink is one more symlink
    }
    // An entry replaces what was at its path: a directory keeps what is under it, anything else does not.
    if (header.type === 'directory') this.symlinks.delete(path);
    else this.forget(path);
    if (header.type === 'symlink' || linksSymlink) {
      this.symlinks.add(path);
      for (let at = path.indexOf('/'); at >= 0; at = path.indexOf('/', at + 1)) this.aboveSymlinks.add(path.slice(0, at));
    }
  }

  /** `name` relative to the root, without a trailing slash ('' for the root); refused when it climbs out. */
  private inside(header: TarHeader, name: string, why: string): string {
    const relative = posix.normalize(name.replace(/^\/+/, ''));
    if (relative === '..' || relative.startsWith('../')) this.refuse(header, why);
    return relative === '.' ? '' : relative.replace(/\/+$/, '');
  }

  /** Refuses `path` when one of its parents is a symlink the layer made. */
  private notThrough(header: TarHeader, path: string, why: string): void {
    if (this.symlinks.size === 0) return;
    for (let at = path.indexOf('/'); at >= 0; at = path.indexOf('/', at + 1)) {
      const parent = path.slice(0, at);
      if (this.symlinks.has(parent)) this.refuse(header, `${why} ${JSON.stringify(parent)}`);
    }
  }

  /** `path` and everything under it are gone. */
  private forget(path: string): void {
    this.symlinks.delete(path);
    if (!this.aboveSymlinks.has(path)) return;
    for (const link of this.symlinks) if (link.startsWith(`${path}/`)) this.symlinks.delete(link);
  }

  private refuse(header: TarHeader, why: string): never {
    throw new KilnError('INVALID_INPUT', `${this.what}: entry ${JSON.stringify(header.path)} ${why}`);
  }
}
