/**
 * What a request may carry, in one place: the Engine API's JSON bodies as the Go types dockerd decodes
 * (the parts kiln reads), the readers of query parameters with dockerd's rules, and the bound on a
 * JSON body. Every route reads its input through these, so a request of the wrong shape is a 400 with
 * dockerd's words, never a JavaScript error.
 */
import type { IncomingMessage } from 'node:http';
import { KilnError } from '../errors.js';
import { type Filters, checkFilterKeys } from '../engine/filters.js';
import type { Ulimit } from '../runtime/resources.js';
import { type Shape, array, bool, decodeJson, integer as goInteger, map, pointer, strSlice, string, struct } from './json.js';

/**
 * The most a JSON request body may be. dockerd sets none; kiln must not hold an unbounded body in
 * memory. A container runs with at most about 2 MiB of arguments and environment (Linux's execve
 * limit), so 4 MiB leaves room for all a real request holds.
 */
export const MAX_JSON_BODY = 4 << 20;

/**
 * A request body, read whole up to `limit` bytes (refused before reading when its declared length is
 * more). A refused body is drained unread, so the client gets the 400 rather than a broken connection.
 */
export async function readBody(req: IncomingMessage, limit = MAX_JSON_BODY): Promise<string> {
  const refuse = (): KilnError => {
    req.resume();
    return new KilnError('INVALID_INPUT', `the request body is larger than ${limit >> 20} MiB, the most kiln reads for a JSON request`);
  };
  if (Number(req.headers['content-length'] ?? 0) > limit) throw refuse();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    size += (chunk as Buffer).length;
    if (size > limit) throw refuse();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** dockerd's check on the routes that decode a JSON body: a body must say it is JSON. */
export function checkJsonContentType(req: IncomingMessage): void {
  const type = req.headers['content-type'] ?? '';
  const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : req.headers['transfer-encoding'] ? -1 : 0;
  if (type === '' && declared === 0) return;
  if (type.split(';')[0]?.trim().toLowerCase() === 'application/json') return;
  throw new KilnError('INVALID_ARGUMENT', `Content-Type specified (${type}) must be 'application/json'`);
}

/**
 * A request's JSON body (`text`, read already) as `shape`; undefined when it is null. With
 * `contentType`, the body must say it is JSON (the routes where dockerd checks); `empty` is the
 * message for no body at all (else Go's `EOF`).
 */
export function jsonBody<T>(req: IncomingMessage, text: string, shape: Shape<T>, options: { readonly contentType?: boolean; readonly empty?: string } = {}): T | undefined {
  if (options.contentType) checkJsonContentType(req);
  if (options.empty !== undefined && text.trim() === '') throw new KilnError('INVALID_INPUT', options.empty);
  return decodeJson(text, shape, 'stream');
}

/** Reads a request's JSON body and decodes it as `jsonBody` does. */
export async function readJsonBody<T>(req: IncomingMessage, shape: Shape<T>, options: { readonly contentType?: boolean; readonly empty?: string } = {}): Promise<T | undefined> {
  if (options.contentType) checkJsonContentType(req);
  return jsonBody(req, await readBody(req), shape, { ...options, contentType: false });
}

/**
 * A boolean query parameter by dockerd's rule (httputils.BoolValue): empty, `0`, `no`, `false` and
 * `none`, in any case, are false; any other value is true; an absent one is `absent`.
 */
export function flag(query: URLSearchParams, key: string, absent = false): boolean {
  const value = query.get(key);
  if (value === null) return absent;
  return !['', '0', 'no', 'false', 'none'].includes(value.trim().toLowerCase());
}

/** An integer query parameter, as dockerd reads it (strconv.Atoi); an empty one is absent unless `required`. */
export function integer(query: URLSearchParams, key: string, options: { readonly required?: boolean } = {}): number | undefined {
  const value = query.get(key) ?? '';
  if (value === '' && !options.required) return undefined;
  if (!/^[+-]?\d+$/.test(value)) throw new KilnError('INVALID_ARGUMENT', `strconv.Atoi: parsing ${JSON.stringify(value)}: invalid syntax`);
  const number = BigInt(value);
  if (number > 2n ** 63n - 1n || number < -(2n ** 63n)) throw new KilnError('INVALID_ARGUMENT', `strconv.Atoi: parsing ${JSON.stringify(value)}: value out of range`);
  return Number(number);
}

/** A query parameter that holds JSON (build's `buildargs`); `what` prefixes its errors as dockerd does. */
export function jsonParameter<T>(query: URLSearchParams, key: string, shape: Shape<T>, what?: string): T | undefined {
  const text = query.get(key);
  if (!text) return undefined;
  try {
    return decodeJson(text, shape, 'whole');
  } catch (err) {
    if (what === undefined || !(err instanceof KilnError)) throw err;
    throw new KilnError(err.code, `error reading ${what}: ${err.message}`);
  }
}

/** A header that holds base64url JSON (X-Registry-Auth, X-Registry-Config) as `shape`. */
export function headerJson<T>(req: IncomingMessage, name: string, shape: Shape<T>): T | undefined {
  const header = req.headers[name.toLowerCase()];
  if (typeof header !== 'string' || header === '') return undefined;
  try {
    return decodeJson(Buffer.from(header, 'base64url').toString('utf8'), shape, 'stream');
  } catch (err) {
    throw new KilnError('INVALID_ARGUMENT', `invalid ${name} header: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const filterSets = map(map(bool));
const filterLists = map(array(string()));

/**
 * Docker's `filters` parameter: `{"key":{"value":true}}`, or the older `{"key":["value"]}`; keys the
 * route does not know are refused. Like dockerd, a value neither form reads fails with the first form's error.
 */
export function filtersParameter(query: URLSearchParams, accepted: readonly string[]): Filters {
  const text = query.get('filters') ?? '';
  let filters: Filters;
  try {
    filters = new Map(Object.entries(decodeJson(text || 'null', filterSets, 'whole') ?? {}).map(([key, values]) => [key, Object.keys(values)]));
  } catch (err) {
    let lists: Readonly<Record<string, string[]>> | undefined;
    try {
      lists = decodeJson(text, filterLists, 'whole');
    } catch {
      throw err;
    }
    filters = new Map(Object.entries(lists ?? {}));
  }
  checkFilterKeys(filters, accepted);
  return filters;
}

/** []string and map[string]string, as many fields and parameters are. */
export const stringList = array(string());
export const stringMap = map(string());

const emptyStruct = struct('struct {}', {});
/** []*units.Ulimit: HostConfig.Ulimits, and build's `ulimits` parameter. */
export const ulimitList = array(struct('units.Ulimit', { Name: string(), Hard: goInteger('int64'), Soft: goInteger('int64') }));
/** Ulimits of a request as the engine takes them. */
export function ulimitsOf(list: readonly { Name?: string; Hard?: number; Soft?: number }[] | undefined): Ulimit[] {
  return (list ?? []).map((u) => ({ name: u.Name ?? '', soft: u.Soft ?? 0, hard: u.Hard ?? 0 }));
}
const portBindings = map(array(struct('nat.PortBinding', { HostIp: string(), HostPort: string() })), 'nat.PortMap');

/** container.HostConfig: the settings kiln applies, and those it names in create's warnings. */
const hostConfig = struct('container.HostConfig', {
  AutoRemove: bool,
  Binds: stringList,
  NetworkMode: string('container.NetworkMode'),
  ConsoleSize: array(goInteger('uint'), { length: 2 }),
  ReadonlyRootfs: bool,
  CapAdd: strSlice,
  CapDrop: strSlice,
  Privileged: bool,
  ExtraHosts: stringList,
  Tmpfs: stringMap,
  RestartPolicy: struct('container.RestartPolicy', { Name: string(), MaximumRetryCount: goInteger('int') }),
  PortBindings: portBindings,
  PublishAllPorts: bool,
  Memory: goInteger('int64'),
  ShmSize: goInteger('int64'),
  MemorySwap: goInteger('int64'),
  MemoryReservation: goInteger('int64'),
  NanoCpus: goInteger('int64'),
  CpuShares: goInteger('int64'),
  CpuPeriod: goInteger('int64'),
  CpuQuota: goInteger('int64'),
  CpusetCpus: string(),
  CpusetMems: string(),
  PidsLimit: pointer(goInteger('int64')),
  Ulimits: ulimitList,
  Init: pointer(bool),
  GroupAdd: stringList,
  PidMode: string('container.PidMode'),
  IpcMode: string('container.IpcMode'),
  UTSMode: string('container.UTSMode'),
  Sysctls: stringMap,
  Devices: array(struct('container.DeviceMapping', { PathOnHost: string(), PathInContainer: string(), CgroupPermissions: string() })),
  Dns: stringList,
  DnsSearch: stringList,
  DnsOptions: stringList,
  Mounts: array(
    struct('mount.Mount', {
      Type: string('mount.Type'),
      Source: string(),
      Target: string(),
      ReadOnly: bool,
      BindOptions: struct('mount.BindOptions', { Propagation: string('mount.Propagation') }),
      VolumeOptions: struct('mount.VolumeOptions', { NoCopy: bool }),
      TmpfsOptions: struct('mount.TmpfsOptions', { SizeBytes: goInteger('int64'), Mode: goInteger('uint') }),
    }),
  ),
  VolumesFrom: stringList,
  SecurityOpt: stringList,
});

/** network.EndpointSettings: the parts of a container's place on a network kiln applies. */
export const endpointSettings = struct('network.EndpointSettings', {
  Aliases: stringList,
  IPAMConfig: struct('network.EndpointIPAMConfig', { IPv4Address: string(), IPv6Address: string() }),
});

/** `POST /containers/create`: container.Config with HostConfig and NetworkingConfig beside it (runconfig's ContainerConfigWrapper). */
export const containerConfig = struct('runconfig.ContainerConfigWrapper', {
  Image: string(),
  Cmd: strSlice,
  Entrypoint: strSlice,
  Env: stringList,
  WorkingDir: string(),
  User: string(),
  Hostname: string(),
  Domainname: string(),
  Labels: stringMap,
  ExposedPorts: map(emptyStruct, 'nat.PortSet'),
  Volumes: map(emptyStruct),
  StopSignal: string(),
  StopTimeout: pointer(goInteger('int')),
  Healthcheck: struct('container.HealthConfig', { Test: stringList, Interval: goInteger('int64'), Timeout: goInteger('int64'), StartPeriod: goInteger('int64'), StartInterval: goInteger('int64'), Retries: goInteger('int') }),
  Tty: bool,
  OpenStdin: bool,
  StdinOnce: bool,
  HostConfig: hostConfig,
  NetworkingConfig: struct('network.NetworkingConfig', { EndpointsConfig: map(endpointSettings) }),
});

/** `POST /containers/{id}/exec`. */
export const execConfig = struct('types.ExecConfig', {
  User: string(),
  Privileged: bool,
  Tty: bool,
  AttachStdin: bool,
  AttachStderr: bool,
  AttachStdout: bool,
  Detach: bool,
  DetachKeys: string(),
  Env: stringList,
  WorkingDir: string(),
  Cmd: stringList,
});

/** `POST /exec/{id}/start`. */
export const execStartCheck = struct('types.ExecStartCheck', { Detach: bool, Tty: bool });

/** `POST /auth`. */
export const authConfig = struct('types.AuthConfig', { username: string(), password: string(), auth: string(), email: string(), serveraddress: string(), identitytoken: string(), registrytoken: string() });

/** `POST /build`'s `buildargs`: an argument may be null (declared, without a value). */
export const buildArgs = map(pointer(string()));
