/**
 * The docker CLI's container flags that carry a little syntax of their own (`-p`, `--mount`, `-l`),
 * parsed as the docker CLI parses them before it sends the request the Engine API gets.
 */
import { KilnError } from '../errors.js';
import { checkUlimits } from '../engine/build-inputs.js';
import type { MountRequest, PortBinding } from '../engine/containers.js';
import type { Ulimit } from '../runtime/resources.js';
import type { DeviceMapping } from '../runtime/spec.js';

/** A `[A-]B` port range as a list of ports. */
function portRange(text: string, flag: string): number[] {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text);
  const low = Number(match?.[1]);
  const high = Number(match?.[2] ?? match?.[1]);
  if (!match || low < 1 || high > 65535 || high < low) throw new KilnError('INVALID_ARGUMENT', `invalid ${flag} ${JSON.stringify(text)}: a port is a number from 1 to 65535, a range is LOW-HIGH`);
  return Array.from({ length: high - low + 1 }, (_, i) => low + i);
}

/**
 * `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]` (ranges as `8000-8001:80-81`): the container ports it
 * publishes, each with its binding (an empty host port is one the kernel picks).
 */
export function parsePublish(spec: string): { port: string; binding: PortBinding }[] {
  const slash = spec.lastIndexOf('/');
  const protocol = slash > spec.lastIndexOf(']') && slash >= 0 ? spec.slice(slash + 1) : 'tcp';
  const rest = slash > spec.lastIndexOf(']') && slash >= 0 ? spec.slice(0, slash) : spec;
  if (!['tcp', 'udp', 'sctp'].includes(protocol)) throw new KilnError('INVALID_ARGUMENT', `invalid -p ${JSON.stringify(spec)}: unknown protocol ${protocol}`);
  const ipv6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  const parts = ipv6 ? [ipv6[1] ?? '', ...(ipv6[2] ?? '').split(':')] : rest.split(':');
  if (parts.length > 3) throw new KilnError('INVALID_ARGUMENT', `invalid -p ${JSON.stringify(spec)}: use [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`);
  const [hostIp, hostPorts, containerPorts] = parts.length === 3 ? parts : parts.length === 2 ? ['', parts[0], parts[1]] : ['', '', parts[0]];
  const inside = portRange(containerPorts ?? '', '-p');
  const outside = hostPorts ? portRange(hostPorts, '-p') : [];
  if (outside.length > 0 && outside.length !== inside.length && outside.length !== 1) throw new KilnError('INVALID_ARGUMENT', `invalid -p ${JSON.stringify(spec)}: the host and container port ranges differ in size`);
  return inside.map((port, i) => ({ port: `${port}/${protocol}`, binding: { hostIp: hostIp ?? '', hostPort: outside.length === 0 ? '' : String(outside.length === 1 && inside.length > 1 ? outside[0] : outside[i]) } }));
}

/** `-p` flags as HostConfig.PortBindings. */
export function portBindings(specs: readonly string[]): Record<string, PortBinding[]> {
  const bindings: Record<string, PortBinding[]> = {};
  for (const { port, binding } of specs.flatMap(parsePublish)) bindings[port] = [...(bindings[port] ?? []), binding];
  return bindings;
}

/** A size as the docker CLI takes it for tmpfs-size: bytes, or with k, m, g (powers of 1024). */
function parseBytes(text: string): number {
  const match = /^(\d+)([kmg]?)b?$/i.exec(text);
  if (!match) throw new KilnError('INVALID_ARGUMENT', `invalid size ${JSON.stringify(text)}: use bytes, or a number with k, m or g`);
  return Number(match[1]) * 1024 ** ['', 'k', 'm', 'g'].indexOf((match[2] ?? '').toLowerCase());
}

/**
 * `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…][,volume-nocopy]
 * [,tmpfs-size=…][,tmpfs-mode=…]`, as the docker CLI reads it (src, dst and destination too).
 */
export function parseMount(spec: string): MountRequest {
  let type = 'volume';
  let source: string | undefined;
  let target = '';
  let readOnly = false;
  let noCopy = false;
  let propagation: string | undefined;
  let tmpfsSize: number | undefined;
  let tmpfsMode: number | undefined;
  const truth = (key: string, value: string | undefined): boolean => {
    if (value === undefined || ['true', '1'].includes(value.toLowerCase())) return true;
    if (['false', '0'].includes(value.toLowerCase())) return false;
    throw new KilnError('INVALID_ARGUMENT', `invalid --mount ${JSON.stringify(spec)}: invalid value for ${key}: ${value}`);
  };
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    const needed = (): string => {
      if (value === undefined) throw new KilnError('INVALID_ARGUMENT', `invalid --mount ${JSON.stringify(spec)}: invalid field '${field}' must be a key=value pair`);
      return value;
    };
    if (key === 'type') type = needed();
    else if (key === 'source' || key === 'src') source = needed();
    else if (key === 'target' || key === 'dst' || key === 'destination') target = needed();
    else if (key === 'readonly' || key === 'ro') readOnly = truth(key, value);
    else if (key === 'volume-nocopy') noCopy = truth(key, value);
    else if (key === 'bind-propagation') propagation = needed();
    else if (key === 'tmpfs-size') tmpfsSize = parseBytes(needed());
    else if (key === 'tmpfs-mode') tmpfsMode = Number.parseInt(needed(), 8);
    else if (key !== 'consistency') throw new KilnError('INVALID_ARGUMENT', `invalid --mount ${JSON.stringify(spec)}: unexpected key '${key}'`);
  }
  return { type, ...(source !== undefined ? { source } : {}), target, readOnly, ...(noCopy ? { noCopy } : {}), ...(propagation ? { propagation } : {}), ...(tmpfsSize !== undefined ? { tmpfsSize } : {}), ...(tmpfsMode !== undefined ? { tmpfsMode } : {}) };
}

/** `-l KEY=VALUE` (a bare KEY is an empty value), as Config.Labels. */
export function parseLabels(specs: readonly string[]): Record<string, string> {
  return Object.fromEntries(specs.map((spec) => (spec.includes('=') ? [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)] : [spec, ''])));
}

/** Binary multiples of the units Docker's sizes take (`512m`, `1g`, `64MiB`). */
const BINARY_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** A size in bytes as the docker CLI reads `--memory` (go-units' RAMInBytes: 1k is 1024). */
export function parseMemoryBytes(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text);
  if (!match) throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(text)} for "${flag}" flag: invalid size: '${text}'`);
  return Math.floor(Number.parseFloat(match[1] ?? '0') * (BINARY_UNITS[(match[2] ?? '').toLowerCase()] ?? 1));
}

/** `--cpus 1.5` as billionths of a CPU (Docker's NanoCpus), refused when finer than that. */
export function parseCpus(text: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text)) throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(text)} for "--cpus" flag: failed to parse ${text} as a rational number`);
  const [whole = '0', fraction = ''] = text.split('.');
  if (fraction.replace(/0+$/, '').length > 9) throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(text)} for "--cpus" flag: value is too precise`);
  return Number(whole) * 1e9 + Number(fraction.padEnd(9, '0').slice(0, 9));
}

/**
 * `--ulimit NAME=SOFT[:HARD]` flags (run, create, build), as the docker CLI reads them and in its words:
 * a lone value is both limits, -1 is unlimited, the last of a name counts.
 */
export function parseUlimits(specs: readonly string[]): Ulimit[] {
  return checkUlimits(
    specs.map((spec) => {
      const refuse = (why: string): never => {
        throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(spec)} for "--ulimit" flag: ${why}`);
      };
      const eq = spec.indexOf('=');
      if (eq < 0) refuse(`invalid ulimit argument: ${spec}`);
      const values = spec.slice(eq + 1).split(':');
      if (values.length > 2) refuse(`too many limit value arguments - ${spec.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
      const [soft, hard = soft] = values.map((value) => (/^[-+]?\d+$/.test(value) ? Number(value) : refuse(`strconv.ParseInt: parsing ${JSON.stringify(value)}: invalid syntax`)));
      const ulimit = { name: spec.slice(0, eq), soft: soft ?? 0, hard: hard ?? 0 };
      try {
        checkUlimits([ulimit]);
      } catch (err) {
        refuse((err as Error).message);
      }
      return ulimit;
    }),
  );
}

/**
 * `--device HOST[:CONTAINER][:PERMISSIONS]` as the docker CLI reads it, in its words: the container
 * path defaults to the host's, the permissions (of r, w, m) to rwm.
 */
export function parseDevice(spec: string): DeviceMapping {
  const parts = spec.split(':');
  const mode = (text: string | undefined): boolean => text !== undefined && text !== '' && /^[rwm]+$/.test(text) && new Set(text).size === text.length;
  const pathOnHost = parts[0] ?? '';
  // HOST:MODE names no container path: a second part that is a mode is the mode.
  const [pathInContainer, cgroupPermissions = 'rwm'] = parts.length === 2 && mode(parts[1]) ? [pathOnHost, parts[1]] : [parts[1], parts[2]];
  if (parts.length > 3 || pathOnHost === '') throw new KilnError('INVALID_ARGUMENT', `bad format for path: ${spec}`);
  if (parts.length === 3 && !mode(cgroupPermissions)) throw new KilnError('INVALID_ARGUMENT', `bad mode specified: ${cgroupPermissions}`);
  const inside = pathInContainer || pathOnHost;
  if (!inside.startsWith('/')) throw new KilnError('INVALID_ARGUMENT', `${inside} is not an absolute path`);
  return { pathOnHost, pathInContainer: inside, cgroupPermissions };
}
