import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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

/** The addon `npm ci` builds from native/ when ISA-L's headers are installed (Debian: libisal-dev). */
const ADDON = fileURLToPath(new URL('../../../native/build/Release/igzip.node', import.meta.url));

let loaded: IgzipAddon | null | undefined;

/** The addon, loaded on first use; undefined when it was not built (node:zlib does the work then). */
export function igzip(): IgzipAddon | undefined {
  loaded ??= existsSync(ADDON) ? (createRequire(import.meta.url)(ADDON) as IgzipAddon) : null;
  return loaded ?? undefined;
}
