import { join } from 'node:path';

/** Every file and directory kiln keeps under a store root (docs/architecture.md, *On disk*, says what each holds). */
export interface StorePaths {
  readonly root: string;
  readonly blobs: string;
  readonly ingest: string;
  readonly tmp: string;
  readonly db: string;
  readonly snapshots: string;
  readonly storageDriver: string;
  readonly containers: string;
  readonly builds: string;
  readonly cacheMounts: string;
  readonly volumes: string;
  readonly stepLogs: string;
  readonly netns: string;
  readonly cniIpam: string;
  readonly osvCache: string;
}

/** The paths under `root`: the one place a store's layout is written down. */
export function storePaths(root: string): StorePaths {
  return {
    root,
    blobs: join(root, 'blobs', 'sha256'),
    ingest: join(root, 'ingest'),
    tmp: join(root, 'tmp'),
    db: join(root, 'kiln.db'),
    snapshots: join(root, 'snapshots'),
    storageDriver: join(root, 'storage-driver'),
    containers: join(root, 'containers'),
    builds: join(root, 'builds'),
    cacheMounts: join(root, 'cache-mounts'),
    volumes: join(root, 'volumes'),
    stepLogs: join(root, 'step-logs'),
    netns: join(root, 'netns'),
    cniIpam: join(root, 'cni', 'ipam'),
    osvCache: join(root, 'cache', 'osv'),
  };
}
