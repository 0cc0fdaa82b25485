/**
 * The volume routes (`docker volume`, compose's named volumes), the network routes (`docker network`,
 * `system prune`) and `GET /events`: each an `engine` call, answered as dockerd answers API 1.41.
 */
import type { ServerResponse } from 'node:http';
import { EVENT_FILTERS, followEvents } from '../engine/events.js';
import { KilnError } from '../errors.js';
import { NETWORK_LIST_FILTERS, NETWORK_PRUNE_FILTERS, connectNetwork, createNetwork, disconnectNetwork, inspectNetwork, listNetworks, pruneNetworks, removeNetwork } from '../engine/networks.js';
import { VOLUME_LIST_FILTERS, VOLUME_PRUNE_FILTERS, createVolume, inspectVolume, listVolumes, pruneVolumes, removeVolume } from '../engine/volumes.js';
import { array, bool, string, struct } from './json.js';
import { endpointSettings, filtersParameter, flag, readJsonBody, stringMap } from './request.js';
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

/** `POST /networks/create`: types.NetworkCreateRequest. */
const networkCreate = struct('types.NetworkCreateRequest', {
  Name: string(),
  Driver: string(),
  Labels: stringMap,
  Options: stringMap,
  Attachable: bool,
  Internal: bool,
  EnableIPv6: bool,
  CheckDuplicate: bool,
  IPAM: struct('network.IPAM', { Driver: string(), Options: stringMap, Config: array(struct('network.IPAMConfig', { Subnet: string(), IPRange: string(), Gateway: string(), AuxiliaryAddresses: stringMap })) }),
});

/** `POST /networks/{id}/connect` and `…/disconnect`. */
const networkConnect = struct('types.NetworkConnect', { Container: string(), EndpointConfig: endpointSettings, Force: bool });

export function networkRoutes(): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/networks$/, async ({ engine, query, res }) => reply(res, 200, await listNetworks(engine, filtersParameter(query, NETWORK_LIST_FILTERS)))],
    ['POST', /^\/networks\/create$/, async ({ engine, req, res }) => {
      const body = (await readJsonBody(req, networkCreate, { contentType: true })) ?? {};
      const config = body.IPAM?.Config ?? [];
      if (config.length > 1 || config.some((c) => c.IPRange || Object.keys(c.AuxiliaryAddresses ?? {}).length > 0)) throw new KilnError('UNSUPPORTED', 'kiln networks take one IPv4 subnet and gateway (no --ip-range, --aux-address)');
      if (body.IPAM?.Driver && body.IPAM.Driver !== 'default') throw new KilnError('UNSUPPORTED', `IPAM driver ${JSON.stringify(body.IPAM.Driver)} is not supported: kiln has the default one`);
      const id = await createNetwork(engine, {
        name: body.Name ?? '',
        ...(body.Driver ? { driver: body.Driver } : {}),
        internal: body.Internal ?? false,
        enableIPv6: body.EnableIPv6 ?? false,
        labels: body.Labels ?? {},
        options: body.Options ?? {},
        ...(config[0]?.Subnet ? { subnet: config[0].Subnet } : {}),
        ...(config[0]?.Gateway ? { gateway: config[0].Gateway } : {}),
      });
      reply(res, 201, { Id: id, Warning: '' });
    }],
    ['POST', /^\/networks\/prune$/, async ({ engine, query, res }) => {
      const removed = await pruneNetworks(engine, filtersParameter(query, NETWORK_PRUNE_FILTERS));
      reply(res, 200, { NetworksDeleted: removed.length > 0 ? removed : null });
    }],
    ['POST', /^\/networks\/([^/]+)\/(connect|disconnect)$/, async ({ engine, params, req, res }) => {
      const body = (await readJsonBody(req, networkConnect, { contentType: true })) ?? {};
      if (params[1] === 'connect') await connectNetwork(engine, params[0] ?? '', body.Container ?? '', body.EndpointConfig?.Aliases ?? []);
      else await disconnectNetwork(engine, params[0] ?? '', body.Container ?? '');
      res.writeHead(200).end();
    }],
    ['GET', /^\/networks\/([^/]+)$/, async ({ engine, params, res }) => reply(res, 200, await inspectNetwork(engine, params[0] ?? ''))],
    ['DELETE', /^\/networks\/([^/]+)$/, async ({ engine, params, res }) => {
      await removeNetwork(engine, params[0] ?? '');
      res.writeHead(204).end();
    }],
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
