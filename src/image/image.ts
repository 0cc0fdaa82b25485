import { type Digest, sha256 } from '../oci/digest.js';
import type { ImageConfig } from '../oci/types.js';

/** Where a blob's bytes lie in a local file, uncut: a reader there can seek over what it does not need. */
export interface BlobFile {
  readonly path: string;
  readonly start: number;
  readonly size: number;
}

/**
 * A layer as some place offers it: a blob (compressed or not, per its media type) whose uncompressed
 * content hashes to `diffId`. Opening is lazy; nothing is read until a sink asks for the bytes.
 */
export interface Layer {
  readonly mediaType: string;
  /** The blob digest when the place knows it (manifests do); legacy archives learn it while ingesting. */
  readonly digest?: Digest;
  readonly size?: number;
  readonly diffId: Digest;
  open(): Promise<AsyncIterable<Uint8Array>>;
  /** The local file the blob lies in, when it does (the store, an archive or layout read in place). */
  readonly locate?: () => Promise<BlobFile | undefined>;
}

/** A manifest's original bytes, kept so that its digest survives a round trip. */
export interface RawManifest {
  readonly bytes: Buffer;
  readonly digest: Digest;
  readonly mediaType: string;
}

/**
 * An image as a source offers it (an archive, a layout, the store, a rootfs import). Values are immutable:
 * transforms return a new Image. `config` is the parsed form of `rawConfig`, whose digest is the image ID.
 */
export interface Image {
  readonly id: Digest;
  readonly rawConfig: Buffer;
  readonly config: ImageConfig;
  readonly layers: readonly Layer[];
  readonly manifest?: RawManifest;
}

/** An image and the names a source gives it (normalized references, e.g. docker.io/library/busybox:lab). */
export interface NamedImage {
  readonly image: Image;
  readonly names: readonly string[];
}

/** Docker's chain IDs: the identity of a layer together with everything below it, bottom first. */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const chain: Digest[] = [];
  for (const diffId of diffIds) {
    const below = chain.at(-1);
    chain.push(below ? sha256(`${below} ${diffId}`) : diffId);
  }
  return chain;
}
