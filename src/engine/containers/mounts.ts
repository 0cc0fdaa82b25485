/**
 * A container's mounts, by Docker's rules: `-v` specs and `--mount` requests checked and resolved when it
 * is created (into MountSettings, kept in its record), then turned into the runtime's mounts at each
 * start (bind sources that `-v` names made if missing; volumes through engine/volumes).
 */
import { mkdir, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../../errors.js';
import type { OciMount } from '../../runtime/spec.js';
import type { Engine } from '../engine.js';
import { type VolumeUse, checkVolumeName, volumeMount } from '../volumes.js';
import type { MountSetting } from './records.js';

/** A mount as a request asks for it (HostConfig.Mounts, `--mount`). */
export interface MountRequest {
  readonly type: string;
  readonly source?: string;
  readonly target: string;
  readonly readOnly?: boolean;
  readonly noCopy?: boolean;
  readonly propagation?: string;
  readonly tmpfsSize?: number;
  readonly tmpfsMode?: number;
}

const PROPAGATIONS = ['shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate'];

function invalidSpec(spec: string, why?: string): KilnError {
  return new KilnError('INVALID_ARGUMENT', `invalid volume specification: '${spec}'${why ? `: ${why}` : ''}`);
}

/**
 * A `-v` spec (HostConfig.Binds) by Docker's Linux rules: `/DST` is an anonymous volume, `SRC:DST[:MODE]`
 * a bind when SRC is an absolute path and a named volume otherwise; MODE is a comma list of rw, ro, z,
 * Z, nocopy (volumes) and a propagation (binds).
 */
export function parseBind(spec: string): MountSetting {
  const parts = spec.split(':');
  if (parts.length > 3 || parts.some((part) => part === '')) throw invalidSpec(spec);
  const [first = '', second, third] = parts;
  if (parts.length === 2 && validMode(second ?? '')) throw invalidSpec(spec);
  const source = parts.length === 1 ? '' : first;
  const target = parts.length === 1 ? first : (second ?? '');
  const modes = (third ?? '').split(',').filter(Boolean);
  if (!modes.every(validMode) || modes.filter((m) => m === 'ro' || m === 'rw').length > 1) throw new KilnError('INVALID_ARGUMENT', `invalid mode: ${third ?? ''}`);
  const type = source.startsWith('/') ? 'bind' : 'volume';
  const propagation = modes.find((m) => PROPAGATIONS.includes(m));
  if (type === 'volume' && propagation) throw invalidSpec(spec, `propagation mode ${propagation} is for binds, not volumes`);
  if (type === 'bind' && modes.includes('nocopy')) throw invalidSpec(spec, 'nocopy is for volumes, not binds');
  checkTarget(spec, type, target);
  if (type === 'volume' && source !== '') checkVolumeName(source);
  return {
    type,
    source: type === 'bind' ? posix.normalize(source) : source,
    target: posix.normalize(target),
    readOnly: modes.includes('ro'),
    ...(modes.includes('nocopy') ? { noCopy: true } : {}),
    ...(propagation ? { propagation } : {}),
    origin: 'binds',
  };
}

function validMode(mode: string): boolean {
  return ['rw', 'ro', 'z', 'Z', 'nocopy', ...PROPAGATIONS].includes(mode);
}

function checkTarget(spec: string, type: string, target: string): void {
  if (!target.startsWith('/')) throw invalidSpec(spec, `invalid mount config for type "${type}": invalid mount path: '${target}' mount path must be absolute`);
  if (posix.normalize(target) === '/') throw invalidSpec(spec, `invalid mount config for type "${type}": invalid specification: destination can't be '/'`);
}

/** A `--mount` request (HostConfig.Mounts) checked as dockerd checks it. */
export async function checkMountRequest(request: MountRequest): Promise<MountSetting> {
  const { type, target } = request;
  const where = `invalid mount config for type "${type}"`;
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') throw new KilnError('INVALID_ARGUMENT', `mount type unknown: ${JSON.stringify(type)}: use bind, volume or tmpfs`);
  if (!target) throw new KilnError('INVALID_ARGUMENT', `${where}: field Target must not be empty`);
  if (!target.startsWith('/')) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid mount path: '${target}' mount path must be absolute`);
  const source = request.source ?? '';
  if (type === 'bind') {
    if (!source) throw new KilnError('INVALID_ARGUMENT', `${where}: field Source must not be empty`);
    if (!source.startsWith('/')) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid mount path: '${source}' mount path must be absolute`);
    if (!(await stat(source).catch(() => undefined))) throw new KilnError('INVALID_ARGUMENT', `${where}: bind source path does not exist: ${source}`);
    if (request.propagation && !PROPAGATIONS.includes(request.propagation)) throw new KilnError('INVALID_ARGUMENT', `${where}: invalid propagation mode: ${request.propagation}`);
  }
  if (type === 'volume' && source) checkVolumeName(source);
  if (type === 'tmpfs' && source) throw new KilnError('INVALID_ARGUMENT', `${where}: field Source must not be specified`);
  if (type !== 'bind' && request.propagation) throw new KilnError('INVALID_ARGUMENT', `${where}: field BindOptions must not be specified`);
  if (type !== 'volume' && request.noCopy) throw new KilnError('INVALID_ARGUMENT', `${where}: field VolumeOptions must not be specified`);
  if (type !== 'tmpfs' && (request.tmpfsSize !== undefined || request.tmpfsMode !== undefined)) throw new KilnError('INVALID_ARGUMENT', `${where}: field TmpfsOptions must not be specified`);
  return {
    type,
    source: type === 'bind' ? posix.normalize(source) : source,
    target: posix.normalize(target),
    readOnly: request.readOnly ?? false,
    ...(request.noCopy ? { noCopy: true } : {}),
    ...(request.propagation ? { propagation: request.propagation } : {}),
    ...(request.tmpfsSize ? { tmpfsSize: request.tmpfsSize } : {}),
    ...(request.tmpfsMode ? { tmpfsMode: request.tmpfsMode } : {}),
    origin: 'mounts',
  };
}

/**
 * The mounts a new container gets: `-v`, then `--mount`, then an anonymous volume for each path the
 * image (VOLUME) or the request (Config.Volumes) names that neither covers. Two at one path are refused.
 */
export function containerMounts(binds: readonly MountSetting[], mounts: readonly MountSetting[], volumePaths: readonly string[]): MountSetting[] {
  const all = [...binds, ...mounts];
  const seen = new Set<string>();
  for (const mount of all) {
    if (seen.has(mount.target)) throw new KilnError('INVALID_ARGUMENT', `Duplicate mount point: ${mount.target}`);
    seen.add(mount.target);
  }
  for (const path of volumePaths.map((p) => posix.normalize(p))) {
    if (seen.has(path)) continue;
    seen.add(path);
    all.push({ type: 'volume', source: '', target: path, readOnly: false, origin: 'volumes' });
  }
  return all;
}

/**
 * The runtime's mounts for a container's settings, parents first (a mount inside another goes after it).
 * A `-v` bind source that is missing is made, as dockerd makes it; a volume is filled from the image's
 * files at its path when it is empty (see volumeMount). `uses` collects what was mounted.
 */
export async function runtimeMounts(engine: Engine, mounts: readonly MountSetting[], rootfs: string, uses: VolumeUse[]): Promise<OciMount[]> {
  const sorted = [...mounts].sort((a, b) => a.target.split('/').length - b.target.split('/').length);
  const result: OciMount[] = [];
  for (const mount of sorted) {
    const access = mount.readOnly ? 'ro' : 'rw';
    if (mount.type === 'tmpfs') {
      const options = ['nosuid', 'nodev', 'noexec', ...(mount.tmpfsSize ? [`size=${mount.tmpfsSize}`] : []), ...(mount.tmpfsMode ? [`mode=${mount.tmpfsMode.toString(8)}`] : []), access];
      result.push({ destination: mount.target, type: 'tmpfs', source: 'tmpfs', options });
    } else if (mount.type === 'bind') {
      if (mount.origin === 'binds') await mkdir(mount.source, { recursive: true });
      result.push({ destination: mount.target, type: 'bind', source: mount.source, options: ['rbind', mount.propagation ?? 'rprivate', access] });
    } else {
      const use = await volumeMount(engine, mount, rootfs);
      uses.push(use);
      result.push({ destination: mount.target, type: 'bind', source: use.path, options: ['rbind', 'rprivate', access] });
    }
  }
  return result;
}
