/**
 * Container networks: the modes a container's network can take, and the predefined networks `docker
 * network` shows for them (host and none; kiln makes no networks of its own yet).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { KilnError } from '../errors.js';
import type { ContainerRow } from '../meta/db.js';
import type { Engine } from './engine.js';
import { type Filters, booleanFilter, checkFilterKeys, matchLabels } from './filters.js';
import { type ContainerSettings, type NetworkAttachment, isRunning, settingsOf } from './containers/records.js';

/** `--add-host HOST:IP` (Docker takes HOST=IP too, and [IPv6]). */
export function parseExtraHost(entry: string): { host: string; address: string } {
  const at = entry.search(/[:=]/);
  const address = entry.slice(at + 1).replace(/^\[(.*)\]$/, '$1');
  if (at <= 0 || isIP(address) === 0) throw new KilnError('INVALID_ARGUMENT', `invalid --add-host ${JSON.stringify(entry)}: use HOST:IP (an IPv4 or IPv6 address)`);
  return { host: entry.slice(0, at), address };
}

/** The network a container gets when none is asked for. */
export const DEFAULT_NETWORK_MODE = 'host';

/**
 * Checks a container's network mode (and the networks it is to join) at create; returns the networks it
 * joins by name.
 */
export function checkNetworkMode(_engine: Engine, mode: string, networks: Readonly<Record<string, NetworkAttachment>>): Record<string, NetworkAttachment> {
  if (mode !== 'host' && mode !== 'none') throw new KilnError('UNSUPPORTED', `network mode ${JSON.stringify(mode)} is not supported: use none or host`);
  if (Object.keys(networks).some((name) => name !== mode && name !== 'default')) throw new KilnError('UNSUPPORTED', `a container on the ${mode} network cannot join others`);
  return {};
}

/** What a started container's network is: the namespace its process joins, and its hosts and resolv.conf. */
export interface ContainerNetwork {
  readonly namespace: 'host' | 'none' | { readonly path: string };
  readonly hosts: string;
  readonly resolvConf: string;
}

/** The standard lines of a container's /etc/hosts, then the `--add-host` ones. */
function hostsFile(hostname: string, extraHosts: readonly string[]): string {
  const extra = extraHosts.map((entry) => {
    const { host, address } = parseExtraHost(entry);
    return `${address}\t${host}\n`;
  });
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n${extra.join('')}`;
}

/**
 * A container's resolv.conf: the host's (none for a container without a network), with the request's
 * `--dns`, `--dns-search` and `--dns-option` in place of the host's.
 */
async function resolvConf(settings: ContainerSettings): Promise<string> {
  if (settings.networkMode === 'none') return '';
  const host = (await readFile('/etc/resolv.conf', 'utf8').catch(() => '')).split('\n');
  const keep = (key: string, given: readonly string[], line: (value: string) => string): string[] => (given.length > 0 ? given.map(line) : host.filter((l) => l.startsWith(`${key} `) || l.startsWith(`${key}\t`)));
  const other = host.filter((l) => l.trim() !== '' && !/^(nameserver|search|domain|options)\s/.test(l));
  return [...other, ...keep('search', settings.dnsSearch.length ? [settings.dnsSearch.join(' ')] : [], (v) => `search ${v}`), ...keep('nameserver', settings.dns, (v) => `nameserver ${v}`), ...keep('options', settings.dnsOptions.length ? [settings.dnsOptions.join(' ')] : [], (v) => `options ${v}`)].map((l) => `${l}\n`).join('');
}

/** Sets up a starting container's network (see ContainerNetwork). */
export async function joinNetworks(_engine: Engine, container: ContainerRow, settings: ContainerSettings): Promise<ContainerNetwork> {
  return { namespace: settings.networkMode === 'none' ? 'none' : 'host', hosts: hostsFile(settings.hostname ?? container.id.slice(0, 12), settings.extraHosts), resolvConf: await resolvConf(settings) };
}

/** Undoes joinNetworks once the container's process has gone. */
export async function leaveNetworks(_engine: Engine, _id: string): Promise<void> {
  // host and none leave nothing behind
}

/** A published port as `docker ps` and the API's container list show it. */
export interface PortSummary {
  readonly IP?: string;
  readonly PrivatePort: number;
  readonly PublicPort?: number;
  readonly Type: string;
}

/** An endpoint as container inspect's NetworkSettings.Networks shows it (network.EndpointSettings). */
function endpointJson(aliases: readonly string[] | null): Record<string, unknown> {
  return { IPAMConfig: null, Links: null, Aliases: aliases, NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, MacAddress: '', DriverOpts: null };
}

/**
 * A container's NetworkSettings as inspect shows them, the summary's (the API's container list), and its
 * published ports: from the networks it joins and, while it runs, its endpoints there.
 */
export function networkSettingsJson(_engine: Engine, _container: ContainerRow, settings: ContainerSettings): { full: Record<string, unknown>; summary: Record<string, unknown>; ports: PortSummary[] } {
  const networks = { [settings.networkMode]: endpointJson(null) };
  const exposed = settings.exposedPorts.map((port) => ({ PrivatePort: Number(port.split('/')[0]), Type: port.split('/')[1] ?? 'tcp' }));
  return {
    full: { Bridge: '', SandboxID: '', HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0, Ports: {}, SandboxKey: '', SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '', Networks: networks },
    summary: { Networks: networks },
    ports: exposed,
  };
}

/** A network as the Engine API shows it (types.NetworkResource). */
export interface NetworkInfo {
  readonly Name: string;
  readonly Id: string;
  readonly Created: string;
  readonly Scope: 'local';
  readonly Driver: string;
  readonly EnableIPv6: boolean;
  readonly IPAM: { readonly Driver: string; readonly Options: null; readonly Config: readonly object[] };
  readonly Internal: boolean;
  readonly Attachable: boolean;
  readonly Ingress: boolean;
  readonly ConfigFrom: { readonly Network: string };
  readonly ConfigOnly: boolean;
  readonly Containers: Readonly<Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>>;
  readonly Options: Readonly<Record<string, string>>;
  readonly Labels: Readonly<Record<string, string>>;
}

/** The networks every kiln has: a container's network mode names one of them. */
const PREDEFINED = ['host', 'none'] as const;

export const NETWORK_LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];

/** A predefined network's ID: the same in every store and run, as a name's digest (Docker's are random). */
function networkId(name: string): string {
  return createHash('sha256').update(`kiln network ${name}`).digest('hex');
}

function networkInfo(engine: Engine, name: string, withContainers: boolean): NetworkInfo {
  const containers: Record<string, NetworkInfo['Containers'][string]> = {};
  if (withContainers) {
    for (const row of engine.store.db.containers()) {
      if (settingsOf(row).networkMode === name && isRunning(row)) containers[row.id] = { Name: row.name, EndpointID: '', MacAddress: '', IPv4Address: '', IPv6Address: '' };
    }
  }
  return {
    Name: name,
    Id: networkId(name),
    Created: '0001-01-01T00:00:00Z',
    Scope: 'local',
    Driver: name === 'none' ? 'null' : name,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: {},
    Labels: {},
  };
}

/** `docker network ls` (the list has no containers, as dockerd's has none), with its filters. */
export function listNetworks(engine: Engine, filters: Filters = new Map()): NetworkInfo[] {
  checkFilterKeys(filters, NETWORK_LIST_FILTERS);
  const dangling = booleanFilter(filters, 'dangling');
  const any = (key: string, test: (value: string) => boolean): boolean => (filters.get(key) ?? []).length === 0 || (filters.get(key) ?? []).some(test);
  return PREDEFINED.map((name) => networkInfo(engine, name, false)).filter(
    (network) =>
      any('name', (v) => network.Name.includes(v)) &&
      any('id', (v) => network.Id.startsWith(v)) &&
      any('driver', (v) => v === network.Driver) &&
      any('scope', (v) => v === 'local') &&
      any('type', (v) => v === 'builtin') &&
      matchLabels(network.Labels, filters.get('label') ?? []) &&
      // Predefined networks are never dangling.
      dangling !== true,
  );
}

/** `docker network inspect`: by name, full ID or an ID's prefix. */
export function inspectNetwork(engine: Engine, nameOrId: string): NetworkInfo {
  const name = PREDEFINED.find((n) => n === nameOrId || (nameOrId.length > 0 && networkId(n).startsWith(nameOrId)));
  if (!name) throw new KilnError('NOT_FOUND', `network ${nameOrId} not found`);
  return networkInfo(engine, name, true);
}

/** `docker network create`: not yet kiln's (its containers run on the host's network or none). */
export function createNetwork(name: string): never {
  throw new KilnError('UNSUPPORTED', `network create ${name}: kiln has only the host and none networks; run containers with --network host or none (compose: network_mode: host)`);
}

/** `docker network rm`: the predefined networks stay, as Docker's do. */
export function removeNetwork(engine: Engine, nameOrId: string): never {
  const { Name } = inspectNetwork(engine, nameOrId);
  throw new KilnError('CONFLICT', `${Name} is a pre-defined network and cannot be removed`);
}
