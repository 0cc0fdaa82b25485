import type { ContainerConfig } from '../oci/types.js';

/** One image in a listing, in the Docker Engine API's shape (`GET /images/json`). */
export interface ImageSummary {
  readonly Id: string;
  readonly ParentId: string;
  readonly RepoTags: readonly string[];
  readonly RepoDigests: readonly string[];
  /** Unix seconds. */
  readonly Created: number;
  readonly Size: number;
  /** API ≤ 1.43's copy of Size. */
  readonly VirtualSize: number;
  readonly SharedSize: number;
  readonly Labels: Readonly<Record<string, string>>;
  readonly Containers: number;
}

/** `docker image inspect`'s shape (`GET /images/{name}/json`). */
export interface ImageInspect {
  readonly Id: string;
  readonly RepoTags: readonly string[];
  readonly RepoDigests: readonly string[];
  readonly Parent: string;
  readonly Comment: string;
  readonly Created: string;
  /** The container a classic build committed, and its config (empty for other images). */
  readonly Container: string;
  readonly ContainerConfig: ContainerConfig;
  readonly DockerVersion: string;
  readonly Author: string;
  readonly Config: ContainerConfig;
  readonly Architecture: string;
  readonly Variant?: string;
  readonly Os: string;
  readonly OsVersion?: string;
  readonly Size: number;
  readonly VirtualSize: number;
  readonly GraphDriver: { readonly Name: string; readonly Data: Readonly<Record<string, string>> };
  readonly RootFS: { readonly Type: string; readonly Layers: readonly string[] };
  readonly Metadata: { readonly LastTagTime: string };
}

/** One history entry, newest first (`GET /images/{name}/history`). */
export interface HistoryItem {
  readonly Id: string;
  /** Unix seconds. */
  readonly Created: number;
  readonly CreatedBy: string;
  readonly Tags: readonly string[] | null;
  readonly Size: number;
  readonly Comment: string;
}

/** What `rmi` and prune did, one line each, as Docker reports it (`DELETE /images/{name}`). */
export type DeleteEvent = { readonly Untagged: string } | { readonly Deleted: string };

export interface PruneReport {
  readonly ImagesDeleted: readonly DeleteEvent[];
  readonly SpaceReclaimed: number;
}

export interface DiskUsageImage {
  readonly summary: ImageSummary;
  readonly sharedSize: number;
  readonly uniqueSize: number;
}

/** `system df`'s images (see engine/df.ts for the rest). */
export interface DiskUsage {
  readonly LayersSize: number;
  readonly Images: readonly DiskUsageImage[];
  readonly ReclaimableImagesSize: number;
  /** Images that containers use. */
  readonly ActiveImages: number;
}

export interface CheckReport {
  readonly blobs: number;
  readonly images: number;
  readonly names: number;
  /** Damage: a blob that does not match its digest, a record pointing at nothing. */
  readonly problems: readonly string[];
  /** Harmless left-overs that `system prune` frees: unreferenced blobs, stale ingest files, expired leases. */
  readonly orphans: readonly string[];
}

/** Progress and results of load/import, for the CLI to print and the API to stream. */
export type LoadEvent =
  | { readonly kind: 'loaded'; readonly name: string }
  | { readonly kind: 'loaded-id'; readonly id: string }
  | { readonly kind: 'renamed'; readonly name: string; readonly previousId: string };
