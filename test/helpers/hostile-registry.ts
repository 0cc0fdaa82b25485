import { createHash } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { listenOnLoopback } from './registry.js';
import { gzipSync } from 'node:zlib';

/**
 * How the registry misbehaves. Each names what it does to the one image it serves:
 * - `*-endless`: that body has no Content-Length and goes on (up to 1 GiB) after the real bytes;
 * - `manifest-stall`: the manifest's headers and 10 bytes, then nothing; `headers-stall`: no answer at all;
 * - `blob-stall`: half of each blob range asked for (the layer's), then nothing;
 * - `blob-short`: Content-Length as asked, half of that, then the connection closes;
 * - `blob-long`: Content-Length 1000 bytes short of what is then sent;
 * - `blob-oversize`: Content-Length and body 1 MiB longer than the blob;
 * - `*-redirect-loop`: 307 to /loop/1, which redirects to /loop/2, and so on;
 * - `range-200`: the first layer download breaks off halfway; a Range request then gets 200 and the whole blob;
 * - `many-layers`: a manifest of 10,000 layers; `many-manifests`: an index of 10,000 entries;
 * - `wrong-content-type`: the manifest is served as an OCI index; `wrong-layer-type` / `wrong-config-type`:
 *   the manifest gives the layer a config's media type, or the config a layer's;
 * - `lying-digest`: Docker-Content-Digest names other bytes than those served.
 */
export type Misbehaviour =
  | 'none'
  | 'manifest-endless'
  | 'config-endless'
  | 'blob-endless'
  | 'manifest-stall'
  | 'headers-stall'
  | 'blob-stall'
  | 'blob-short'
  | 'blob-long'
  | 'blob-oversize'
  | 'manifest-redirect-loop'
  | 'blob-redirect-loop'
  | 'range-200'
  | 'many-layers'
  | 'many-manifests'
  | 'wrong-content-type'
  | 'wrong-layer-type'
  | 'wrong-config-type'
  | 'lying-digest';

export interface HostileRegistry {
  /** 127.0.0.1:port */
  readonly host: string;
  /** The repository it serves (any tag names the image). */
  readonly repository: string;
  /** The image ID (its config's digest) and the honest manifest's digest. */
  readonly configDigest: string;
  readonly manifestDigest: string;
  /** Misbehaves so from now on (`none`: honestly); the request log starts again. */
  misbehave(misbehaviour: Misbehaviour): void;
  /** The requests answered since `misbehave`: method, path, Range asked for, and the status given. */
  readonly requests: { method: string; path: string; range?: string; status: number }[];
  stop(): Promise<void>;
}

const ENDLESS_CAP = 1 << 30;
const digestOf = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Writes `prefix`, then filler until the client goes or ENDLESS_CAP bytes went out, minding backpressure. */
async function endless(res: ServerResponse, prefix: Buffer): Promise<void> {
  const filler = Buffer.alloc(64 << 10, 0x20);
  const closed = new Promise((resolve) => res.once('close', resolve));
  res.write(prefix);
  for (let sent = prefix.length; sent < ENDLESS_CAP && !res.destroyed; sent += filler.length) {
    if (!res.write(filler)) await Promise.race([new Promise((resolve) => res.once('drain', resolve)), closed]);
  }
  res.end();
}

/**
 * A registry of the test suite's own, on 127.0.0.1 over plain HTTP, that serves one small real image (a
 * config and one uncompressed layer, gzipped here) honestly or with one `misbehaviour` at a time.
 */
export async function startHostileRegistry(image: { config: Buffer; layer: Buffer }): Promise<HostileRegistry> {
  const repository = 'hostile/image';
  const layer = gzipSync(image.layer);
  const blobs = new Map([
    [digestOf(image.config), image.config],
    [digestOf(layer), layer],
  ]);
  const layerDigest = digestOf(layer);
  const configDigest = digestOf(image.config);
  const manifest = (tweak: (m: { config: Record<string, unknown>; layers: Record<string, unknown>[] }) => void = () => undefined): Buffer => {
    const document = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: image.config.length, digest: configDigest } as Record<string, unknown>,
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: layerDigest }] as Record<string, unknown>[],
    };
    tweak(document);
    return Buffer.from(JSON.stringify(document, null, 3));
  };
  const honest = manifest();
  let misbehaviour: Misbehaviour = 'none';
  let layerRequests = 0;
  const state: HostileRegistry = {
    host: '',
    repository,
    configDigest,
    manifestDigest: digestOf(honest),
    misbehave: (next) => {
      misbehaviour = next;
      layerRequests = 0;
      state.requests.length = 0;
    },
    requests: [],
    stop: () => Promise.resolve(),
  };

  function serveManifest(res: ServerResponse, reference: string): void {
    let body = honest;
    let type = 'application/vnd.docker.distribution.manifest.v2+json';
    let digest = digestOf(body);
    if (reference === state.manifestDigest && misbehaviour !== 'lying-digest') {
      // The index's entries name the honest manifest.
    } else if (misbehaviour === 'many-layers') {
      body = manifest((m) => (m.layers = Array.from({ length: 10_000 }, (_, i) => ({ ...m.layers[0], digest: digestOf(String(i)) }))));
      digest = digestOf(body);
    } else if (misbehaviour === 'many-manifests') {
      const entry = { mediaType: type, size: honest.length, digest: state.manifestDigest, platform: { architecture: 'amd64', os: 'linux' } };
      type = 'application/vnd.oci.image.index.v1+json';
      body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type, manifests: Array.from({ length: 10_000 }, () => entry) }));
      digest = digestOf(body);
    } else if (misbehaviour === 'wrong-content-type') {
      type = 'application/vnd.oci.image.index.v1+json';
    } else if (misbehaviour === 'wrong-layer-type' || misbehaviour === 'wrong-config-type') {
      const wrong = misbehaviour === 'wrong-layer-type' ? { layer: 'application/vnd.oci.image.config.v1+json' } : { config: 'application/vnd.oci.image.layer.v1.tar+gzip' };
      body = manifest((m) => {
        if (wrong.layer) (m.layers[0] as Record<string, unknown>).mediaType = wrong.layer;
        if (wrong.config) m.config.mediaType = wrong.config;
      });
      digest = digestOf(body);
    } else if (misbehaviour === 'lying-digest') {
      digest = digestOf(Buffer.concat([body, Buffer.from('\n')]));
    }
    if (misbehaviour === 'manifest-endless') {
      res.writeHead(200, { 'content-type': type });
      void endless(res, Buffer.from('{"schemaVersion": 2,'));
      return;
    }
    res.writeHead(200, { 'content-type': type, 'content-length': String(body.length), 'docker-content-digest': digest });
    if (misbehaviour === 'manifest-stall') res.write(body.subarray(0, 10));
    else res.end(body);
  }

  function serveBlob(req: IncomingMessage, res: ServerResponse, digest: string): void {
    const blob = blobs.get(digest);
    if (!blob) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      return;
    }
    const isLayer = digest === layerDigest;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const partial = range !== null && !(misbehaviour === 'range-200' && isLayer);
    const body = partial ? blob.subarray(start) : blob;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'docker-content-digest': digest, 'accept-ranges': 'bytes' };
    if (partial) headers['content-range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
    const status = partial ? 206 : 200;
    if ((misbehaviour === 'blob-endless' && isLayer) || (misbehaviour === 'config-endless' && !isLayer)) {
      res.writeHead(status, headers);
      void endless(res, body);
      return;
    }
    if (isLayer && misbehaviour === 'blob-oversize') {
      const padded = Buffer.concat([body, Buffer.alloc(1 << 20)]);
      res.writeHead(status, { ...headers, 'content-length': String(padded.length) }).end(padded);
      return;
    }
    if (isLayer && misbehaviour === 'blob-long') {
      res.writeHead(status, { ...headers, 'content-length': String(Math.max(0, body.length - 1000)) });
      res.end(body);
      return;
    }
    res.writeHead(status, { ...headers, 'content-length': String(body.length) });
    const half = body.subarray(0, Math.ceil(body.length / 2));
    if (isLayer && misbehaviour === 'blob-stall') res.write(half);
    else if (isLayer && (misbehaviour === 'blob-short' || (misbehaviour === 'range-200' && ++layerRequests === 1))) res.write(half, () => res.destroy());
    else res.end(body);
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://registry').pathname;
    res.on('close', () => state.requests.push({ method: req.method ?? '', path, ...(req.headers.range ? { range: req.headers.range } : {}), status: res.statusCode }));
    const loop = /^\/loop\/(\d+)$/.exec(path);
    if (loop) {
      res.writeHead(307, { location: `/loop/${Number(loop[1]) + 1}` }).end();
      return;
    }
    if (path === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
      return;
    }
    const reference = path.startsWith(`/v2/${repository}/manifests/`) ? path.slice(`/v2/${repository}/manifests/`.length) : undefined;
    const blob = new RegExp(`^/v2/${repository}/blobs/(sha256:[a-f0-9]{64})$`).exec(path);
    if ((reference !== undefined && misbehaviour === 'manifest-redirect-loop') || (blob?.[1] === layerDigest && misbehaviour === 'blob-redirect-loop')) {
      res.writeHead(307, { location: '/loop/1' }).end();
      return;
    }
    if (reference !== undefined && misbehaviour === 'headers-stall') return;
    if (reference !== undefined) serveManifest(res, reference);
    else if (blob?.[1]) serveBlob(req, res, blob[1]);
    else res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}');
  });
  return Object.assign(state, await listenOnLoopback(server));
}
