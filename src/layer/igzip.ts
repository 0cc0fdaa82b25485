import { optionalAddon } from '../addon.js';

/** native/igzip.c: gzip through Intel's ISA-L. */
export interface IgzipAddon {
  /** One whole gzip member of `block`, at ISA-L's `level` (0 to 3). */
  gzipMember(block: Uint8Array, level: number): ArrayBuffer;
  /**
   * A streaming gunzip of one or more members. `write` returns the output buffers it filled (each 1 MiB,
   * so they can move to another thread whole); `end` returns the rest, or throws if the data stops short.
   * Faults are thrown with zlib's words ("incorrect data check").
   */
  Gunzip: new () => { write(chunk: Uint8Array): ArrayBuffer[]; end(): Uint8Array[] };
}

/**
 * The addon `npm ci` builds from native/ when ISA-L's headers are installed (Debian: libisal-dev);
 * undefined when it was not built, or cannot load (ISA-L's library was removed since): node:zlib does the
 * work then, and `kiln version` says which one is in use.
 */
export const igzip = optionalAddon<IgzipAddon>(new URL('../../../native/build/Release/igzip.node', import.meta.url));

/** Which library kiln's gzip goes through, for `kiln version` and the API's `/version`. */
export function gzipLibrary(): string {
  return igzip() ? 'ISA-L (native/igzip.node)' : 'node:zlib (native/ not built: see README)';
}
