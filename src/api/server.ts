/**
 * `kiln serve`: Docker's Engine API over a unix socket (or TLS TCP), so the docker CLI and Docker SDKs
 * drive kiln. This module owns only HTTP: routing, parameters, JSON and jsonmessage streams, and
 * Docker's error statuses; every operation is an `engine` call, the same the CLI makes.
 */
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, rm } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { dirname } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ErrorCode, KilnError, isErrno, isKilnError } from '../errors.js';
import { loadImages, loadMessage, saveImagesAsTar } from '../engine/archive.js';
import { type Engine } from '../engine/engine.js';
import { importImage } from '../engine/import.js';
import { type ProgressEvent, checkCredentials, pullAllTags, pullImage, pushImage, searchImages } from '../engine/registry.js';
import { commitContainer } from '../engine/containers.js';
import { systemDiskUsage } from '../engine/df.js';
import { systemInfo } from '../engine/info.js';
import { API_VERSION, MIN_API_VERSION, versionInfo } from '../engine/version.js';
import { parseReference } from '../reference/reference.js';
import { type BuildRouteOptions, buildRoute } from './build.js';
import { type ContainerRouteOptions, Containers } from './containers.js';
import { EMPTY_BODY, Execs } from './exec.js';
import { eventsRoute, networkRoutes, volumeRoutes } from './resources.js';
import { MAX_JSON_BODY, authConfig, execStartCheck, filtersParameter, flag, headerJson, integer, jsonBody, readJsonBody } from './request.js';

/** The newest API version kiln speaks, and the oldest it accepts in a path prefix. */

const STATUS: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_ARGUMENT: 400,
  INVALID_REFERENCE: 400,
  INVALID_INPUT: 400,
  DIGEST_MISMATCH: 400,
  UNAUTHORIZED: 401,
  UNSUPPORTED: 501,
};

/** A request as a route sees it: the path's captures, the query, the raw request and response. */
export interface Call {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly engine: Engine;
}

type Handler = (call: Call) => void | Promise<void>;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}


/**
 * A jsonmessage stream: one JSON object per line, as Docker streams pull, push, load and build output.
 * An error after the stream began is an `errorDetail` message (the status is already 200). With
 * `lazy`, the 200 goes out with the first message, and an error before it is thrown, for the route to
 * answer with its status (a pull of a tag the registry lacks is a 404), as dockerd does while nothing
 * is flushed.
 */
export function jsonStream(res: ServerResponse, options: { readonly lazy?: boolean } = {}): { send(message: object): void; fail(err: unknown): void } {
  const start = (): void => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/json' });
  };
  if (!options.lazy) start();
  return {
    send: (message) => {
      start();
      if (!res.writableEnded) res.write(`${JSON.stringify(message)}\r\n`);
    },
    fail: (err) => {
      if (!res.headersSent) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (!res.writableEnded) res.write(`${JSON.stringify({ errorDetail: { message }, error: message })}\r\n`);
    },
  };
}

export function progressMessage(event: ProgressEvent): object {
  return { status: event.status, ...(event.id !== undefined ? { id: event.id } : {}), ...(event.progressDetail ? { progressDetail: event.progressDetail } : {}) };
}

/** X-Registry-Auth: base64url JSON credentials the client sends for one pull or push. */
function registryAuth(req: IncomingMessage): { username: string; password: string } | undefined {
  const value = headerJson(req, 'X-Registry-Auth', authConfig);
  return value?.username && value.password ? { username: value.username, password: value.password } : undefined;
}

async function save(call: Call, names: readonly string[]): Promise<void> {
  await saveImagesAsTar(call.engine, names, 'docker', async (tar) => {
    call.res.writeHead(200, { 'content-type': 'application/x-tar' });
    await pipeline(tar, call.res);
  });
}

function imageRoutes(): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/images\/json$/, ({ engine, query, res }) => json(res, 200, engine.listImages({ all: flag(query, 'all'), filters: filtersParameter(query, ['dangling', 'label', 'before', 'since', 'reference']) }))],
    ['GET', /^\/images\/search$/, async ({ query, res }) => {
      const filters = filtersParameter(query, ['stars', 'is-official', 'is-automated']);
      json(res, 200, await searchImages(query.get('term') ?? '', { limit: integer(query, 'limit') ?? 25, filters }));
    }],
    ['GET', /^\/images\/get$/, async (call) => save(call, call.query.getAll('names'))],
    ['GET', /^\/images\/(.+)\/get$/, async (call) => save(call, [call.params[0] ?? ''])],
    ['GET', /^\/images\/(.+)\/json$/, ({ engine, params, res }) => json(res, 200, engine.inspect(params[0] ?? ''))],
    ['GET', /^\/images\/(.+)\/history$/, ({ engine, params, res }) => json(res, 200, engine.history(params[0] ?? ''))],
    ['POST', /^\/images\/(.+)\/tag$/, ({ engine, params, query, res }) => {
      const repo = query.get('repo') ?? '';
      const tag = query.get('tag');
      engine.tag(params[0] ?? '', tag ? `${repo}:${tag}` : repo);
      res.writeHead(201).end();
    }],
    ['DELETE', /^\/images\/(.+)$/, async ({ engine, params, query, res }) => {
      const { events, errors } = await engine.removeImages([params[0] ?? ''], { force: flag(query, 'force'), noPrune: flag(query, 'noprune') });
      if (errors[0]) throw errors[0];
      json(res, 200, events);
    }],
    ['POST', /^\/images\/prune$/, async ({ engine, query, res }) => {
      const filters = filtersParameter(query, ['dangling', 'until', 'label', 'label!']);
      json(res, 200, await engine.pruneImages({ all: filters.get('dangling')?.[0] === 'false', filters }));
    }],
    ['POST', /^\/images\/load$/, async ({ engine, req, query, res }) => {
      const stream = jsonStream(res);
      const quiet = flag(query, 'quiet', true); // as dockerd: quiet unless told otherwise
      try {
        await loadImages(engine, { stream: req, description: 'the uploaded archive' }, (event) => {
          if (event.kind !== 'renamed' || !quiet) stream.send({ stream: `${loadMessage(event)}\n` });
        });
      } catch (err) {
        stream.fail(err);
      }
      res.end();
    }],
    ['POST', /^\/images\/create$/, async ({ engine, req, query, res }) => {
      const fromImage = query.get('fromImage');
      const fromSrc = query.get('fromSrc');
      const repo = query.get('repo');
      const tag = query.get('tag');
      // An empty tag pulls every tag (the docker CLI's pull -a); a name that carries its own tag is pulled as it is.
      const pullAll = fromImage !== null && !tag && !/[:@][^/]*$/.test(fromImage);
      const pulled = tag ? (tag.startsWith('sha256:') ? `${fromImage ?? ''}@${tag}` : `${fromImage ?? ''}:${tag}`) : (fromImage ?? '');
      const imported = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
      // What dockerd refuses before it streams is a 400 here too: a missing source, a malformed name.
      if (fromImage) parseReference(pullAll ? fromImage : pulled);
      else if (!fromSrc) throw new KilnError('INVALID_ARGUMENT', 'images/create needs fromImage or fromSrc');
      else if (fromSrc !== '-') throw new KilnError('UNSUPPORTED', 'import from a URL is not supported: send the archive in the request body (fromSrc=-)');
      else if (imported) parseReference(imported);
      const auth = registryAuth(req);
      const stream = jsonStream(res, { lazy: true });
      try {
        if (fromImage) {
          const platform = query.get('platform');
          const options = { events: (event: ProgressEvent) => stream.send(progressMessage(event)), ...(platform ? { platform } : {}), ...(auth ? { credentials: auth } : {}) };
          if (pullAll) await pullAllTags(engine, fromImage, options);
          else await pullImage(engine, pulled, options);
        } else {
          const id = await importImage(engine, { stream: req }, { ...(imported ? { reference: imported } : {}), changes: query.getAll('changes'), ...(query.get('message') ? { message: query.get('message') ?? '' } : {}), ...(query.get('platform') ? { platform: query.get('platform') ?? '' } : {}) });
          stream.send({ status: id });
        }
      } catch (err) {
        stream.fail(err);
      }
      res.end();
    }],
    ['POST', /^\/images\/(.+)\/push$/, async ({ engine, params, query, req, res }) => {
      const auth = registryAuth(req);
      const stream = jsonStream(res, { lazy: true });
      try {
        const tag = query.get('tag');
        const results = await pushImage(engine, tag ? `${params[0] ?? ''}:${tag}` : (params[0] ?? ''), { events: (event) => stream.send(progressMessage(event)), ...(auth ? { credentials: auth } : {}) });
        for (const result of results) stream.send({ progressDetail: {}, aux: { Tag: result.tag, Digest: result.digest, Size: result.size } });
      } catch (err) {
        stream.fail(err);
      }
      res.end();
    }],
  ];
}

function systemRoutes(): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/version$/, ({ res }) => {
      const { Version, ...details } = versionInfo();
      json(res, 200, {
        Platform: { Name: 'kiln' },
        Components: [{ Name: 'Engine', Version, Details: { ...details, GitCommit: 'kiln', BuildTime: '', Experimental: 'false' } }],
        Version,
        ...details,
        GitCommit: 'kiln',
        BuildTime: '',
      });
    }],
    ['GET', /^\/info$/, async ({ engine, res }) => json(res, 200, await systemInfo(engine))],
    ['POST', /^\/auth$/, async ({ req, res }) => {
      const body = (await readJsonBody(req, authConfig)) ?? {};
      if (!body.username || body.password === undefined) throw new KilnError('INVALID_ARGUMENT', 'auth needs a username and a password');
      await checkCredentials(body.serveraddress ?? 'docker.io', body.username, body.password);
      json(res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
    }],
    ['POST', /^\/commit$/, async ({ engine, query, res }) => {
      const repo = query.get('repo');
      const tag = query.get('tag');
      const id = await commitContainer(engine, query.get('container') ?? '', {
        ...(repo ? { reference: tag ? `${repo}:${tag}` : repo } : {}),
        changes: query.getAll('changes').flatMap((c) => c.split('\n')).filter(Boolean),
        ...(query.get('comment') ? { message: query.get('comment') ?? '' } : {}),
        ...(query.get('author') ? { author: query.get('author') ?? '' } : {}),
      });
      json(res, 201, { Id: id });
    }],
    ['GET', /^\/system\/df$/, async ({ engine, res }) => {
      const usage = await systemDiskUsage(engine);
      json(res, 200, { LayersSize: usage.images.LayersSize, Images: usage.images.Images.map((i) => i.summary), Containers: usage.containers, Volumes: usage.volumes, BuildCache: [], BuilderSize: 0 });
    }],
  ];
}

function containerRoutes(containers: Containers, execs: Execs): [string, RegExp, Handler][] {
  return [
    ['POST', /^\/containers\/(.+)\/exec$/, (call) => execs.create(call)],
    ['POST', /^\/exec\/(.+)\/start$/, (call) => execs.startPlain(call)],
    ['GET', /^\/exec\/(.+)\/json$/, (call) => execs.inspect(call)],
    ['POST', /^\/exec\/(.+)\/resize$/, (call) => execs.resize(call)],
    ['POST', /^\/containers\/create$/, (call) => containers.create(call)],
    ['GET', /^\/containers\/json$/, (call) => containers.list(call)],
    ['POST', /^\/containers\/prune$/, (call) => containers.prune(call)],
    ['POST', /^\/containers\/(.+)\/start$/, (call) => containers.start(call)],
    ['POST', /^\/containers\/(.+)\/wait$/, (call) => containers.wait(call)],
    ['POST', /^\/containers\/(.+)\/attach$/, (call) => containers.attachPlain(call)],
    ['POST', /^\/containers\/(.+)\/kill$/, (call) => containers.kill(call)],
    ['POST', /^\/containers\/(.+)\/stop$/, (call) => containers.stop(call)],
    ['POST', /^\/containers\/(.+)\/restart$/, (call) => containers.restart(call)],
    ['POST', /^\/containers\/(.+)\/rename$/, (call) => containers.rename(call)],
    ['POST', /^\/containers\/(.+)\/pause$/, (call) => containers.pause(call)],
    ['POST', /^\/containers\/(.+)\/unpause$/, (call) => containers.unpause(call)],
    ['GET', /^\/containers\/(.+)\/export$/, (call) => containers.export(call)],
    ['GET', /^\/containers\/(.+)\/top$/, (call) => containers.top(call)],
    ['GET', /^\/containers\/(.+)\/stats$/, (call) => containers.stats(call)],
    ['GET', /^\/containers\/(.+)\/archive$/, (call) => containers.archive(call)],
    ['PUT', /^\/containers\/(.+)\/archive$/, (call) => containers.archive(call)],
    ['POST', /^\/containers\/(.+)\/resize$/, (call) => containers.resize(call)],
    ['GET', /^\/containers\/(.+)\/logs$/, (call) => containers.logs(call)],
    ['GET', /^\/containers\/(.+)\/changes$/, (call) => containers.changes(call)],
    ['GET', /^\/containers\/(.+)\/json$/, (call) => containers.inspect(call)],
    ['DELETE', /^\/containers\/(.+)$/, (call) => containers.remove(call)],
  ];
}

/** Routes by method and path (after the `/v1.NN` prefix); the first whose pattern matches serves. */
function routes(build: BuildRouteOptions, containers: Containers, execs: Execs, stopping: AbortSignal): [string, RegExp, Handler][] {
  return [
    ...systemRoutes(),
    ...imageRoutes(),
    ...containerRoutes(containers, execs),
    ...volumeRoutes(),
    ...networkRoutes(),
    ['GET', /^\/events$/, (call) => eventsRoute(call, stopping)],
    ['POST', /^\/build$/, (call) => buildRoute(call, build)],
    // kiln's build cache is its images (a step's result is an image it finds by the step's key): image
    // prune takes what is unused, so there is no other cache for this to delete.
    ['POST', /^\/build\/prune$/, ({ query, res }) => {
      filtersParameter(query, ['until', 'id', 'parent', 'type', 'description', 'inuse', 'shared', 'private']);
      json(res, 200, { CachesDeleted: null, SpaceReclaimed: 0 });
    }],
  ];
}

/** Where the API listens: a unix socket, or TCP (with TLS unless the caller insisted on plain). */
export type Listen =
  | { readonly socket: string; readonly group?: number }
  | { readonly host: string; readonly port: number; readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string; readonly verifyClients: boolean } };

export interface ServeOptions {
  readonly listen: Listen;
  readonly build: BuildRouteOptions;
  readonly containers: ContainerRouteOptions;
  readonly log?: (line: string) => void;
}

/** A serving Engine API. */
export interface ApiServer {
  /**
   * Stops serving: the listener closes, every connection ends (waits, attaches and log streams at
   * once), and requests still at work get up to `graceMs` to finish. True when all finished.
   */
  close(graceMs: number): Promise<boolean>;
}

/** What a hijacking route gets: the connection (whose request body is read already) and its output. */
interface Hijack {
  readonly id: string;
  readonly query: URLSearchParams;
  readonly req: IncomingMessage;
  readonly body: string;
  readonly out: { upgraded: true; head(text: string): unknown; write(data: Buffer): unknown; end(): unknown; input: Readable };
}

/**
 * Serves the Engine API until closed. A unix socket is created with mode 0660 (and the group given);
 * a socket file nothing answers on (a killed server's) is taken over, one another server answers on is not.
 */
export async function serveApi(engine: Engine, options: ServeOptions): Promise<ApiServer> {
  const stopping = new AbortController();
  const containers = new Containers(options.containers, stopping.signal);
  const execs = new Execs();
  const table = routes(options.build, containers, execs, stopping.signal);
  const tls = 'host' in options.listen ? options.listen.tls : undefined;
  /** Requests at work and open connections, which stopping waits for and ends. */
  const inFlight = new Set<Promise<void>>();
  const sockets = new Set<Duplex>();
  const track = (work: Promise<void>): void => {
    const tracked = work.catch((err: unknown) => options.log?.(`kiln: ${err instanceof Error ? err.message : String(err)}`));
    inFlight.add(tracked);
    void tracked.then(() => inFlight.delete(tracked));
  };
  const holdSocket = (socket: Duplex): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (process.env.KILN_API_TRACE) options.log?.(`${req.method ?? ''} ${req.url ?? ''}`);
    let path = req.url ?? '/';
    try {
      const url = new URL(req.url ?? '/', 'http://kiln');
      const version = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
      path = version ? (version[2] ?? '/') : url.pathname;
      if (version && (Number(version[1]) < Number(MIN_API_VERSION) || Number(version[1]) > Number(API_VERSION) + 0.2)) {
        throw new KilnError('INVALID_ARGUMENT', `client version ${version[1] ?? ''} is not supported: this server speaks ${MIN_API_VERSION} to ${API_VERSION}`);
      }
      if (path === '/_ping') {
        res.writeHead(200, { 'api-version': API_VERSION, 'builder-version': '1', ostype: 'linux', 'docker-experimental': 'false', 'cache-control': 'no-cache, no-store, must-revalidate', pragma: 'no-cache', 'content-type': 'text/plain; charset=utf-8' });
        res.end(req.method === 'HEAD' ? undefined : 'OK');
        return;
      }
      for (const [method, pattern, handler] of table) {
        const match = pattern.exec(path);
        if (!match || (method !== req.method && !(method === 'GET' && req.method === 'HEAD'))) continue;
        await handler({ params: match.slice(1).map(pathParameter), query: url.searchParams, req, res, engine });
        return;
      }
      throw new KilnError('NOT_FOUND', `page not found: ${req.method ?? ''} ${url.pathname}`);
    } catch (err) {
      const status = err instanceof KilnError ? (STATUS[err.code] ?? 500) : 500;
      const message = err instanceof Error ? err.message : String(err);
      options.log?.(`${req.method ?? ''} ${path}: ${status} ${message}`);
      if (res.headersSent) res.end();
      else json(res, status, { message });
    }
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => track(serve(req, res));
  // An upload (load, import, a build's context) takes as long as it takes, as with dockerd: Node's
  // default cuts (408) any request whose body takes more than 5 minutes to arrive.
  const timeouts = { requestTimeout: 0 };
  // Mutual TLS as dockerd's --tlsverify: only clients with a certificate from the CA get in.
  const server: Server = tls
    ? createHttpsServer({ ...timeouts, cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), requestCert: tls.verifyClients, rejectUnauthorized: tls.verifyClients }, handler)
    : createServer(timeouts, handler);
  server.on('connection', holdSocket);
  // `attach` and exec's `start` ask to upgrade the connection (Docker's hijack): the socket then carries the raw stream.
  const upgrades: [RegExp, (hijack: Hijack) => Promise<void>][] = [
    // A body sent with attach (dockerode's options) is not stdin: it is read and left, as dockerd does.
    [/^\/containers\/(.+)\/attach$/, ({ id, query, out }) => containers.attach(engine, id, query, out)],
    [/^\/exec\/(.+)\/start$/, async ({ id, req, body, out }) => {
      jsonBody(req, body, execStartCheck, { contentType: true, empty: EMPTY_BODY });
      await execs.start(engine, id, out);
    }],
  ];
  const hijack = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    holdSocket(socket);
    socket.on('error', () => undefined); // a client gone mid-stream; the stream ends with the socket
    let upgraded = false;
    const path = (req.url ?? '/').replace(/^\/v\d+\.\d+/, '').replace(/\?.*$/, '');
    try {
      const url = new URL(req.url ?? '/', 'http://kiln');
      const route = upgrades.find(([pattern]) => pattern.test(path));
      if (!route) throw new KilnError('NOT_FOUND', 'page not found');
      const [pattern, serveHijack] = route;
      const body = await upgradeBody(socket, head, Number(req.headers['content-length'] ?? 0) || 0);
      const writeHead = (text: string): void => {
        upgraded = true;
        socket.write(text);
      };
      const out = { upgraded: true as const, head: writeHead, write: (data: Buffer) => socket.write(data), end: () => socket.end(), input: socket };
      await serveHijack({ id: pathParameter(pattern.exec(path)?.[1] ?? ''), query: url.searchParams, req, body, out });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      options.log?.(`${path}: ${message}`);
      // Before the 101, the client still reads an HTTP answer: a Docker-style error.
      const status = err instanceof KilnError ? (STATUS[err.code] ?? 500) : 500;
      if (!upgraded && socket.writable) socket.end(`HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message })}`);
      else socket.destroy();
    }
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => track(hijack(req, socket, head)));
  await listenOn(server, options.listen);
  if ('socket' in options.listen) {
    await chmod(options.listen.socket, 0o660);
    if (options.listen.group !== undefined) await chown(options.listen.socket, process.getuid?.() ?? 0, options.listen.group);
  }
  return {
    close: async (graceMs) => {
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
      try {
        return await Promise.race([Promise.all([closed, ...inFlight]).then(() => true), late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** A path segment as the route gets it: percent-decoded (a bad escape is the client's mistake). */
function pathParameter(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new KilnError('INVALID_ARGUMENT', `invalid URL escape in ${JSON.stringify(segment)}`);
  }
}

/**
 * A hijacked request's body: its first `length` bytes (bounded as any JSON body), `head` first. The
 * bytes after it stay in the socket, for the stream that follows.
 */
async function upgradeBody(socket: Duplex, head: Buffer, length: number): Promise<string> {
  if (length > MAX_JSON_BODY) throw new KilnError('INVALID_INPUT', `the request body is larger than ${MAX_JSON_BODY >> 20} MiB, the most kiln reads for a JSON request`);
  let bytes = head;
  if (bytes.length < length) {
    bytes = await new Promise<Buffer>((resolve, reject) => {
      const chunks = [head];
      let size = head.length;
      const stop = (): void => {
        socket.off('data', take);
        socket.off('end', ended);
        socket.off('close', ended);
        socket.pause();
      };
      const take = (chunk: Buffer): void => {
        chunks.push(chunk);
        size += chunk.length;
        if (size < length) return;
        stop();
        resolve(Buffer.concat(chunks));
      };
      const ended = (): void => {
        stop();
        reject(new KilnError('INVALID_INPUT', 'the connection ended before the request body'));
      };
      socket.on('data', take);
      socket.once('end', ended);
      socket.once('close', ended);
    });
  }
  if (bytes.length > length) socket.unshift(bytes.subarray(length));
  return bytes.subarray(0, length).toString('utf8');
}

/** Where the API listens, as -H names it. */
function address(listen: Listen): string {
  return 'socket' in listen ? `unix://${listen.socket}` : `tcp://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
}

/**
 * Listens where asked. A unix socket's file may be there already: when a server answers on it, kiln
 * refuses (as dockerd refuses a second daemon); when nothing does (a killed server's), it is replaced.
 */
async function listenOn(server: Server, listen: Listen): Promise<void> {
  const attempt = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const listening = (): void => {
        server.off('error', reject);
        resolve();
      };
      if ('socket' in listen) server.listen(listen.socket, listening);
      else server.listen(listen.port, listen.host, listening);
    }).catch((err: unknown) => {
      throw listenError(err, listen);
    });
  try {
    await attempt();
  } catch (err) {
    if (!('socket' in listen) || !isKilnError(err, 'CONFLICT')) throw err;
    const answering = await socketServer(listen.socket);
    if (answering) throw new KilnError('CONFLICT', answering === 'kiln' ? `another kiln serve is listening on ${listen.socket}` : `another server is listening on ${listen.socket}`);
    const stat = await lstat(listen.socket).catch(() => undefined);
    if (stat && !stat.isSocket()) throw new KilnError('CONFLICT', `cannot serve on ${address(listen)}: ${listen.socket} exists and is not a socket`);
    await rm(listen.socket, { force: true });
    await attempt();
  }
}

/** A listen error in words a person can act on. */
function listenError(err: unknown, listen: Listen): KilnError {
  const where = `cannot serve on ${address(listen)}`;
  if (isErrno(err, 'EADDRINUSE')) return new KilnError('CONFLICT', `${where}: the address is already in use${'port' in listen ? ` (another server listens on port ${listen.port})` : ''}`);
  // libuv reports a socket's missing directory as EACCES.
  if ((isErrno(err, 'EACCES') || isErrno(err, 'ENOENT')) && 'socket' in listen && !existsSync(dirname(listen.socket))) return new KilnError('INVALID_ARGUMENT', `${where}: the directory ${dirname(listen.socket)} does not exist`);
  if (isErrno(err, 'EACCES')) return new KilnError('FAILED', `${where}: permission denied${'port' in listen && listen.port < 1024 ? ' (ports below 1024 need root)' : ''}`);
  if (isErrno(err, 'EADDRNOTAVAIL') || isErrno(err, 'ENOTFOUND')) return new KilnError('INVALID_ARGUMENT', `${where}: no interface of this machine has that address`);
  return new KilnError('FAILED', `${where}: ${err instanceof Error ? err.message : String(err)}`);
}

/**
 * Who answers on a unix socket: undefined when nothing does (nothing listens, or no file), `kiln` for
 * a kiln serve, `other` for any other server.
 */
async function socketServer(socket: string): Promise<'kiln' | 'other' | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/version', timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk.slice(0, 4096)));
      res.on('end', () => resolve(/"Platform":\{"Name":"kiln"/.test(text) ? 'kiln' : 'other'));
      res.on('error', () => resolve('other'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(isErrno(err, 'ECONNREFUSED') || isErrno(err, 'ENOENT') ? undefined : 'other'));
    req.end();
  });
}
