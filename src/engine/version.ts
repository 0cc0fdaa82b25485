import { arch, release } from 'node:os';
import { gzipLibrary } from '../layer/igzip.js';

/** kiln's version (package.json's; a unit test keeps the two equal). */
export const KILN_VERSION = '0.1.0';
/** The Engine API versions `kiln serve` speaks, newest and oldest. */
export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.24';

export interface VersionInfo {
  readonly Version: string;
  readonly ApiVersion: string;
  readonly MinAPIVersion: string;
  /** The runtime kiln runs on, where Docker names its Go version. */
  readonly GoVersion: string;
  readonly Os: string;
  readonly Arch: string;
  readonly KernelVersion: string;
  /** kiln's own: the library gzip goes through (ISA-L, or node:zlib when native/ is not built). */
  readonly Gzip: string;
}

/** What `kiln version` and the API's `/version` report, in Docker's field names. */
export function versionInfo(): VersionInfo {
  return {
    Version: KILN_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GoVersion: `node${process.versions.node}`,
    Os: 'linux',
    Arch: arch() === 'x64' ? 'amd64' : arch(),
    KernelVersion: release(),
    Gzip: gzipLibrary(),
  };
}
