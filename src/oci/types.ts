import type { Digest } from './digest.js';
import type { Platform } from './platform.js';

/** A content descriptor (OCI image-spec `descriptor.md`). */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Platform;
  readonly artifactType?: string;
}

/** An image manifest: OCI (`application/vnd.oci.image.manifest.v1+json`) or Docker v2 schema 2. */
export interface Manifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An image index (OCI) or manifest list (Docker). */
export interface Index {
  readonly schemaVersion: 2;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The runtime defaults an image carries (`config` in the image config), in Docker's field names. */
export interface ContainerConfig {
  readonly Hostname?: string;
  readonly Domainname?: string;
  readonly User?: string;
  readonly AttachStdin?: boolean;
  readonly AttachStdout?: boolean;
  readonly AttachStderr?: boolean;
  readonly ExposedPorts?: Readonly<Record<string, object>>;
  readonly Tty?: boolean;
  readonly OpenStdin?: boolean;
  readonly StdinOnce?: boolean;
  readonly Env?: readonly string[] | null;
  readonly Cmd?: readonly string[] | null;
  readonly Healthcheck?: HealthConfig;
  readonly ArgsEscaped?: boolean;
  readonly Image?: string;
  readonly Volumes?: Readonly<Record<string, object>> | null;
  readonly WorkingDir?: string;
  readonly Entrypoint?: readonly string[] | null;
  readonly OnBuild?: readonly string[] | null;
  readonly Labels?: Readonly<Record<string, string>> | null;
  readonly StopSignal?: string;
  /** Docker's container.Config only (`--stop-timeout`): images carry none. */
  readonly StopTimeout?: number;
  readonly Shell?: readonly string[];
}

/** A container config with every field, empty: an imported image's before changes, an image's ContainerConfig when it has none. */
export const EMPTY_CONTAINER_CONFIG: ContainerConfig = {
  Hostname: '',
  Domainname: '',
  User: '',
  AttachStdin: false,
  AttachStdout: false,
  AttachStderr: false,
  Tty: false,
  OpenStdin: false,
  StdinOnce: false,
  Env: null,
  Cmd: null,
  Image: '',
  Volumes: null,
  WorkingDir: '',
  Entrypoint: null,
  OnBuild: null,
  Labels: null,
};

export interface HealthConfig {
  readonly Test?: readonly string[];
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly StartPeriod?: number;
  readonly StartInterval?: number;
  readonly Retries?: number;
}

export interface HistoryEntry {
  readonly created?: string;
  readonly created_by?: string;
  readonly author?: string;
  readonly comment?: string;
  readonly empty_layer?: boolean;
}

/** The image configuration; its sha256 digest is the image ID. Unknown fields survive a round trip. */
export interface ImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly 'os.version'?: string;
  readonly variant?: string;
  readonly created?: string;
  readonly author?: string;
  readonly comment?: string;
  readonly docker_version?: string;
  readonly parent?: string;
  readonly container?: string;
  readonly container_config?: ContainerConfig;
  readonly config?: ContainerConfig;
  readonly rootfs: { readonly type: 'layers'; readonly diff_ids: readonly Digest[] };
  readonly history?: readonly HistoryEntry[];
  readonly [extra: string]: unknown;
}
