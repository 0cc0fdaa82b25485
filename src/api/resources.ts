/**
 * The volume routes (`docker volume`, compose's named volumes), the network routes (`docker network`,
 * `system prune`) and `GET /events`: each an `engine` call, answered as dockerd answers API 1.41.
 */
import type { ServerResponse } from 'node:http';
import { EVENT_FILTERS, followEvents } from '../engine/events.js';
import { NETWORK_LIST_FILTERS, createNetwork, inspectNetwork, listNetworks, removeNetwork } from '../engine/networks.js';
import { VOLUME_LIST_FILTERS, VOLUME_PRUNE_FILTERS, createVolume, inspectVolume, listVolumes, pruneVolumes, removeVolume } from '../engine/volumes.js';
import { bool, string, struct } from './json.js';
import { filtersParameter, flag, readJsonBody, stringMap } from './request.js';
import type { Call } from './server.js';

type Handler = (call: Call) => void | Promise<void>;

/** `POST /volumes/create`: volume.CreateOptions. */
const volumeCreate = struct('volume.CreateOptions', { Name: string(), Driver: string(), DriverOpts: stringMap, Labels: stringMap });

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

export function volumeRoutes(): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/volumes$/, ({ engine, query, res }) => reply(res, 200, { Volumes: listVolumes(engine, filtersParameter(query, VOLUME_LIST_FILTERS)), Warnings: null })],
    ['POST', /^\/volumes\/create$/, async ({ engine, req, res }) => {
      const body = (await readJsonBody(req, volumeCreate, { contentType: true })) ?? {};
      reply(res, 201, createVolume(engine, { ...(body.Name ? { name: body.Name } : {}), ...(body.Driver ? { driver: body.Driver } : {}), labels: body.Labels ?? null, options: body.DriverOpts ?? null }));
    }],
    ['POST', /^\/volumes\/prune$/, async ({ engine, query, res }) => {
      // API 1.41 (kiln's newest) prunes every unused volume; `all`, 1.42's way to ask for that, is the same here.
      reply(res, 200, await pruneVolumes(engine, { filters: filtersParameter(query, VOLUME_PRUNE_FILTERS), all: true }));
    }],
    ['GET', /^\/volumes\/(.+)$/, ({ engine, params, res }) => reply(res, 200, inspectVolume(engine, params[0] ?? ''))],
    ['DELETE', /^\/volumes\/(.+)$/, async ({ engine, params, query, res }) => {
      await removeVolume(engine, params[0] ?? '', flag(query, 'force'));
      res.writeHead(204).end();
    }],
  ];
}

/** `POST /networks/create`: the name is all kiln reads before it says it cannot. */
const networkCreate = struct('types.NetworkCreateRequest', { Name: string(), Driver: string(), Labels: stringMap, Attachable: bool, Internal: bool, CheckDuplicate: bool });

export function networkRoutes(): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/networks$/, ({ engine, query, res }) => reply(res, 200, listNetworks(engine, filtersParameter(query, NETWORK_LIST_FILTERS)))],
    ['POST', /^\/networks\/create$/, async ({ req }) => createNetwork((await readJsonBody(req, networkCreate, { contentType: true }))?.Name ?? '')],
    ['POST', /^\/networks\/prune$/, ({ query, res }) => {
      filtersParameter(query, ['until', 'label', 'label!']); // refuses a filter dockerd would refuse
      // Only the predefined networks are there, and prune leaves those.
      reply(res, 200, { NetworksDeleted: null });
    }],
    ['GET', /^\/networks\/([^/]+)$/, ({ engine, params, res }) => reply(res, 200, inspectNetwork(engine, params[0] ?? ''))],
    ['DELETE', /^\/networks\/([^/]+)$/, ({ engine, params }) => removeNetwork(engine, params[0] ?? '')],
  ];
}

/**
 * `GET /events`: one JSON message a line, flushed as each happens, until `until` has passed, the client
 * goes, or the server stops (`stopping`).
 */
export async function eventsRoute({ engine, query, res }: Call, stopping: AbortSignal): Promise<void> {
  const filters = filtersParameter(query, EVENT_FILTERS);
  const gone = new AbortController();
  const end = (): void => gone.abort();
  res.once('close', end);
  stopping.addEventListener('abort', end, { once: true });
  try {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    await followEvents(engine, (event) => res.write(`${JSON.stringify(event)}\n`), {
      filters,
      signal: gone.signal,
      ...(query.get('since') ? { since: query.get('since') ?? '' } : {}),
      ...(query.get('until') ? { until: query.get('until') ?? '' } : {}),
    });
  } finally {
    res.off('close', end);
    stopping.removeEventListener('abort', end);
    res.end();
  }
}
