/**
 * Container networks. `host` (the host's network) and `none` (a namespace of its own with only its
 * loopback) are predefined and recorded nowhere; `bridge` (Docker's default) and the networks `network
 * create` makes are meta rows, each a bridge on the host with a subnet of its own, run through the CNI
 * plugins (runtime/cni).
 *
 * Lifecycle of a container's place on them: at start kiln makes the container's network namespace
 * (netns/<id> under the store), runs CNI ADD for each network it joins (the first with its published
 * ports) and records each endpoint; then it writes /etc/hosts of every running member of those
 * networks anew, so that they reach each other by name and alias. When its process has gone, CNI DEL
 * undoes each endpoint (from what ADD was given and answered), the namespace goes, and the other
 * members' /etc/hosts are written again. Endpoints whose container no longer runs (its kiln was killed)
 * are undone the same way by the next start of it, `kiln serve`'s start, and the prunes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import { join } from 'node:path';
import { KilnError } from '../errors.js';
import type { ContainerRow, EndpointRow, NetworkRow } from '../meta/db.js';
import { type CniResult, type NetworkConfigList, type PortMapping, CNI_VERSION, addNetwork, createNamespace, deleteNetwork, hostRoutes, iptablesAvailable, removeLink, removeNamespace } from '../runtime/cni.js';
import type { Engine } from './engine.js';
import { recordEvent } from './events.js';
import { type Filters, booleanFilter, checkFilterKeys, matchLabels, parseTimestamp } from './filters.js';
import { type ContainerSettings, type NetworkAttachment, containerBundle, currentRow, findContainer, isRunning, settingsOf } from './containers/records.js';
import { shortId } from '../oci/digest.js';

/** `--add-host HOST:IP` (Docker takes HOST=IP too, and [IPv6]). */
export function parseExtraHost(entry: string): { host: string; address: string } {
  const at = entry.search(/[:=]/);
  const address = entry.slice(at + 1).replace(/^\[(.*)\]$/, '$1');
  if (at <= 0 || isIP(address) === 0) throw new KilnError('INVALID_ARGUMENT', `invalid --add-host ${JSON.stringify(entry)}: use HOST:IP (an IPv4 or IPv6 address)`);
  return { host: entry.slice(0, at), address };
}

/** The network a container gets when none is asked for (`kiln run`, the docker CLI's `default`). */
const DEFAULT_NETWORK_MODE = 'host';

/** A container's network mode as asked for (nothing, or the docker CLI's `default`, is kiln's default). */
export function networkModeOf(requested: string | undefined): string {
  return !requested || requested === 'default' ? DEFAULT_NETWORK_MODE : requested;
}

/** Docker's default bridge network: on it containers reach the outside and publish ports, not each other by name. */
const DEFAULT_BRIDGE = 'bridge';

/** Networks that are there without a create, and that rm and prune leave. */
const PREDEFINED = [DEFAULT_BRIDGE, 'host', 'none'];

/** A host or none network's ID: the same in every store and run, as a name's digest (Docker's are random). */
function predefinedId(name: string): string {
  return createHash('sha256').update(`kiln network ${name}`).digest('hex');
}

// ---- addresses ----

function ipToNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** An IPv4 CIDR as its first address and size, or an error naming the flag. */
function parseCidr(cidr: string, what: string): { base: number; size: number; prefix: number } {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(cidr);
  const prefix = Number(match?.[2]);
  if (!match || isIP(match[1] ?? '') !== 4 || prefix > 30 || prefix < 8) throw new KilnError('INVALID_ARGUMENT', `invalid ${what} ${JSON.stringify(cidr)}: use an IPv4 CIDR from /8 to /30 (172.20.0.0/16)`);
  const size = 2 ** (32 - prefix);
  return { base: ipToNumber(match[1] ?? '') - (ipToNumber(match[1] ?? '') % size), size, prefix };
}

function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a, 'subnet');
  const y = parseCidr(b, 'subnet');
  return x.base < y.base + y.size && y.base < x.base + x.size;
}

/** Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s. */
function* candidateSubnets(): Generator<string> {
  for (let second = 17; second <= 31; second++) yield `172.${second}.0.0/16`;
  for (let third = 0; third < 256; third += 16) yield `192.168.${third}.0/20`;
}

/** A pool no recorded network and no host route overlaps (the default bridge tries 172.17.0.0/16 first, as Docker's). */
function freeSubnet(engine: Engine, routes: readonly string[]): string {
  const taken = [...engine.store.db.networks().map((n) => n.subnet), ...routes];
  for (const subnet of candidateSubnets()) if (!taken.some((t) => overlaps(t, subnet))) return subnet;
  throw new KilnError('CONFLICT', 'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: give one with --subnet');
}

// ---- network records ----

/** The default bridge's record, made on first use with a free subnet (by whichever of two processes comes first). */
async function defaultBridge(engine: Engine): Promise<NetworkRow> {
  const find = (): NetworkRow | undefined => engine.store.db.networks().find((n) => n.name === DEFAULT_BRIDGE);
  return find() ?? (await recordNetwork(engine, { name: DEFAULT_BRIDGE, labels: {}, options: {}, internal: false }).catch((err: unknown) => find() ?? Promise.reject(err as Error)));
}

/** A recorded network by name, full ID or ID prefix. */
function findRow(engine: Engine, nameOrId: string): NetworkRow | undefined {
  const rows = engine.store.db.networks();
  return rows.find((n) => n.name === nameOrId) ?? rows.find((n) => n.id === nameOrId) ?? (nameOrId.length > 0 ? rows.find((n) => n.id.startsWith(nameOrId)) : undefined);
}

/** What `docker network create` asks for. */
export interface NetworkRequest {
  readonly name: string;
  readonly driver?: string;
  readonly internal?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  readonly options?: Readonly<Record<string, string>>;
  readonly subnet?: string;
  readonly gateway?: string;
  readonly enableIPv6?: boolean;
}

async function recordNetwork(engine: Engine, request: NetworkRequest & { labels: Readonly<Record<string, string>>; options: Readonly<Record<string, string>>; internal: boolean }): Promise<NetworkRow> {
  const routes = request.subnet ? [] : await hostRoutes();
  const id = randomBytes(32).toString('hex');
  const bridge = request.options['com.docker.network.bridge.name'] ?? `kiln-${id.slice(0, 8)}`;
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new KilnError('INVALID_ARGUMENT', `invalid bridge name ${JSON.stringify(bridge)}: up to 15 letters, digits, _ . -`);
  // The pool is chosen and recorded in one transaction: two creates at once get two pools.
  return engine.store.db.transaction(() => {
    const subnet = request.subnet ?? freeSubnet(engine, routes);
    const { base, size } = parseCidr(subnet, '--subnet');
    const clash = engine.store.db.networks().find((n) => overlaps(n.subnet, subnet));
    if (clash) throw new KilnError('CONFLICT', `Pool overlaps with other one on this address space (network ${clash.name} has ${clash.subnet})`);
    const gateway = request.gateway ?? numberToIp(base + 1);
    if (isIP(gateway) !== 4 || ipToNumber(gateway) <= base || ipToNumber(gateway) >= base + size - 1) throw new KilnError('INVALID_ARGUMENT', `invalid --gateway ${JSON.stringify(gateway)}: it must be an address inside ${subnet}`);
    const row: NetworkRow = { id, name: request.name, driver: 'bridge', subnet: `${numberToIp(base)}/${32 - Math.log2(size)}`, gateway, bridge, internal: request.internal, labels: request.labels, options: request.options, createdAt: Date.now() };
    if (!engine.store.db.addNetwork(row)) throw new KilnError('CONFLICT', `network with name ${request.name} already exists`);
    return row;
  });
}

/** `docker network create`: a bridge network with its own subnet (one free unless given). Returns its ID. */
export async function createNetwork(engine: Engine, request: NetworkRequest): Promise<string> {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(request.name)) throw new KilnError('INVALID_ARGUMENT', `invalid network name ${JSON.stringify(request.name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  if (request.driver && request.driver !== 'bridge') throw new KilnError('UNSUPPORTED', `network driver ${JSON.stringify(request.driver)} is not supported: kiln makes bridge networks (-d bridge)`);
  if (request.enableIPv6) throw new KilnError('UNSUPPORTED', 'IPv6 networks are not supported yet: leave out --ipv6');
  if (PREDEFINED.includes(request.name) || findRow(engine, request.name)?.name === request.name) throw new KilnError('CONFLICT', `network with name ${request.name} already exists`);
  const row = await recordNetwork(engine, { ...request, labels: request.labels ?? {}, options: request.options ?? {}, internal: request.internal ?? false });
  recordEvent(engine, 'network', 'create', row.id, { name: row.name, type: row.driver });
  return row.id;
}

/** A network as the Engine API shows it (types.NetworkResource). */
export interface NetworkInfo {
  readonly Name: string;
  readonly Id: string;
  readonly Created: string;
  readonly Scope: 'local';
  readonly Driver: string;
  readonly EnableIPv6: boolean;
  readonly IPAM: { readonly Driver: string; readonly Options: Readonly<Record<string, string>> | null; readonly Config: readonly object[] };
  readonly Internal: boolean;
  readonly Attachable: boolean;
  readonly Ingress: boolean;
  readonly ConfigFrom: { readonly Network: string };
  readonly ConfigOnly: boolean;
  readonly Containers: Readonly<Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>>;
  readonly Options: Readonly<Record<string, string>>;
  readonly Labels: Readonly<Record<string, string>>;
}

/** An endpoint's ID: stable for a container on a network. */
function endpointId(containerId: string, networkId: string): string {
  return createHash('sha256').update(`${containerId}/${networkId}`).digest('hex');
}

function networkInfo(engine: Engine, network: NetworkRow | string, withContainers: boolean): NetworkInfo {
  const containers: Record<string, NetworkInfo['Containers'][string]> = {};
  if (typeof network !== 'string' && withContainers) {
    for (const endpoint of liveEndpoints(engine).filter((e) => e.networkId === network.id)) {
      containers[endpoint.containerId] = { Name: currentRow(engine, endpoint.containerId)?.name ?? '', EndpointID: endpointId(endpoint.containerId, network.id), MacAddress: endpoint.mac, IPv4Address: endpoint.address, IPv6Address: '' };
    }
  }
  if (typeof network === 'string') {
    const name = network;
    return { Name: name, Id: predefinedId(name), Created: '0001-01-01T00:00:00Z', Scope: 'local', Driver: name === 'none' ? 'null' : name, EnableIPv6: false, IPAM: { Driver: 'default', Options: null, Config: [] }, Internal: false, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: containers, Options: {}, Labels: {} };
  }
  const options = network.name === DEFAULT_BRIDGE ? { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.bridge.name': network.bridge } : network.options;
  return {
    Name: network.name,
    Id: network.id,
    Created: new Date(network.createdAt).toISOString(),
    Scope: 'local',
    Driver: network.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: network.name === DEFAULT_BRIDGE ? null : {}, Config: [{ Subnet: network.subnet, Gateway: network.gateway }] },
    Internal: network.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: options,
    Labels: network.labels,
  };
}

export const NETWORK_LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];
export const NETWORK_PRUNE_FILTERS = ['until', 'label', 'label!'];

/** `docker network ls` (the list has no containers, as dockerd's has none), with its filters. */
export async function listNetworks(engine: Engine, filters: Filters = new Map()): Promise<NetworkInfo[]> {
  checkFilterKeys(filters, NETWORK_LIST_FILTERS);
  await defaultBridge(engine);
  const dangling = booleanFilter(filters, 'dangling');
  const used = new Set(liveEndpoints(engine).map((e) => e.networkId));
  const any = (key: string, test: (value: string) => boolean): boolean => (filters.get(key) ?? []).length === 0 || (filters.get(key) ?? []).some(test);
  const all = [...engine.store.db.networks().map((row) => networkInfo(engine, row, false)), ...PREDEFINED.filter((n) => n !== DEFAULT_BRIDGE).map((name) => networkInfo(engine, name, false))].sort((a, b) => a.Name.localeCompare(b.Name));
  return all.filter(
    (network) =>
      any('name', (v) => network.Name.includes(v)) &&
      any('id', (v) => network.Id.startsWith(v)) &&
      any('driver', (v) => v === network.Driver) &&
      any('scope', (v) => v === 'local') &&
      any('type', (v) => (v === 'builtin') === PREDEFINED.includes(network.Name)) &&
      matchLabels(network.Labels, filters.get('label') ?? []) &&
      (dangling === undefined || dangling === (!PREDEFINED.includes(network.Name) && !used.has(network.Id))),
  );
}

/** `docker network inspect`: by name, full ID or an ID's prefix. */
export async function inspectNetwork(engine: Engine, nameOrId: string): Promise<NetworkInfo> {
  if (nameOrId === DEFAULT_BRIDGE) await defaultBridge(engine);
  const row = findRow(engine, nameOrId);
  if (row) return networkInfo(engine, row, true);
  const name = PREDEFINED.find((n) => n === nameOrId || (nameOrId.length > 0 && predefinedId(n).startsWith(nameOrId)));
  if (!name) throw new KilnError('NOT_FOUND', `network ${nameOrId} not found`);
  return networkInfo(engine, name, true);
}

function userNetwork(engine: Engine, nameOrId: string, verb: string): NetworkRow {
  const row = findRow(engine, nameOrId);
  if (row && row.name !== DEFAULT_BRIDGE) return row;
  if (row || PREDEFINED.includes(nameOrId)) throw new KilnError('CONFLICT', `${row?.name ?? nameOrId} is a pre-defined network and cannot be ${verb}`);
  throw new KilnError('NOT_FOUND', `network ${nameOrId} not found`);
}

/** Removes a network's bridge, its address leases and its record. */
async function destroyNetwork(engine: Engine, row: NetworkRow): Promise<void> {
  await removeLink(row.bridge);
  await rm(join(ipamDir(engine), cniName(row)), { recursive: true, force: true });
  engine.store.db.deleteNetwork(row.id);
  recordEvent(engine, 'network', 'destroy', row.id, { name: row.name, type: row.driver });
}

/** `docker network rm`: refused while a running container is on it, and for the predefined networks (as Docker's). */
export async function removeNetwork(engine: Engine, nameOrId: string): Promise<void> {
  const row = userNetwork(engine, nameOrId, 'removed');
  await releaseStaleEndpoints(engine);
  if (liveEndpoints(engine).some((e) => e.networkId === row.id)) throw new KilnError('CONFLICT', `error while removing network: network ${row.name} id ${row.id} has active endpoints`);
  await destroyNetwork(engine, row);
}

/**
 * `docker network prune`: removes the networks no running container is on (with the filters: until,
 * label, label!), and the default bridge's host interface when nothing uses it. Returns their names.
 */
export async function pruneNetworks(engine: Engine, filters: Filters = new Map()): Promise<string[]> {
  checkFilterKeys(filters, NETWORK_PRUNE_FILTERS);
  await releaseStaleEndpoints(engine);
  const used = new Set(liveEndpoints(engine).map((e) => e.networkId));
  const until = (filters.get('until') ?? []).map((value) => parseTimestamp(value));
  const removed: string[] = [];
  for (const row of engine.store.db.networks().filter((n) => !used.has(n.id))) {
    if (row.name === DEFAULT_BRIDGE) {
      await removeLink(row.bridge);
      continue;
    }
    if (until.some((limit) => row.createdAt >= limit) || !matchLabels(row.labels, filters.get('label') ?? []) || !matchLabels(row.labels, filters.get('label!') ?? [], true)) continue;
    await destroyNetwork(engine, row);
    removed.push(row.name);
  }
  return removed;
}

// ---- a container's networks ----

/**
 * Checks a container's network mode (and the networks it is to join) at create; returns the networks it
 * joins, by name (the mode's first), with their aliases. host and none join none.
 */
export function checkNetworkMode(engine: Engine, mode: string, networks: Readonly<Record<string, NetworkAttachment>>): Record<string, NetworkAttachment> {
  const others = Object.keys(networks).filter((name) => name !== mode && name !== 'default');
  if (mode === 'host' || mode === 'none') {
    if (others.length > 0) throw new KilnError('CONFLICT', `container cannot be connected to ${others.join(', ')}: it is on the ${mode} network`);
    if ((networks[mode]?.aliases ?? []).length > 0) throw new KilnError('INVALID_ARGUMENT', 'network-scoped alias is supported only for containers in user defined networks');
    return {};
  }
  if (mode.startsWith('container:')) throw new KilnError('UNSUPPORTED', `network mode ${mode} is not supported: use host, none, bridge or a network's name`);
  const names = [mode, ...others];
  for (const name of names) if (name !== DEFAULT_BRIDGE && !findRow(engine, name)) throw new KilnError('NOT_FOUND', `network ${name} not found`);
  const aliased = (name: string): readonly string[] => networks[name]?.aliases ?? (name === mode ? (networks.default?.aliases ?? []) : []);
  if (aliased(DEFAULT_BRIDGE).length > 0 && names.includes(DEFAULT_BRIDGE)) throw new KilnError('INVALID_ARGUMENT', 'network-scoped alias is supported only for containers in user defined networks');
  // A name or ID prefix is kept as the network's name, as Docker shows NetworkMode.
  return Object.fromEntries(names.map((name) => [findRow(engine, name)?.name ?? name, { aliases: aliased(name) }]));
}

/**
 * What a started container's network is: the namespace its process joins, and its hosts and resolv.conf
 * (hosts null: joinNetworks wrote the file, which the network's members keep current).
 */
export interface ContainerNetwork {
  readonly namespace: 'host' | 'none' | { readonly path: string };
  readonly hosts: string | null;
  readonly resolvConf: string;
}

/** Where a container's network namespace is kept while it runs. */
function namespacePath(engine: Engine, id: string): string {
  return join(engine.store.paths.netns, id);
}

function ipamDir(engine: Engine): string {
  return engine.store.paths.cniIpam;
}

/** The network's name to the plugins: host-local keeps its leases under it, iptables rules carry it. */
function cniName(row: NetworkRow): string {
  return `kiln-${shortId(row.id)}`;
}

/**
 * A network's plugin list: a bridge with host-local addresses (NAT to the outside unless internal),
 * portmap for published ports (its snat lets 127.0.0.1:PORT and other containers reach them), and the
 * firewall plugin's FORWARD rules. Without iptables only the bridge runs (-p is refused, saying why).
 */
function configList(engine: Engine, row: NetworkRow, publishes: boolean): NetworkConfigList {
  const iptables = iptablesAvailable();
  return {
    cniVersion: CNI_VERSION,
    name: cniName(row),
    plugins: [
      { type: 'bridge', bridge: row.bridge, isGateway: true, ipMasq: iptables && !row.internal, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: row.subnet, gateway: row.gateway }]], routes: row.internal ? [] : [{ dst: '0.0.0.0/0' }], dataDir: ipamDir(engine) } },
      // portmap only where ports are published: two plugin runs fewer for each other start.
      ...(iptables && publishes ? [{ type: 'portmap', capabilities: { portMappings: true }, snat: true }] : []),
      ...(iptables ? [{ type: 'firewall' }] : []),
    ],
  };
}

/** Endpoints whose container runs; stale ones (see the top) are left out. */
function liveEndpoints(engine: Engine): EndpointRow[] {
  const running = new Set(engine.store.db.containers().filter(isRunning).map((c) => c.id));
  return engine.store.db.endpoints().filter((e) => running.has(e.containerId));
}

/** Whether `port` can be bound on the host now (a process may hold it). */
function portFree(protocol: string, hostIp: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const socket = createSocket(isIP(hostIp) === 6 ? 'udp6' : 'udp4');
      socket.once('error', () => resolve(undefined));
      socket.bind(port, hostIp || undefined, () => {
        const bound = socket.address().port;
        socket.close(() => resolve(bound));
      });
      return;
    }
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: hostIp || '0.0.0.0', exclusive: true }, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
    });
  });
}

/**
 * The port mappings a container's `-p` and `-P` ask for, with host ports picked for those left to the
 * kernel; a host port another container or process holds is refused, as Docker's proxy refuses it.
 */
async function portMappings(engine: Engine, settings: ContainerSettings): Promise<PortMapping[]> {
  const bindings = Object.entries(settings.portBindings).flatMap(([port, list]) => list.map((binding) => ({ port, ...binding })));
  if (settings.publishAllPorts) for (const port of settings.exposedPorts) if (!settings.portBindings[port]) bindings.push({ port, hostIp: '', hostPort: '' });
  if (bindings.length > 0 && !iptablesAvailable()) throw new KilnError('UNSUPPORTED', 'cannot publish ports (-p, -P): iptables is not installed, and kiln publishes through its NAT rules (install iptables, or use --network host)');
  const held = liveEndpoints(engine).flatMap((e) => JSON.parse(e.ports) as PortMapping[]);
  const mappings: PortMapping[] = [];
  for (const { port, hostIp, hostPort } of bindings) {
    const [containerPort, protocol = 'tcp'] = port.split('/');
    const wanted = Number(hostPort.split('-')[0] || 0);
    const clash = wanted > 0 && [...held, ...mappings].some((m) => m.hostPort === wanted && m.protocol === protocol && (!m.hostIP || !hostIp || m.hostIP === hostIp));
    const bound = clash ? undefined : await portFree(protocol, hostIp, wanted);
    if (bound === undefined) throw new KilnError('CONFLICT', `Bind for ${hostIp || '0.0.0.0'}:${wanted} failed: port is already allocated`);
    mappings.push({ hostPort: bound, containerPort: Number(containerPort), protocol, ...(hostIp ? { hostIP: hostIp } : {}) });
  }
  return mappings;
}

/** Runs CNI ADD of one network for a container whose namespace exists, and records the endpoint. */
async function attach(engine: Engine, containerId: string, row: NetworkRow, ifname: string, aliases: readonly string[], ports: readonly PortMapping[]): Promise<EndpointRow> {
  const list = configList(engine, row, ports.length > 0);
  const result: CniResult = await addNetwork(list, containerId, namespacePath(engine, containerId), ifname, ports);
  const ip = result.ips?.[0];
  const mac = result.interfaces?.find((i) => i.sandbox && i.name === ifname)?.mac ?? '';
  const endpoint: EndpointRow = { containerId, networkId: row.id, ifname, address: ip?.address ?? '', gateway: ip?.gateway ?? '', mac, aliases, ports: JSON.stringify(ports), config: JSON.stringify(list), result: JSON.stringify(result) };
  engine.store.db.addEndpoint(endpoint);
  return endpoint;
}

/** Runs CNI DEL of an endpoint from what its ADD recorded, and forgets it; a plugin's failure leaves what it could not undo, said nowhere but here. */
async function detach(engine: Engine, endpoint: EndpointRow): Promise<void> {
  const list = JSON.parse(endpoint.config) as NetworkConfigList;
  await deleteNetwork(list, endpoint.containerId, namespacePath(engine, endpoint.containerId), endpoint.ifname, JSON.parse(endpoint.ports) as PortMapping[], JSON.parse(endpoint.result) as CniResult).catch(() => undefined);
  engine.store.db.deleteEndpoint(endpoint.containerId, endpoint.networkId);
}

/** The row of a network a container joins by name, the default bridge recorded when first used. */
async function networkNamed(engine: Engine, name: string): Promise<NetworkRow> {
  if (name === DEFAULT_BRIDGE) return defaultBridge(engine);
  const row = findRow(engine, name);
  if (!row) throw new KilnError('NOT_FOUND', `network ${name} not found`);
  return row;
}

/** Sets up a starting container's network (see ContainerNetwork and the top). */
export async function joinNetworks(engine: Engine, container: ContainerRow, settings: ContainerSettings): Promise<ContainerNetwork> {
  const hostname = settings.hostname ?? shortId(container.id);
  if (settings.networkMode === 'host' || settings.networkMode === 'none' || Object.keys(settings.networks).length === 0) {
    // Disconnected from every network it had, a container has only its loopback, as Docker's.
    const none = settings.networkMode !== 'host';
    return { namespace: none ? 'none' : 'host', hosts: hostsFile(hostname, settings.extraHosts, [], []), resolvConf: await resolvConf(settings, none ? 'none' : 'host') };
  }
  await leaveNetworks(engine, container.id); // what a killed kiln left of its last run
  const rows = await Promise.all(Object.keys(settings.networks).map((name) => networkNamed(engine, name)));
  const ports = await portMappings(engine, settings);
  const path = namespacePath(engine, container.id);
  await createNamespace(path, container.id);
  for (const [index, row] of rows.entries()) await attach(engine, container.id, row, `eth${index}`, settings.networks[row.name]?.aliases ?? [], index === 0 ? ports : []);
  refreshHosts(engine, new Set(rows.map((r) => r.id)));
  return { namespace: { path }, hosts: null, resolvConf: await resolvConf(settings, 'bridge') };
}

/** Undoes joinNetworks once the container's process has gone (or a killed kiln left it): never fails. */
export async function leaveNetworks(engine: Engine, id: string): Promise<void> {
  const endpoints = engine.store.db.endpoints().filter((e) => e.containerId === id);
  for (const endpoint of endpoints.reverse()) await detach(engine, endpoint);
  await removeNamespace(namespacePath(engine, id)).catch(() => undefined);
  if (endpoints.length > 0) refreshHosts(engine, new Set(endpoints.map((e) => e.networkId)));
}

/**
 * Undoes the endpoints and namespaces of containers that no longer run: what a kill -9 of the kiln
 * running them left. `kiln serve` runs it when it starts; the prunes and network rm before they look.
 */
export async function releaseStaleEndpoints(engine: Engine): Promise<void> {
  const ids = new Set([...engine.store.db.endpoints().map((e) => e.containerId), ...(await readdir(engine.store.paths.netns).catch(() => [] as string[]))]);
  for (const id of ids) {
    const row = currentRow(engine, id);
    if (!row || !isRunning(row)) await leaveNetworks(engine, id);
  }
}

/** `docker network connect`: a running container joins at once (its next interface), a stopped one at its next start. */
export async function connectNetwork(engine: Engine, nameOrId: string, containerName: string, aliases: readonly string[] = []): Promise<void> {
  const network = nameOrId === DEFAULT_BRIDGE ? await defaultBridge(engine) : findRow(engine, nameOrId);
  if (!network) throw new KilnError(PREDEFINED.includes(nameOrId) ? 'CONFLICT' : 'NOT_FOUND', PREDEFINED.includes(nameOrId) ? `container cannot be disconnected from host network or connected to host network` : `network ${nameOrId} not found`);
  const container = findContainer(engine, containerName);
  const settings = settingsOf(container);
  if (settings.networkMode === 'host' || settings.networkMode === 'none') throw new KilnError('CONFLICT', `container cannot be disconnected from host network or connected to host network (${container.name} is on ${settings.networkMode})`);
  if (settings.networks[network.name]) throw new KilnError('CONFLICT', `endpoint with name ${container.name} already exists in network ${network.name}`);
  if (network.name === DEFAULT_BRIDGE && aliases.length > 0) throw new KilnError('INVALID_ARGUMENT', 'network-scoped alias is supported only for containers in user defined networks');
  if (isRunning(container)) {
    const taken = new Set(engine.store.db.endpoints().filter((e) => e.containerId === container.id).map((e) => e.ifname));
    let index = 0;
    while (taken.has(`eth${index}`)) index++;
    await attach(engine, container.id, network, `eth${index}`, aliases, []);
  }
  engine.store.db.setContainerSettings(container.id, JSON.stringify({ ...settings, networks: { ...settings.networks, [network.name]: { aliases } } }));
  if (isRunning(container)) refreshHosts(engine, new Set([network.id]));
  recordEvent(engine, 'network', 'connect', network.id, { container: container.id, name: network.name, type: network.driver });
}

/** `docker network disconnect`: a running container leaves at once; either way it no longer joins at start. */
export async function disconnectNetwork(engine: Engine, nameOrId: string, containerName: string): Promise<void> {
  const network = findRow(engine, nameOrId);
  if (!network) throw new KilnError(PREDEFINED.includes(nameOrId) ? 'CONFLICT' : 'NOT_FOUND', PREDEFINED.includes(nameOrId) ? 'container cannot be disconnected from host network or connected to host network' : `network ${nameOrId} not found`);
  const container = findContainer(engine, containerName);
  const settings = settingsOf(container);
  if (!settings.networks[network.name]) throw new KilnError('CONFLICT', `container ${container.name} is not connected to network ${network.name}`);
  const endpoint = engine.store.db.endpoints().find((e) => e.containerId === container.id && e.networkId === network.id);
  if (endpoint) await detach(engine, endpoint);
  const networks = Object.fromEntries(Object.entries(settings.networks).filter(([name]) => name !== network.name));
  engine.store.db.setContainerSettings(container.id, JSON.stringify({ ...settings, networks }));
  if (endpoint) refreshHosts(engine, new Set([network.id]));
  recordEvent(engine, 'network', 'disconnect', network.id, { container: container.id, name: network.name, type: network.driver });
}

// ---- generated files ----

/** A container's /etc/hosts: the standard lines, its own address, `--add-host`'s, then its peers'. */
function hostsFile(hostname: string, extraHosts: readonly string[], own: readonly string[], peers: readonly string[]): string {
  const extra = extraHosts.map((entry) => {
    const { host, address } = parseExtraHost(entry);
    return `${address}\t${host}\n`;
  });
  const self = own.length > 0 ? own.map((address) => `${address}\t${hostname}\n`) : [`127.0.1.1\t${hostname}\n`];
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${self.join('')}${extra.join('')}${peers.join('')}`;
}

/**
 * The hosts file of a container on networks: its addresses, and on user networks (not the default
 * bridge, where Docker resolves no names either) every other running member by name, aliases and short ID.
 */
function hostsOf(engine: Engine, container: ContainerRow, settings: ContainerSettings): string {
  const live = liveEndpoints(engine);
  const mine = live.filter((e) => e.containerId === container.id);
  const bridge = engine.store.db.networks().find((n) => n.name === DEFAULT_BRIDGE)?.id;
  const shared = new Set(mine.map((e) => e.networkId).filter((id) => id !== bridge));
  const peers = live
    .filter((e) => e.containerId !== container.id && shared.has(e.networkId))
    .map((e) => {
      const name = currentRow(engine, e.containerId)?.name ?? '';
      return `${e.address.split('/')[0]}\t${[...new Set([name, ...e.aliases, shortId(e.containerId)])].join(' ')}\n`;
    });
  return hostsFile(settings.hostname ?? shortId(container.id), settings.extraHosts, mine.map((e) => e.address.split('/')[0] ?? ''), [...new Set(peers)]);
}

/**
 * Writes anew /etc/hosts of every running container on these networks: in place, as the file is
 * bind-mounted into the container. In one transaction, which also holds off other kiln processes, so
 * that of two members joining at once the later writes last, from both endpoints.
 */
function refreshHosts(engine: Engine, networkIds: ReadonlySet<string>): void {
  engine.store.db.transaction(() => {
    const members = new Set(liveEndpoints(engine).filter((e) => networkIds.has(e.networkId)).map((e) => e.containerId));
    for (const id of members) {
      const row = currentRow(engine, id);
      const file = join(containerBundle(engine, id), 'hosts');
      try {
        if (row) writeFileSync(file, hostsOf(engine, row, settingsOf(row)));
      } catch {
        // its bundle is going (rm meanwhile): nothing to keep current
      }
    }
  });
}

/**
 * A container's resolv.conf: the host's (none for a container without a network), with the request's
 * `--dns`, `--dns-search` and `--dns-option` in place of the host's. A container in a namespace of its
 * own cannot reach the host's loopback resolvers: those are left out, and Google's public ones take
 * their place when nothing is left (as Docker does).
 */
async function resolvConf(settings: ContainerSettings, mode: 'host' | 'none' | 'bridge'): Promise<string> {
  if (mode === 'none') return '';
  const lines = (await readFile('/etc/resolv.conf', 'utf8').catch(() => '')).split('\n');
  const local = (line: string): boolean => mode === 'bridge' && /^nameserver\s+(127\.|::1\s*$)/.test(line);
  const host = lines.filter((line) => !local(line));
  if (mode === 'bridge' && !host.some((l) => l.startsWith('nameserver'))) host.push('nameserver 8.8.8.8', 'nameserver 8.8.4.4');
  const keep = (key: string, given: readonly string[], line: (value: string) => string): string[] => (given.length > 0 ? given.map(line) : host.filter((l) => l.startsWith(`${key} `) || l.startsWith(`${key}\t`)));
  const other = host.filter((l) => l.trim() !== '' && !/^(nameserver|search|domain|options)\s/.test(l));
  return [...other, ...keep('search', settings.dnsSearch.length ? [settings.dnsSearch.join(' ')] : [], (v) => `search ${v}`), ...keep('nameserver', settings.dns, (v) => `nameserver ${v}`), ...keep('options', settings.dnsOptions.length ? [settings.dnsOptions.join(' ')] : [], (v) => `options ${v}`)].map((l) => `${l}\n`).join('');
}

// ---- inspect ----

/** A published port as `docker ps` and the API's container list show it. */
export interface PortSummary {
  readonly IP?: string;
  readonly PrivatePort: number;
  readonly PublicPort?: number;
  readonly Type: string;
}

/** An endpoint as container inspect's NetworkSettings.Networks shows it (network.EndpointSettings). */
function endpointJson(aliases: readonly string[] | null, endpoint?: EndpointRow): Record<string, unknown> {
  const [ip = '', prefix = '0'] = endpoint?.address.split('/') ?? [];
  return { IPAMConfig: null, Links: null, Aliases: aliases, NetworkID: endpoint?.networkId ?? '', EndpointID: endpoint ? endpointId(endpoint.containerId, endpoint.networkId) : '', Gateway: endpoint?.gateway ?? '', IPAddress: ip, IPPrefixLen: Number(prefix), IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, MacAddress: endpoint?.mac ?? '', DriverOpts: null };
}

/**
 * A container's NetworkSettings as inspect shows them, the summary's (the API's container list), and its
 * ports: from the networks it joins and, while it runs, its endpoints there and the host ports published.
 */
export function networkSettingsJson(engine: Engine, container: ContainerRow, settings: ContainerSettings): { full: Record<string, unknown>; summary: Record<string, unknown>; ports: PortSummary[] } {
  const endpoints = isRunning(container) ? engine.store.db.endpoints().filter((e) => e.containerId === container.id) : [];
  const rows = engine.store.db.networks();
  const endpointOn = (name: string): EndpointRow | undefined => endpoints.find((e) => e.networkId === rows.find((n) => n.name === name)?.id);
  const names = Object.keys(settings.networks).length > 0 ? Object.keys(settings.networks) : [settings.networkMode];
  const networks = Object.fromEntries(names.map((name) => [name, endpointJson(settings.networks[name]?.aliases.length ? [...(settings.networks[name]?.aliases ?? [])] : null, endpointOn(name))]));
  const published = endpoints.flatMap((e) => JSON.parse(e.ports) as PortMapping[]).sort((a, b) => a.containerPort - b.containerPort || a.protocol.localeCompare(b.protocol));
  const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const port of [...settings.exposedPorts].sort((a, b) => parseInt(a, 10) - parseInt(b, 10))) ports[port] = null;
  for (const m of published) (ports[`${m.containerPort}/${m.protocol}`] ??= []).push({ HostIp: m.hostIP ?? '0.0.0.0', HostPort: String(m.hostPort) });
  const summaries: PortSummary[] = [
    ...published.map((m) => ({ IP: m.hostIP ?? '0.0.0.0', PrivatePort: m.containerPort, PublicPort: m.hostPort, Type: m.protocol })),
    ...settings.exposedPorts.filter((port) => !ports[port]).map((port) => ({ PrivatePort: Number(port.split('/')[0]), Type: port.split('/')[1] ?? 'tcp' })),
  ];
  const primary = settings.networkMode === DEFAULT_BRIDGE ? networks[DEFAULT_BRIDGE] : undefined;
  return {
    full: {
      Bridge: '',
      SandboxID: endpoints.length > 0 ? container.id : '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: isRunning(container) ? ports : {},
      SandboxKey: endpoints.length > 0 ? namespacePath(engine, container.id) : '',
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: primary?.EndpointID ?? '',
      Gateway: primary?.Gateway ?? '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: primary?.IPAddress ?? '',
      IPPrefixLen: primary?.IPPrefixLen ?? 0,
      IPv6Gateway: '',
      MacAddress: primary?.MacAddress ?? '',
      Networks: networks,
    },
    summary: { Networks: networks },
    ports: summaries,
  };
}
