/** `docker system df`: what images, containers and volumes take, as the API's /system/df answers. */
import { type ContainerSummary, listContainers, withSizes } from './containers.js';
import type { Engine } from './engine.js';
import type { DiskUsage } from './types.js';
import { type VolumeInfo, volumesDiskUsage } from './volumes.js';

export interface SystemDiskUsage {
  readonly images: DiskUsage;
  /** Every container, with its sizes. */
  readonly containers: readonly ContainerSummary[];
  /** Every volume, with its users and size. */
  readonly volumes: readonly VolumeInfo[];
}

export async function systemDiskUsage(engine: Engine): Promise<SystemDiskUsage> {
  return {
    images: engine.diskUsage(),
    containers: await withSizes(engine, listContainers(engine, { all: true, filters: new Map() })),
    volumes: await volumesDiskUsage(engine),
  };
}
