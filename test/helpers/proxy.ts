import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOnLoopback } from './registry.js';

/** Faults the proxy injects, each once. */
export interface Faults {
  /** Cut the connection of the first blob download after this many bytes. */
  cutDownloadAfter?: number;
  /** Cut the connection of the first chunk upload (PATCH) after this many bytes. */
  cutUploadAfter?: number;
  /** Cut the connection of the N-th chunk upload (PATCH, counted from 1) before any of it reaches the registry. */
  dropUploadChunk?: number;
  /** Serve this blob with one byte changed. */
  corruptBlob?: string;
  /** Answer Docker Hub's search API (`/v1/search`) with these results. */
  searchResults?: readonly object[];
  /**
   * Answer blob downloads with a redirect to another host name (`localhost` for `127.0.0.1`), as a
   * registry does to its blob storage; that host serves them with these credentials of its own.
   */
  redirectBlobs?: { readonly authorization: string };
  /** Answer the next N manifest requests with 429 TOOMANYREQUESTS and `Retry-After: 1`. */
  tooManyRequests?: number;
}

export interface Proxy {
  readonly host: string;
  /** Bytes of blob uploads (PATCH/PUT bodies) that reached the registry. */
  uploadedBytes: number;
  faults: Faults;
  /** Faults that fired. */
  readonly fired: string[];
  /** For each redirected download: whether the client sent credentials to the other host. */
  readonly redirectedWithCredentials: boolean[];
  stop(): Promise<void>;
}

/**
 * A reverse proxy in front of a registry, keeping the client's Host header (so the registry's upload
 * Locations point back at the proxy), counting uploaded blob bytes, and injecting faults.
 */
export async function startProxy(target: string): Promise<Proxy> {
  const [targetHost, targetPort] = target.split(':');
  const state: Proxy = {
    host: '',
    uploadedBytes: 0,
    faults: {},
    fired: [],
    redirectedWithCredentials: [],
    stop: () => Promise.resolve(),
  };
  // PATCHes are counted from the moment the faults are set.
  let patches = 0;
  let counting: Faults | undefined;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (counting !== state.faults) {
      counting = state.faults;
      patches = 0;
    }
    if (url.startsWith('/v1/search') && state.faults.searchResults) {
      const query = new URL(url, 'http://proxy').searchParams;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ query: query.get('q'), num_results: state.faults.searchResults.length, results: state.faults.searchResults }));
      return;
    }
    if ((state.faults.tooManyRequests ?? 0) > 0 && url.includes('/manifests/')) {
      state.faults.tooManyRequests = (state.faults.tooManyRequests ?? 0) - 1;
      state.fired.push('429');
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}');
      return;
    }
    const redirect = state.faults.redirectBlobs;
    if (redirect && req.method === 'GET' && /^\/v2\/.*\/blobs\/sha256:/.test(url)) {
      res.writeHead(307, { location: `http://localhost:${(server.address() as AddressInfo).port}/redirected${url}` }).end();
      return;
    }
    if (redirect && url.startsWith('/redirected/')) {
      state.redirectedWithCredentials.push(req.headers.authorization !== undefined);
      req.url = url.slice('/redirected'.length);
      req.headers.authorization = redirect.authorization;
      req.headers.host = state.host;
    }
    if (req.method === 'PATCH' && ++patches === state.faults.dropUploadChunk) {
      state.faults.dropUploadChunk = undefined;
      state.fired.push('drop-chunk');
      req.socket.destroy();
      return;
    }
    const path = req.url ?? url;
    const isUpload = (req.method === 'PATCH' || req.method === 'PUT') && path.includes('/blobs/uploads/');
    const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}/.test(path);
    const upstream = request({ host: targetHost, port: Number(targetPort), method: req.method, path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      let sent = 0;
      const corrupt = isBlobGet && state.faults.corruptBlob !== undefined && url.includes(state.faults.corruptBlob);
      answer.on('data', (chunk: Buffer) => {
        let data = chunk;
        if (corrupt && sent === 0 && data.length > 0) {
          data = Buffer.from(data);
          data[0] = (data[0] ?? 0) ^ 0xff;
          state.fired.push('corrupt');
        }
        sent += data.length;
        const cut = state.faults.cutDownloadAfter;
        if (isBlobGet && cut !== undefined && sent > cut && (answer.statusCode ?? 0) < 300) {
          state.faults.cutDownloadAfter = undefined;
          state.fired.push('cut-download');
          res.write(data.subarray(0, Math.max(0, data.length - (sent - cut))));
          answer.destroy();
          res.socket?.destroy();
          return;
        }
        res.write(data);
      });
      answer.on('end', () => res.end());
    });
    upstream.on('error', () => res.socket?.destroy());
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      const cut = state.faults.cutUploadAfter;
      if (isUpload && req.method === 'PATCH' && cut !== undefined && received + chunk.length > cut) {
        state.faults.cutUploadAfter = undefined;
        state.fired.push('cut-upload');
        upstream.destroy();
        req.socket.destroy();
        return;
      }
      received += chunk.length;
      if (isUpload) state.uploadedBytes += chunk.length;
      upstream.write(chunk);
    });
    req.on('end', () => upstream.end());
  });
  return Object.assign(state, await listenOnLoopback(server));
}
