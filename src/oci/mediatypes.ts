/** Media types for OCI image-spec 1.1 and Docker image manifest v2 schema 2. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

const LAYER_COMPRESSION: Record<string, Compression> = {
  [MediaType.ociLayer]: 'none',
  [MediaType.ociLayerGzip]: 'gzip',
  [MediaType.ociLayerZstd]: 'zstd',
  [MediaType.ociLayerNondistributable]: 'none',
  [MediaType.ociLayerNondistributableGzip]: 'gzip',
  [MediaType.ociLayerNondistributableZstd]: 'zstd',
  [MediaType.dockerLayer]: 'none',
  [MediaType.dockerLayerGzip]: 'gzip',
  [MediaType.dockerLayerForeignGzip]: 'gzip',
};

/** The compression a layer media type declares, or undefined when it is not a layer type. */
export function layerCompression(mediaType: string): Compression | undefined {
  return LAYER_COMPRESSION[mediaType];
}

export function isManifestType(mediaType: string): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** The OCI layer media type for a compression. */
export function ociLayerType(compression: Compression): string {
  return compression === 'gzip' ? MediaType.ociLayerGzip : compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
}
