/**
 * The distribution-spec client: manifests and blobs of one registry, with Docker's authentication
 * (a 401 challenge → Basic, or a Bearer token from the realm, cached per scope) and transport rules
 * (TLS by default; plain HTTP for loopback and registries named insecure; a `certs.d` CA). Bytes are not
 * trusted here: the content store verifies every digest they are stored under. What a registry sends is
 * bounded as it is read (a manifest, a token, a blob's declared size), and every network fault becomes one
 * NETWORK error that says what was being fetched: a timeout, a closed connection, a redirect loop.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type * as Undici_ from 'undici';
import type { Dispatcher } from 'undici';
import { KilnError } from '../errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { isIndexType, isManifestType } from '../oci/mediatypes.js';
import { parseJson } from '../oci/validate.js';
import type { Credentials } from './credentials.js';
import { extraCaCertificates } from '../tls-trust.js';

export interface ClientOptions {
  /** Registries where plain HTTP (and unverified TLS) is allowed, besides loopback ones. */
  readonly insecureRegistries?: readonly string[];
  readonly credentials?: Credentials;
  /** Directories holding `<host>/ca.crt` (Docker's certs.d). */
  readonly certsDirs?: readonly string[];
}

export interface FetchedManifest {
  readonly bytes: Buffer;
  /** The manifest or index type it was served as (or, served as plain JSON, the one it declares); '' if neither says. */
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
/** A token service's answer, a page of a tag or catalog list, a search answer: read whole, so bounded (containers/image's sizes). */
const MAX_TOKEN_ANSWER = 1 << 20;
const MAX_LIST_ANSWER = 4 << 20;
/** Tags or repositories read from a registry's pages, at most. */
const MAX_LIST_ITEMS = 100_000;
/** Of an error answer only this much is read: its first lines are the message. */
const MAX_ERROR_ANSWER = 64 << 10;
/** Redirects followed for one request (Docker's and Go's limit). */
const MAX_REDIRECTS = 10;
/** How long a registry may send nothing before kiln gives up on a request (see registryTimeoutSeconds). */
const DEFAULT_TIMEOUT_SECONDS = 60;
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

/**
 * How long a registry may send nothing, in seconds: no answer to a request (after it was sent), or no byte
 * of a body it is sending. `KILN_REGISTRY_TIMEOUT_SECONDS`, 60 by default. Docker and containerd wait on a
 * silent registry for ever; a stalled blob download is retried from where it stopped (see pullImage).
 */
export function registryTimeoutSeconds(): number {
  const text = process.env.KILN_REGISTRY_TIMEOUT_SECONDS;
  if (text === undefined || text.trim() === '') return DEFAULT_TIMEOUT_SECONDS;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new KilnError('INVALID_ARGUMENT', `KILN_REGISTRY_TIMEOUT_SECONDS=${JSON.stringify(text)}: give a number of seconds greater than 0`);
  return seconds;
}

/** The first `limit` bytes of a body (the rest is dropped), or what came before it failed. */
async function headOf(body: ResponseData['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // A broken error answer still says what it said so far.
  }
  return Buffer.concat(chunks, size).subarray(0, limit);
}

/**
 * The type a manifest was served as, held to the document as containerd holds it: a Content-Type that is a
 * manifest or index type must be the kind the document is, and its own mediaType when it names one. Served
 * as anything else (plain JSON), it is the type the document declares, or '' when it declares none.
 */
function servedType(bytes: Buffer, contentType: string, subject: string): string {
  const served = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  const known = (type: string): boolean => isManifestType(type) || isIndexType(type);
  const document = parseJson(bytes, subject);
  if (typeof document !== 'object' || document === null) return known(served) ? served : '';
  const declared = 'mediaType' in document && typeof document.mediaType === 'string' ? document.mediaType : '';
  if (!known(served)) return known(declared) ? declared : '';
  const index = known(declared) ? isIndexType(declared) : 'manifests' in document;
  if (isIndexType(served) !== index) throw new KilnError('INVALID_INPUT', `${subject}: the registry served it as ${served}, but it is ${index ? 'an index' : 'an image manifest'}`);
  if (known(declared) && declared !== served) throw new KilnError('INVALID_INPUT', `${subject}: the registry served it as ${served}, but it says it is ${declared}`);
  return served;
}

/** The registry's reply as a KilnError naming what was asked: `MANIFEST_UNKNOWN` etc. in one line. */
async function registryError(response: ResponseData, what: string): Promise<KilnError> {
  const text = (await headOf(response.body, MAX_ERROR_ANSWER)).toString('utf8');
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
  const code = status === 404 ? 'NOT_FOUND' : status === 401 || status === 403 ? 'UNAUTHORIZED' : status === 400 ? 'INVALID_INPUT' : status >= 500 || status === 429 ? 'NETWORK' : 'INTERNAL';
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
  private readonly timeoutSeconds = registryTimeoutSeconds();

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
      // A registry's own CAs (certs.d) replace the roots, as they always did; else the extra CAs join them.
      const trusted = ca.length > 0 ? ca : await extraCaCertificates();
      // undici's body timeout counts only while kiln reads: a body held back by a slow disk does not time out.
      const timeout = this.timeoutSeconds * 1000;
      this.dispatcher = new this.undici.Agent({ connect: { ...(trusted ? { ca: [...trusted] } : {}), ...(this.insecure ? { rejectUnauthorized: false } : {}) }, bodyTimeout: timeout, headersTimeout: timeout });
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
    const subject = `a token for ${what} from ${url.origin}`;
    const response = await undici.request(url, { dispatcher, method, headers, ...(body !== undefined ? { body } : {}) }).catch((err: unknown) => {
      throw this.networkError(err, subject, 'request', `the token service ${url.origin}`, what);
    });
    if (response.statusCode === 401 || response.statusCode === 403) {
      await response.body.dump();
      throw new KilnError('UNAUTHORIZED', `${what}: ${credentials ? 'the credentials for' : 'access to'} ${this.host} ${credentials ? 'were refused' : 'needs a login'} (${response.statusCode}); kiln login ${this.host}`);
    }
    if (response.statusCode !== 200) throw await registryError(response, `${what}: token service`);
    const reply = parseJson(await this.readBody(response, MAX_TOKEN_ANSWER, subject, 'a token answer'), subject) as { token?: unknown; access_token?: unknown; expires_in?: unknown } | null;
    const token = reply?.token ?? reply?.access_token;
    if (typeof token !== 'string' || !token) throw new KilnError('INVALID_INPUT', `${what}: the token service of ${this.host} answered without a token`);
    const expiresIn = typeof reply?.expires_in === 'number' ? reply.expires_in : 60;
    this.tokens.set(scope, { token, expires: Date.now() + Math.max(30, expiresIn - 10) * 1000 });
  }

  /**
   * One request to the registry (a path under its origin, or an absolute URL it gave), authenticated for
   * `scope`. Redirects are followed by hand (up to 10), so credentials never go to another host. GET and
   * HEAD are retried on 5xx, 429 and broken connections. `what` prefixes a refusal (`what: 404 …`);
   * `subject` (what is asked for, `the manifest of …`; `what` when not given) names it in a network fault.
   */
  async send(method: Dispatcher.HttpMethod, path: string, options: { scope: string; what: string; subject?: string; headers?: Record<string, string>; body?: Dispatcher.DispatchOptions['body']; ok?: readonly number[] }): Promise<ResponseData> {
    const subject = options.subject ?? options.what;
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
        // A broken connection is tried again; a registry that did not answer for the whole timeout is not.
        if (idempotent && attempt < 3 && (err as { code?: unknown }).code !== 'UND_ERR_HEADERS_TIMEOUT') {
          await delay(200 * 2 ** attempt++);
          continue;
        }
        throw this.networkError(err, subject, 'request', url.origin, options.what);
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
      if ([301, 302, 303, 307, 308].includes(status) && response.headers.location) {
        await response.body.dump().catch(() => undefined);
        if (redirects++ >= MAX_REDIRECTS) throw new KilnError('NETWORK', `redirect loop: more than ${MAX_REDIRECTS} redirects for ${subject}`);
        url = new URL(String(response.headers.location), url);
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

  /**
   * A manifest (or index) by tag or digest, its bytes kept as served. Its digest is what they hash to: the
   * one asked for (by digest), and the one the registry's Docker-Content-Digest names (as containerd
   * trusts it). Its Content-Type, when a manifest or index type, must be what the document is.
   */
  async manifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `${this.host}/${repository}:${reference}`;
    const subject = `the manifest of ${this.host}/${repository}${reference.includes(':') ? '@' : ':'}${reference}`;
    const response = await this.send('GET', `/v2/${repository}/manifests/${reference}`, { scope: `repository:${repository}:pull`, what, subject, headers: { accept: MANIFEST_TYPES.join(', ') } });
    const bytes = await this.readBody(response, MAX_MANIFEST_BYTES, subject, 'a manifest');
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) throw new KilnError('DIGEST_MISMATCH', `${subject}: the registry served bytes that hash to ${digest}`);
    const claimed = String(response.headers['docker-content-digest'] ?? '').trim();
    const claimedAlgorithm = /^(sha256|sha384|sha512):[a-f0-9]+$/.exec(claimed)?.[1];
    if (claimed && claimedAlgorithm) {
      const actual = claimedAlgorithm === 'sha256' ? digest : `${claimedAlgorithm}:${createHash(claimedAlgorithm).update(bytes).digest('hex')}`;
      if (actual !== claimed) throw new KilnError('DIGEST_MISMATCH', `${subject}: the registry says its digest is ${claimed}, but its bytes hash to ${actual}`);
    }
    return { bytes, mediaType: servedType(bytes, String(response.headers['content-type'] ?? ''), subject), digest };
  }

  /** Whether the registry has a blob in this repository (HEAD). */
  async hasBlob(repository: string, digest: Digest, scope = `repository:${repository}:pull`): Promise<boolean> {
    const response = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`, { scope, what: `${this.host}/${repository} blob ${digest}`, ok: [200, 404] });
    await response.body.dump();
    return response.statusCode === 200;
  }

  /** How a blob of a repository is named in errors. */
  blobSubject(repository: string, digest: Digest): string {
    return `blob ${digest} of ${this.host}/${repository}`;
  }

  /**
   * A blob's bytes from `offset` on (HTTP Range), as a stream of at most the `size` the manifest gives it:
   * more is refused (INVALID_INPUT), as soon as Content-Length announces it or the bytes pass it. A Range
   * request answered 200 (the whole blob) has its first `offset` bytes skipped, as containerd does. A body
   * that stalls or breaks ends the stream with a NETWORK error; one that ends short ends it quietly, early.
   */
  async blob(repository: string, digest: Digest, size: number, offset = 0): Promise<AsyncIterable<Uint8Array>> {
    const subject = this.blobSubject(repository, digest);
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await this.send('GET', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull`, what: `${this.host}/${repository} blob ${digest}`, subject, headers, ok: [200, 206] });
    let start = 0;
    if (response.statusCode === 206) {
      const range = String(response.headers['content-range'] ?? '');
      start = Number(/^bytes (\d+)-/.exec(range)?.[1] ?? NaN);
      if (start !== offset) {
        response.body.destroy();
        throw new KilnError('INVALID_INPUT', `${subject}: the registry answered a request for the bytes from ${offset} on with ${range ? `the range ${range}` : 'a part without Content-Range'}`);
      }
    }
    const announced = Number(response.headers['content-length'] ?? NaN);
    if (start + announced > size) {
      response.body.destroy();
      throw new KilnError('INVALID_INPUT', `${subject}: the registry announced ${announced} bytes${start > 0 ? ` from byte ${start} on` : ''}, more than the blob's ${size}`);
    }
    return this.bounded(response.body, start, offset, size, subject);
  }

  /** The bytes [skip, size) of a body that starts at blob position `at`; more than `size` is an error. */
  private async *bounded(body: AsyncIterable<Uint8Array>, at: number, skip: number, size: number, subject: string): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of body) {
        const from = at;
        at += chunk.length;
        if (at > size) throw new KilnError('INVALID_INPUT', `${subject}: the registry sent more than its ${size} bytes`);
        if (at > skip) yield from >= skip ? chunk : chunk.subarray(skip - from);
      }
    } catch (err) {
      throw this.networkError(err, subject, 'body');
    }
  }

  /**
   * A body read whole into memory, refused (INVALID_INPUT) as soon as it passes `limit` bytes, whether
   * Content-Length announces it or the bytes do; a network fault while reading is a NETWORK error.
   */
  private async readBody(response: ResponseData, limit: number, subject: string, kind: string): Promise<Buffer> {
    const tooLarge = (): KilnError => new KilnError('INVALID_INPUT', `${subject}: the registry sent more than the ${limit} bytes ${kind} may have`);
    if (Number(response.headers['content-length'] ?? 0) > limit) {
      response.body.destroy();
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (err) {
      throw this.networkError(err, subject, 'body');
    }
    return Buffer.concat(chunks, size);
  }

  /**
   * A failure of undici or the socket as one line naming what was asked for (a KilnError passes as it is):
   * a timeout, a connection the registry closed, or (sending a request) an origin that cannot be reached.
   */
  private networkError(err: unknown, subject: string, phase: 'request' | 'body', origin = '', what = subject): KilnError {
    if (err instanceof KilnError) return err;
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    const seconds = this.timeoutSeconds;
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return new KilnError('NETWORK', `timeout: the registry sent no answer for ${seconds} s to the request for ${subject}`, { cause: err });
    if (code === 'UND_ERR_BODY_TIMEOUT') return new KilnError('NETWORK', `timeout: the registry sent nothing for ${seconds} s while sending ${subject}`, { cause: err });
    if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      return new KilnError('NETWORK', `the registry closed the connection ${phase === 'body' ? 'while sending' : 'before answering the request for'} ${subject}`, { cause: err });
    }
    if (phase === 'body') return new KilnError('NETWORK', `the connection broke while the registry was sending ${subject}: ${message}`, { cause: err });
    const tls = /certificate|SSL|TLS|wrong version number|EPROTO/i.test(message) ? ` (for a registry with its own CA put it in /etc/docker/certs.d/${this.endpoint}/ca.crt; for one without TLS name it with --insecure-registry ${this.host})` : '';
    return new KilnError('NETWORK', `${what}: cannot reach ${origin}: ${message}${tls}`, { cause: err });
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
        if (++upload.failures > 5 || (err instanceof KilnError && err.code !== 'NETWORK' && err.code !== 'NOT_FOUND' && err.code !== 'INTERNAL')) throw err;
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

  /**
   * Follows `Link: <…>; rel="next"` pages of a JSON list (tags, catalog), collecting `field`: up to `limit`
   * items, and at most MAX_LIST_ITEMS, so that pages linked in a circle or without end are refused.
   */
  private async pages(path: string, field: 'tags' | 'repositories', scope: string, what: string, limit = Infinity): Promise<string[]> {
    const items: string[] = [];
    const read = new Set<string>();
    for (let next: string | undefined = path; next && items.length < limit; ) {
      if (read.has(next)) throw new KilnError('INVALID_INPUT', `${what}: the registry's pages link back to one already read (${next})`);
      if (items.length > MAX_LIST_ITEMS) throw new KilnError('INVALID_INPUT', `${what}: the registry lists more than ${MAX_LIST_ITEMS} ${field}`);
      read.add(next);
      const response = await this.send('GET', next, { scope, what });
      const body = parseJson(await this.readBody(response, MAX_LIST_ANSWER, what, `a page of ${field}`), what) as Record<string, unknown> | null;
      const list = body?.[field];
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
    const body = parseJson(await this.readBody(response, MAX_LIST_ANSWER, `searching ${this.host}`, 'a search answer'), `searching ${this.host}`) as { results?: unknown } | null;
    if (!Array.isArray(body?.results)) throw new KilnError('INVALID_INPUT', `searching ${this.host}: the answer has no results list`);
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
