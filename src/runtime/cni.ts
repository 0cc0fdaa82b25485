/**
 * CNI, as containerd, nerdctl and Podman use it: kiln runs the standard plugins (Debian's
 * containernetworking-plugins: bridge, host-local, portmap, loopback, firewall) itself, as the CNI spec
 * says a runtime does: CNI_COMMAND and the rest in the environment, a plugin's configuration on stdin,
 * its result (or error) as JSON on stdout. A network is a list of plugins run in order on ADD (each
 * given the previous one's result) and in reverse on DEL (each given ADD's final result).
 *
 * A container's network namespace is a file bind-mounted by `unshare --net=FILE`: it outlives no
 * process but the mount, so kiln removes it (after DEL) when the container stops.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KilnError } from '../errors.js';
import { execFileAsync } from '../exec-file.js';

/** Where Debian (and most distributions, then the upstream tarball) put the plugins. */
const PLUGIN_DIRS = ['/usr/lib/cni', '/usr/libexec/cni', '/opt/cni/bin'];

export const CNI_VERSION = '1.0.0';

/** A network's plugin list, as a `.conflist` holds it. */
export interface NetworkConfigList {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: readonly Readonly<Record<string, unknown>>[];
}

/** A plugin's result (the parts kiln reads). */
export interface CniResult {
  readonly interfaces?: readonly { readonly name: string; readonly mac?: string; readonly sandbox?: string }[];
  readonly ips?: readonly { readonly address: string; readonly gateway?: string; readonly interface?: number }[];
  readonly [key: string]: unknown;
}

/** A port published through the portmap plugin (its `portMappings` capability). */
export interface PortMapping {
  readonly hostPort: number;
  readonly containerPort: number;
  readonly protocol: string;
  readonly hostIP?: string;
}

/** The directory holding the plugins, or an error naming the package to install. */
export function pluginDir(): string {
  const found = PLUGIN_DIRS.find((dir) => existsSync(join(dir, 'bridge')));
  if (!found) throw new KilnError('UNSUPPORTED', `the CNI plugins are not installed (looked in ${PLUGIN_DIRS.join(', ')}): install Debian's containernetworking-plugins to run containers on bridge networks`);
  return found;
}

/** Whether iptables can be run: published ports and NAT to the outside need it. */
export function iptablesAvailable(): boolean {
  return ['/usr/sbin/iptables', '/sbin/iptables', '/usr/bin/iptables'].some((path) => existsSync(path));
}

/** Runs one plugin; its result, or a KilnError with the plugin's own message. */
function execPlugin(dir: string, command: 'ADD' | 'DEL', config: object, env: { containerId: string; netns: string; ifname: string }): Promise<CniResult> {
  const type = String((config as { type?: unknown }).type);
  return new Promise((resolve, reject) => {
    const child = spawn(join(dir, type), [], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: env.containerId, CNI_NETNS: env.netns, CNI_IFNAME: env.ifname, CNI_PATH: dir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (err) => reject(new KilnError('FAILED', `CNI plugin ${type}: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) {
        resolve(stdout.trim() === '' ? {} : (JSON.parse(stdout) as CniResult));
        return;
      }
      let message = stderr.trim() || `exited ${code}`;
      try {
        const error = JSON.parse(stdout) as { msg?: string; details?: string };
        message = [error.msg, error.details].filter(Boolean).join(': ') || message;
      } catch {
        // not JSON: stderr says what happened
      }
      reject(new KilnError('FAILED', `CNI plugin ${type} (${command}): ${message}`));
    });
    child.stdin.end(JSON.stringify(config));
  });
}

/** A plugin's stdin: its configuration with the list's name and version, the previous result, and the runtime's capability arguments. */
function pluginInput(list: NetworkConfigList, plugin: Readonly<Record<string, unknown>>, prevResult: CniResult | undefined, portMappings: readonly PortMapping[]): object {
  const capabilities = (plugin.capabilities ?? {}) as Record<string, boolean>;
  return { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prevResult ? { prevResult } : {}), ...(capabilities.portMappings ? { runtimeConfig: { portMappings } } : {}) };
}

/**
 * CNI ADD of a network's plugins for a container's interface. On failure the plugins that ran are
 * deleted again. Returns the final result (DEL needs it).
 */
export async function addNetwork(list: NetworkConfigList, containerId: string, netns: string, ifname: string, portMappings: readonly PortMapping[]): Promise<CniResult> {
  const dir = pluginDir();
  let result: CniResult | undefined;
  for (const plugin of list.plugins) {
    try {
      result = await execPlugin(dir, 'ADD', pluginInput(list, plugin, result, portMappings), { containerId, netns, ifname });
    } catch (err) {
      await deleteNetwork(list, containerId, netns, ifname, portMappings, result).catch(() => undefined);
      throw err;
    }
  }
  return result ?? {};
}

/**
 * CNI DEL of a network's plugins, in reverse: every plugin is asked even when one fails (so that none
 * leaves its rules behind); the first failure is thrown afterwards.
 */
export async function deleteNetwork(list: NetworkConfigList, containerId: string, netns: string, ifname: string, portMappings: readonly PortMapping[], prevResult: CniResult | undefined): Promise<void> {
  const dir = pluginDir();
  let failure: Error | undefined;
  for (const plugin of [...list.plugins].reverse()) {
    await execPlugin(dir, 'DEL', pluginInput(list, plugin, prevResult, portMappings), { containerId, netns: existsSync(netns) ? netns : '', ifname }).catch((err: Error) => (failure ??= err));
  }
  if (failure) throw failure;
}

/** Makes a network namespace kept at `path` (its loopback up), for a container's process to join. */
export async function createNamespace(path: string, containerId: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await removeNamespace(path);
  await writeFile(path, '');
  try {
    await execFileAsync('unshare', [`--net=${path}`, 'true']);
  } catch (err) {
    await rm(path, { force: true });
    throw new KilnError('FAILED', `cannot make a network namespace at ${path}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  await execPlugin(pluginDir(), 'ADD', { cniVersion: CNI_VERSION, name: 'loopback', type: 'loopback' }, { containerId, netns: path, ifname: 'lo' });
}

/** Removes a namespace createNamespace made (its interfaces go with it); nothing when there is none. */
export async function removeNamespace(path: string): Promise<void> {
  if (!existsSync(path)) return;
  await execFileAsync('umount', [path]).catch(() => execFileAsync('umount', ['-l', path]).catch(() => undefined));
  await rm(path, { force: true });
}

/** Deletes a bridge a network's plugin made on the host (the bridge plugin leaves it at DEL); nothing when there is none. */
export async function removeLink(name: string): Promise<void> {
  if (!existsSync(join('/sys/class/net', name))) return;
  await execFileAsync('ip', ['link', 'del', name]).catch((err: { stderr?: string }) => {
    throw new KilnError('FAILED', `cannot remove the bridge ${name}: ${err.stderr?.trim() ?? ''}`);
  });
}

/** The IPv4 routes of the host's main table but the default one, as CIDRs: a new network's subnet must not overlap them. */
export async function hostRoutes(): Promise<string[]> {
  const { stdout } = await execFileAsync('ip', ['-4', '-j', 'route', 'show']).catch(() => ({ stdout: '[]' }));
  return (JSON.parse(stdout || '[]') as { dst: string }[]).filter((route) => route.dst !== 'default').map((route) => (route.dst.includes('/') ? route.dst : `${route.dst}/32`));
}
