/**
 * The distribution-spec client: manifests and blobs of one registry, with Docker's authentication
 * (a 401 challenge → Basic, or a Bearer token from the realm, cached per scope) and transport rules
 * (TLS by default; plain HTTP for loopback and registries named insecure; a `certs.d` CA). Bytes are not
 * trusted here: the content store verifies every digest they are stored under.
 */
import { readFile, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type * as Undici_ from 'undici';
import type { Dispatcher } from 'undici';
import { KilnError } from '../errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import type { Credentials } from './credentials.js';

export interface ClientOptions {
  /** Registries where plain HTTP (and unverified TLS) is allowed, besides loopback ones. */
  readonly insecureRegistries?: readonly string[];
  readonly credentials?: Credentials;
  /** Directories holding `<host>/ca.crt` (Docker's certs.d). */
  readonly certsDirs?: readonly string[];
}

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** What the client uses of undici: its connection-pooling Agent and a request through it. */
interface Http {
  readonly Agent: typeof Undici_.Agent;
  request(url: URL | string, options: { dispatcher: Dispatcher } & Omit<Dispatcher.RequestOptions, 'origin' | 'path'>): Promise<ResponseData>;
}

/**
 * undici's Agent and request, loaded without the rest of the package (fetch, caches, mocks, interceptors):
 * 17 ms instead of 57 for every command that talks to a registry. undici 7 has no exports map, so these
 * paths are reachable; its version is pinned.
 */
async function loadHttp(): Promise<Http> {
  const [{ default: Agent }, { default: request }] = await Promise.all([import('undici/lib/dispatcher/agent.js'), import('undici/lib/api/api-request.js')]);
  return {
    Agent,
    request: (url, { dispatcher, ...options }) => {
      const { origin, pathname, search } = typeof url === 'string' ? new URL(url) : url;
      return request.call(dispatcher, { ...options, origin, path: `${pathname}${search}` });
    },
  };
}
type ResponseData = Dispatcher.ResponseData;

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const MAX_MANIFEST = 4 << 20;
/** Blobs up to this size go in one PUT; larger ones in PATCH chunks of UPLOAD_CHUNK, resumable. */
const MONOLITHIC_UPLOAD = 16 << 20;
const UPLOAD_CHUNK = 16 << 20;

/** A blob to push: its identity, and a reader of any byte range of it. */
export interface PushableBlob {
  readonly digest: Digest;
  readonly size: number;
  read(start: number, end: number): Promise<Buffer>;
}

/** `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` → scheme and parameters. */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g)) {
    params[(param[1] ?? '').toLowerCase()] = (param[2] ?? param[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (match[1] ?? '').toLowerCase(), params };
}

/** Loopback registries speak plain HTTP without being named insecure (Docker's rule). */
function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** Whether host[:port] is an IPv4 address inside `cidr` (`10.0.0.0/8`), as daemon.json lists insecure networks. */
function inCidr(host: string, cidr: string): boolean {
  const match = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  const ip = /^(\d+\.\d+\.\d+\.\d+)(?::\d+)?$/.exec(host)?.[1];
  if (!match || !ip) return false;
  const number = (text: string): number => text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const block = 2 ** (32 - Math.min(32, Number(match[2])));
  return Math.floor(number(ip) / block) === Math.floor(number(match[1] ?? '') / block);
}

/** The registry's reply as a KilnError naming what was asked: `MANIFEST_UNKNOWN` etc. in one line. */
async function registryError(response: ResponseData, what: string): Promise<KilnError> {
  const text = await response.body.text().catch(() => '');
  let detail = '';
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    detail = (parsed.errors ?? []).map((e) => `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`).join('; ');
  } catch {
    detail = text.slice(0, 200).trim();
  }
  const status = response.statusCode;
  // A HEAD answer has no body: say what the status means.
  if (!detail) detail = ({ 401: 'UNAUTHORIZED: authentication required', 403: 'DENIED: requested access to the resource is denied', 404: 'NOT_FOUND', 429: 'TOOMANYREQUESTS' } as Record<number, string>)[status] ?? '';
  const code = status === 404 ? 'NOT_FOUND' : status === 401 || status === 403 ? 'UNAUTHORIZED' : status === 400 ? 'INVALID_INPUT' : 'INTERNAL';
  const retry = response.headers['retry-after'];
  const hint = status === 401 ? ' (log in with kiln login)' : status === 429 && retry ? ` (retry after ${String(retry)} s)` : '';
  return new KilnError(code, `${what}: ${status}${detail ? ` ${detail}` : ''}${hint}`);
}

export class RegistryClient {
  private scheme: 'https' | 'http' | undefined;
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  private basic = false;
  private undici: Http | undefined;
  private dispatcher: Dispatcher | undefined;

  constructor(
    /** host[:port] as the reference names it (docker.io is reached at registry-1.docker.io). */
    readonly host: string,
    private readonly options: ClientOptions = {},
  ) {}

  private get endpoint(): string {
    return this.host === 'docker.io' ? 'registry-1.docker.io' : this.host;
  }

  private get insecure(): boolean {
    return isLoopback(this.endpoint) || (this.options.insecureRegistries ?? []).some((entry) => entry === this.host || inCidr(this.endpoint, entry));
  }

  private async load(): Promise<{ undici: Http; dispatcher: Dispatcher }> {
    if (!this.undici || !this.dispatcher) {
      this.undici = await loadHttp();
      const ca: string[] = [];
      for (const dir of this.options.certsDirs ?? ['/etc/docker/certs.d', join(homedir(), '.docker', 'certs.d')]) {
        const files = await readdir(join(dir, this.endpoint)).catch(() => [] as string[]);
        for (const file of files.filter((f) => f.endsWith('.crt'))) ca.push(await readFile(join(dir, this.endpoint, file), 'utf8'));
      }
      this.dispatcher = new this.undici.Agent({ connect: { ...(ca.length > 0 ? { ca } : {}), ...(this.insecure ? { rejectUnauthorized: false } : {}) }, bodyTimeout: 120_000, headersTimeout: 60_000 });
    }
    return { undici: this.undici, dispatcher: this.dispatcher };
  }

  /** https, or for an insecure registry whatever answers: https first, then plain http (as Docker does). */
  private async base(): Promise<string> {
    if (!this.scheme) {
      if (!this.insecure) this.scheme = 'https';
      else {
        const { undici, dispatcher } = await this.load();
        try {
          const probe = await undici.request(`https://${this.endpoint}/v2/`, { dispatcher, method: 'GET' });
          await probe.body.dump();
          this.scheme = 'https';
        } catch {
          this.scheme = 'http';
        }
      }
    }
    return `${this.scheme}://${this.endpoint}`;
  }

  private authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token && token.expires > Date.now()) return `Bearer ${token.token}`;
    const credentials = this.options.credentials;
    if (this.basic && credentials && 'username' in credentials) return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    return undefined;
  }

  /** Answers a 401 challenge: Basic with the credentials, or a Bearer token for the scope. */
  private async authenticate(challenge: Challenge | undefined, scope: string, what: string): Promise<void> {
    const credentials = this.options.credentials;
    if (challenge?.scheme === 'basic') {
      if (!credentials || !('username' in credentials)) throw new KilnError('UNAUTHORIZED', `${what}: the registry ${this.host} needs a login: kiln login ${this.host}`);
      this.basic = true;
      return;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) throw new KilnError('UNAUTHORIZED', `${what}: the registry ${this.host} refused access and asked for no known authentication`);
    const { undici, dispatcher } = await this.load();
    const url = new URL(challenge.params.realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const part of scope.split(' ')) if (part) url.searchParams.append('scope', part);
    const headers: Record<string, string> = {};
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (credentials && 'identityToken' in credentials) {
      // An identity token is an OAuth2 refresh token (docker login with a token).
      method = 'POST';
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.identityToken, service: challenge.params.service ?? '', scope, client_id: 'kiln' }).toString();
    } else if (credentials) {
      headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const response = await undici.request(url, { dispatcher, method, headers, ...(body !== undefined ? { body } : {}) }).catch((err: Error) => {
      throw new KilnError('NOT_FOUND', `${what}: cannot reach the token service ${url.origin}: ${err.message}`);
    });
    if (response.statusCode === 401 || response.statusCode === 403) {
      await response.body.dump();
      throw new KilnError('UNAUTHORIZED', `${what}: ${credentials ? 'the credentials for' : 'access to'} ${this.host} ${credentials ? 'were refused' : 'needs a login'} (${response.statusCode}); kiln login ${this.host}`);
    }
    if (response.statusCode !== 200) throw await registryError(response, `${what}: token service`);
    const reply = (await response.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = reply.token ?? reply.access_token;
    if (!token) throw new KilnError('INVALID_INPUT', `${what}: the token service of ${this.host} answered without a token`);
    this.tokens.set(scope, { token, expires: Date.now() + Math.max(30, (reply.expires_in ?? 60) - 10) * 1000 });
  }

  /**
   * One request to the registry (a path under its origin, or an absolute URL it gave), authenticated for
   * `scope`. Redirects are followed by hand, so credentials never go to another host. GET and HEAD are
   * retried on 5xx, 429 and broken connections.
   */
  async send(method: Dispatcher.HttpMethod, path: string, options: { scope: string; what: string; headers?: Record<string, string>; body?: Dispatcher.DispatchOptions['body']; ok?: readonly number[] }): Promise<ResponseData> {
    const { undici, dispatcher } = await this.load();
    const origin = await this.base();
    let url = new URL(path, origin);
    const idempotent = method === 'GET' || method === 'HEAD';
    for (let attempt = 1, redirects = 0, challenged = false; ; ) {
      const headers: Record<string, string> = { 'user-agent': 'kiln', ...(options.headers ?? {}) };
      const auth = url.host === new URL(origin).host ? this.authorization(options.scope) : undefined;
      if (auth) headers.authorization = auth;
      let response: ResponseData;
      try {
        response = await undici.request(url, { dispatcher, method, headers, ...(options.body !== undefined ? { body: options.body } : {}) });
      } catch (err) {
        if (idempotent && attempt < 3) {
          await delay(200 * 2 ** attempt++);
          continue;
        }
        const message = (err as Error).message;
        const tls = /certificate|SSL|TLS|wrong version number|EPROTO/i.test(message) ? ` (for a registry with its own CA put it in /etc/docker/certs.d/${this.endpoint}/ca.crt; for one without TLS name it with --insecure-registry ${this.host})` : '';
        throw new KilnError('NOT_FOUND', `${options.what}: cannot reach ${url.origin}: ${message}${tls}`);
      }
      const status = response.statusCode;
      if (status === 401 && !challenged && url.host === new URL(origin).host) {
        await response.body.dump();
        challenged = true;
        const header = response.headers['www-authenticate'];
        await this.authenticate(parseChallenge(Array.isArray(header) ? (header[0] ?? '') : (header ?? '')), options.scope, options.what);
        if (options.body !== undefined && typeof options.body !== 'string' && !Buffer.isBuffer(options.body)) {
          throw new KilnError('INTERNAL', `${options.what}: authentication was asked after a streamed body was sent`);
        }
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(status) && response.headers.location && redirects < 10) {
        await response.body.dump();
        url = new URL(String(response.headers.location), url);
        redirects++;
        continue;
      }
      if (idempotent && (status >= 500 || status === 429) && attempt < 3) {
        const retryAfter = Number(response.headers['retry-after'] ?? 0);
        await response.body.dump();
        await delay(retryAfter > 0 && retryAfter < 30 ? retryAfter * 1000 : 200 * 2 ** attempt);
        attempt++;
        continue;
      }
      if ((options.ok ?? [200]).includes(status)) return response;
      throw await registryError(response, options.what);
    }
  }

  /** A manifest (or index) by tag or digest, its bytes kept as served; a digest reference is verified. */
  async manifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `${this.host}/${repository}:${reference}`;
    const response = await this.send('GET', `/v2/${repository}/manifests/${reference}`, { scope: `repository:${repository}:pull`, what, headers: { accept: MANIFEST_TYPES.join(', ') } });
    const length = Number(response.headers['content-length'] ?? 0);
    if (length > MAX_MANIFEST) throw new KilnError('INVALID_INPUT', `${what}: the manifest is ${length} bytes, more than a manifest can be`);
    const bytes = Buffer.from(await response.body.arrayBuffer());
    if (bytes.length > MAX_MANIFEST) throw new KilnError('INVALID_INPUT', `${what}: the manifest is larger than ${MAX_MANIFEST} bytes`);
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) throw new KilnError('DIGEST_MISMATCH', `${what}: the registry served a manifest whose digest is ${digest}`);
    const type = String(response.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    return { bytes, mediaType: type, digest };
  }

  /** Whether the registry has a blob in this repository (HEAD). */
  async hasBlob(repository: string, digest: Digest, scope = `repository:${repository}:pull`): Promise<boolean> {
    const response = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`, { scope, what: `${this.host}/${repository} blob ${digest}`, ok: [200, 404] });
    await response.body.dump();
    return response.statusCode === 200;
  }

  /** A blob's bytes from `offset` on (HTTP Range), as a stream. */
  async blob(repository: string, digest: Digest, offset = 0): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await this.send('GET', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull`, what: `${this.host}/${repository} blob ${digest}`, headers, ok: [200, 206] });
    if (offset > 0 && response.statusCode !== 206) {
      await response.body.dump();
      throw new KilnError('UNSUPPORTED', `${this.host} does not serve byte ranges, so the download of ${digest} cannot resume`);
    }
    return response.body;
  }

  /**
   * Uploads a blob unless the repository has it: a cross-repository mount first when `mountFrom` names a
   * repository of this registry that has it, then one PUT for a small blob or PATCH chunks for a large
   * one. An interrupted chunked upload asks the registry how far it got and goes on from there.
   */
  async pushBlob(repository: string, blob: PushableBlob, mountFrom?: string, progress?: (sent: number) => void): Promise<'exists' | 'mounted' | 'pushed'> {
    const what = `pushing ${blob.digest} to ${this.host}/${repository}`;
    const scope = `repository:${repository}:pull,push${mountFrom && mountFrom !== repository ? ` repository:${mountFrom}:pull` : ''}`;
    if (await this.hasBlob(repository, blob.digest, scope)) return 'exists';
    const query = mountFrom && mountFrom !== repository ? `?mount=${blob.digest}&from=${encodeURIComponent(mountFrom)}` : '';
    const started = await this.send('POST', `/v2/${repository}/blobs/uploads/${query}`, { scope, what, headers: { 'content-length': '0' }, ok: [201, 202] });
    await started.body.dump();
    if (started.statusCode === 201) return 'mounted';
    const upload = this.upload(repository, scope, what, String(started.headers.location ?? ''));
    if (blob.size <= MONOLITHIC_UPLOAD) {
      const body = await blob.read(0, blob.size);
      const done = await this.send('PUT', withDigest(upload.location, blob.digest), { scope, what, headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body, ok: [201] });
      await done.body.dump();
      progress?.(blob.size);
      return 'pushed';
    }
    await this.patch(upload, 0, blob.size, (start, end) => blob.read(start, end), progress);
    await this.completeUpload(upload, blob.digest);
    return 'pushed';
  }

  /**
   * Starts an upload of a blob still being made (a layer compressed while it is pushed, as Docker does):
   * its bytes go out in PATCH chunks as they come, and its digest is given at the end.
   */
  async streamBlob(repository: string, progress?: (sent: number) => void): Promise<StreamingUpload> {
    const what = `pushing a layer to ${this.host}/${repository}`;
    const scope = `repository:${repository}:pull,push`;
    const started = await this.send('POST', `/v2/${repository}/blobs/uploads/`, { scope, what, headers: { 'content-length': '0' }, ok: [202] });
    await started.body.dump();
    const upload = this.upload(repository, scope, what, String(started.headers.location ?? ''));
    return new StreamingUpload(
      (start, end, read) => this.patch(upload, start, end, read, progress),
      (digest) => this.completeUpload(upload, digest),
    );
  }

  private upload(repository: string, scope: string, what: string, location: string): Upload {
    if (!location) throw new KilnError('INVALID_INPUT', `${what}: the registry started an upload without a Location`);
    return { repository, scope, what, location, failures: 0 };
  }

  /**
   * PATCHes bytes [offset, end) of an upload in chunks. After a broken request it asks the registry where
   * it got to and goes on from there; an upload the registry dropped (as distribution does when a chunk
   * breaks off) starts again from zero, if `read` still has those bytes.
   */
  private async patch(upload: Upload, offset: number, end: number, read: (start: number, end: number) => Promise<Buffer>, progress?: (sent: number) => void): Promise<void> {
    const { scope, what } = upload;
    while (offset < end) {
      const stop = Math.min(offset + UPLOAD_CHUNK, end);
      try {
        const body = await read(offset, stop);
        const sent = await this.send('PATCH', upload.location, {
          scope,
          what,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${stop - 1}`, 'content-length': String(body.length) },
          body,
          ok: [202],
        });
        await sent.body.dump();
        upload.location = String(sent.headers.location ?? upload.location);
        offset = stop;
        progress?.(offset);
      } catch (err) {
        if (err instanceof BytesGone) throw err;
        if (++upload.failures > 5 || (err instanceof KilnError && err.code !== 'NOT_FOUND' && err.code !== 'INTERNAL')) throw err;
        // Where did the registry get to? (distribution answers 204 with `Range: 0-<last byte>`.)
        const status = await this.send('GET', upload.location, { scope, what: `${what}: upload status`, ok: [204, 404] });
        await status.body.dump();
        if (status.statusCode === 404) {
          const restarted = await this.send('POST', `/v2/${upload.repository}/blobs/uploads/`, { scope, what, headers: { 'content-length': '0' }, ok: [202] });
          await restarted.body.dump();
          upload.location = String(restarted.headers.location ?? '');
          offset = 0;
          continue;
        }
        // distribution says `0-0` both for no bytes and for one: read as none, since a request that breaks
        // off before its first byte is common and one that stops after exactly one byte is not.
        const range = /^(?:bytes=)?0-(\d+)$/.exec(String(status.headers.range ?? ''));
        offset = range && range[1] !== '0' ? Number(range[1]) + 1 : 0;
        upload.location = String(status.headers.location ?? upload.location);
      }
    }
  }

  private async completeUpload(upload: Upload, digest: Digest): Promise<void> {
    const done = await this.send('PUT', withDigest(upload.location, digest), { scope: upload.scope, what: upload.what, headers: { 'content-length': '0' }, ok: [201] });
    await done.body.dump();
  }

  /** Follows `Link: <…>; rel="next"` pages of a JSON list (tags, catalog), collecting `field`. */
  private async pages(path: string, field: 'tags' | 'repositories', scope: string, what: string, limit = Infinity): Promise<string[]> {
    const items: string[] = [];
    for (let next: string | undefined = path; next && items.length < limit; ) {
      const response = await this.send('GET', next, { scope, what });
      const body = (await response.body.json()) as Record<string, unknown>;
      const list = body[field];
      if (list !== null && list !== undefined && !(Array.isArray(list) && list.every((x) => typeof x === 'string'))) throw new KilnError('INVALID_INPUT', `${what}: the registry's ${field} list is malformed`);
      if (Array.isArray(list)) for (const item of list) items.push(String(item));
      const link = String(response.headers.link ?? '');
      next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1];
    }
    return items.slice(0, limit === Infinity ? undefined : limit);
  }

  /** A repository's tags (`/v2/<name>/tags/list`, every page). */
  tags(repository: string): Promise<string[]> {
    return this.pages(`/v2/${repository}/tags/list?n=1000`, 'tags', `repository:${repository}:pull`, `tags of ${this.host}/${repository}`);
  }

  /** The registry's repositories (`/v2/_catalog`, page by page, up to `limit`). */
  catalog(limit: number): Promise<string[]> {
    return this.pages('/v2/_catalog?n=1000', 'repositories', 'registry:catalog:*', `the catalog of ${this.host}`, limit);
  }

  /** Docker Hub's search API (`/v1/search`), or undefined when the registry does not offer it. */
  async search(term: string, limit: number): Promise<{ name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }[] | undefined> {
    const host = this.host === 'docker.io' ? 'index.docker.io' : this.host;
    const path = `${host === this.endpoint ? '' : `https://${host}`}/v1/search?q=${encodeURIComponent(term)}&n=${limit}`;
    const response = await this.send('GET', path, { scope: '', what: `searching ${this.host}`, ok: [200, 404] }).catch((err: unknown) => {
      if (err instanceof KilnError && err.code === 'UNAUTHORIZED') return undefined;
      throw err;
    });
    if (!response || response.statusCode === 404) {
      await response?.body.dump();
      return undefined;
    }
    const body = (await response.body.json()) as { results?: unknown };
    if (!Array.isArray(body.results)) throw new KilnError('INVALID_INPUT', `searching ${this.host}: the answer has no results list`);
    return (body.results as Record<string, unknown>[]).map((r) => ({
      name: typeof r.name === 'string' ? r.name : '',
      description: typeof r.description === 'string' ? r.description : '',
      star_count: Number(r.star_count ?? 0),
      is_official: r.is_official === true,
      is_automated: r.is_automated === true,
    }));
  }

  /** PUTs a manifest under a tag or digest; returns the digest the registry reports (or ours). */
  async putManifest(repository: string, reference: string, manifest: { bytes: Buffer; mediaType: string }): Promise<Digest> {
    const response = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, {
      scope: `repository:${repository}:pull,push`,
      what: `pushing the manifest of ${this.host}/${repository}:${reference}`,
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      ok: [200, 201],
    });
    await response.body.dump();
    return sha256(manifest.bytes);
  }
}

/** An upload in progress: where it continues, and how many requests of it broke. */
interface Upload {
  readonly repository: string;
  readonly scope: string;
  readonly what: string;
  location: string;
  failures: number;
}

function withDigest(location: string, digest: Digest): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/** A resumed upload needs bytes a streaming upload no longer holds. */
class BytesGone extends Error {}

/**
 * The sending side of `streamBlob`. Bytes are taken in order; a full chunk goes out while the next one
 * fills (at most two in memory), so making the bytes and sending them overlap. A chunk is kept until the
 * registry has it, so a broken request resumes from the registry's offset. When the upload cannot go on
 * (the registry dropped it, or it refused), it stops taking bytes and `finish` says false: the caller
 * then pushes the finished blob the ordinary way.
 */
export class StreamingUpload {
  private filling: Uint8Array[] = [];
  private fillingSize = 0;
  private sent = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly patch: (start: number, end: number, read: (start: number, end: number) => Promise<Buffer>) => Promise<void>,
    private readonly complete: (digest: Digest) => Promise<void>,
  ) {}

  /** Takes the next bytes; resolves when more may come. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failed) return;
    this.filling.push(chunk);
    this.fillingSize += chunk.length;
    if (this.fillingSize >= UPLOAD_CHUNK) await this.flush();
  }

  private async flush(): Promise<void> {
    await this.inFlight;
    if (this.failed || this.fillingSize === 0) return;
    const body = Buffer.concat(this.filling, this.fillingSize);
    const start = this.sent;
    this.filling = [];
    this.fillingSize = 0;
    this.sent += body.length;
    const read = (from: number, to: number): Promise<Buffer> => (from >= start && to <= start + body.length ? Promise.resolve(body.subarray(from - start, to - start)) : Promise.reject(new BytesGone()));
    this.inFlight = this.patch(start, start + body.length, read).catch(() => {
      this.failed = true;
    });
  }

  /** Sends the rest and completes the upload under `digest`; false when the upload broke off. */
  async finish(digest: Digest): Promise<boolean> {
    await this.flush();
    await this.inFlight;
    if (this.failed) return false;
    return this.complete(digest).then(() => true, () => false);
  }
}
