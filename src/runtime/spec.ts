import { type Stats, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { KilnError } from '../errors.js';
import type { ContainerConfig } from '../oci/types.js';
import { RLIM_INFINITY, type ResourceLimits, type Ulimit, linuxResources, ociRlimits } from './resources.js';
import { type DockerSeccompProfile, customSeccomp, defaultSeccomp, seccompProfile } from './seccomp.js';

/** Docker's default capability set. */
const DEFAULT_CAPABILITIES = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];
/** Every capability of Linux 5.9 and later, by number (0 to 40). */
const ALL_CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE',
  'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN',
  'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE',
  'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((name) => `CAP_${name}`);

let grantable: string[] | undefined;

/**
 * What `--privileged` and `--cap-add ALL` give: every capability kiln itself may pass on (its bounding
 * set; a sandbox may lack some), as Docker grants them.
 */
function allCapabilities(): string[] {
  if (!grantable) {
    const bounding = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const bits = bounding === undefined ? -1n : BigInt(`0x${bounding}`);
    grantable = ALL_CAPABILITIES.filter((_cap, bit) => ((bits >> BigInt(bit)) & 1n) === 1n);
  }
  return grantable;
}
const MASKED_PATHS = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ProcessOptions {
  /** `--entrypoint`: replaces the image's entrypoint ('' clears it) and drops the image's Cmd. */
  readonly entrypoint?: string;
  readonly cmd: readonly string[];
  readonly env: readonly string[];
  readonly user?: string;
  readonly workdir?: string;
  readonly hostname: string;
  /** The host's network, a new one of its own (loopback only), or the network namespace at `path` (a container's on a network). */
  readonly network: 'none' | 'host' | { readonly path: string };
  /** Binds, volumes and tmpfs mounts, resolved by the caller (see engine/containers/mounts.ts). */
  readonly mounts?: readonly OciMount[];
  /** `-t`: the process gets a pseudo-terminal (runc relays it to kiln's own terminal). */
  readonly tty?: boolean;
  /** The terminal's first size (`-t`), until a resize. */
  readonly consoleSize?: ConsoleSize;
  /** `--read-only`: the root filesystem is mounted read-only. */
  readonly readOnly?: boolean;
  /** `--cap-add`, `--cap-drop`: capability names, with or without CAP_, in any case, or ALL. */
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  /** `--privileged`: every capability, no masked or read-only paths, /sys writable (host devices stay out). */
  readonly privileged?: boolean;
  /** `--tmpfs PATH[:OPTIONS]`: a tmpfs there (Docker's options rw,noexec,nosuid,nodev unless given). */
  readonly tmpfs?: readonly string[];
  /** `--security-opt`, read by securityOptions: Docker's seccomp filter unless turned off, and no-new-privileges. */
  readonly security?: SecurityOptions;
  /** `--memory`, `--cpus`, `--pids-limit`…: the container's cgroup limits. */
  readonly resources?: ResourceLimits;
  /** `--ulimit`: the process's rlimits (the others are the runtime's own, as in Docker). */
  readonly ulimits?: readonly Ulimit[];
  /** `--shm-size`: the size of /dev/shm in bytes (Docker's 64 MiB when absent or 0). */
  readonly shmSize?: number;
  /** `--init`: the host's init (docker-init), run as the first process with the command under it. */
  readonly init?: string;
  /** `--group-add`: more groups of the process, names (the image's /etc/group) or IDs. */
  readonly groupAdd?: readonly string[];
  /** `--pid`, `--ipc`, `--uts` host: namespaces shared with the host, not the container's own. */
  readonly hostNamespaces?: readonly ('pid' | 'ipc' | 'uts')[];
  /** `--ipc none`: a private IPC namespace without /dev/shm. */
  readonly noShm?: boolean;
  /** `--sysctl`: kernel parameters of the container's own namespaces. */
  readonly sysctls?: Readonly<Record<string, string>>;
  /** `--device`: host devices made in the container, and allowed by its device cgroup. */
  readonly devices?: readonly DeviceMapping[];
}

/** The size of a container's /dev/shm unless `--shm-size` says otherwise, as Docker's. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** What `--security-opt` asks for, of what kiln applies. */
export interface SecurityOptions {
  /** Docker's default profile (runtime/seccomp.ts), none (`seccomp=unconfined`; `--privileged` has none either), or a profile in Docker's format. */
  readonly seccomp: 'default' | 'unconfined' | DockerSeccompProfile;
  readonly noNewPrivileges: boolean;
}

/** Go's strconv.ParseBool, which Docker reads no-new-privileges' value with. */
const GO_BOOLEANS: Readonly<Record<string, boolean>> = { 1: true, t: true, T: true, true: true, TRUE: true, True: true, 0: false, f: false, F: false, false: false, FALSE: false, False: false };

/**
 * `--security-opt` values as Docker reads them (KEY=VALUE, or the older KEY:VALUE): `seccomp=unconfined`,
 * `seccomp=builtin` (the default), `seccomp=JSON` (a profile in Docker's format, as the docker CLI sends a
 * file's: see the run command's `securityOptFiles`), `no-new-privileges[=BOOL]`, and `apparmor=unconfined`
 * and `label=disable`, which ask for what holds anyway (kiln applies no AppArmor profile and no SELinux
 * label). Anything else is refused, naming it.
 */
export function securityOptions(values: readonly string[]): SecurityOptions {
  let seccomp: SecurityOptions['seccomp'] = 'default';
  let noNewPrivileges = false;
  for (const value of values) {
    const separator = value.includes('=') ? '=' : ':';
    const at = value.indexOf(separator);
    const key = at < 0 ? value : value.slice(0, at);
    const setting = at < 0 ? undefined : value.slice(at + 1);
    const refuse = (why: string): never => {
      // A profile the docker CLI read from a file comes as its whole JSON: the start names it.
      throw new KilnError('INVALID_ARGUMENT', `invalid --security-opt ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}: ${why}`);
    };
    if (key === 'no-new-privileges') {
      const parsed = setting === undefined ? true : GO_BOOLEANS[setting];
      noNewPrivileges = parsed ?? refuse('no-new-privileges takes true or false');
    } else if (key === 'seccomp') {
      if (setting === 'unconfined' || setting === 'builtin') seccomp = setting === 'builtin' ? 'default' : setting;
      else if (setting?.startsWith('{')) {
        try {
          seccomp = seccompProfile(setting);
        } catch (err) {
          refuse((err as Error).message);
        }
      } else refuse('give seccomp=unconfined, seccomp=builtin, or a profile in Docker\'s JSON format (kiln run and docker run read a FILE given there)');
    } else if (!((key === 'apparmor' && setting === 'unconfined') || (key === 'label' && setting === 'disable'))) {
      refuse(key === 'apparmor' || key === 'label' ? `kiln applies no ${key === 'apparmor' ? 'AppArmor profile' : 'SELinux label'}` : 'kiln knows seccomp=unconfined|builtin|PROFILE, no-new-privileges[=true|false], apparmor=unconfined and label=disable');
    }
  }
  return { seccomp, noNewPrivileges };
}

/**
 * The capabilities a container gets, by Docker's rules: its default set, with `add` (ALL: every one)
 * and without `drop` (ALL: all but those added). Unknown names are refused.
 */
export function capabilities(add: readonly string[] = [], drop: readonly string[] = []): string[] {
  const normal = (flag: string) => (name: string): string => {
    const upper = name.toUpperCase();
    const full = upper === 'ALL' || upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
    if (full !== 'ALL' && !ALL_CAPABILITIES.includes(full)) throw new KilnError('INVALID_ARGUMENT', `invalid ${flag}: unknown capability: ${JSON.stringify(full)}`);
    return full;
  };
  const added = add.map(normal('--cap-add'));
  const dropped = drop.map(normal('--cap-drop'));
  const base = added.includes('ALL') ? allCapabilities() : dropped.includes('ALL') ? [] : DEFAULT_CAPABILITIES;
  const kept = base.filter((cap) => !dropped.includes(cap));
  return [...kept, ...added.filter((cap) => cap !== 'ALL' && !kept.includes(cap))];
}

/** `--tmpfs PATH[:OPTIONS]` as a mount, with Docker's default options unless some are given. */
function tmpfsMount(spec: string): OciMount {
  const colon = spec.indexOf(':');
  const destination = colon < 0 ? spec : spec.slice(0, colon);
  if (!destination.startsWith('/')) throw new KilnError('INVALID_ARGUMENT', `invalid --tmpfs ${JSON.stringify(spec)}: use --tmpfs /path[:options], an absolute path`);
  const given = colon < 0 ? [] : spec.slice(colon + 1).split(',').filter(Boolean);
  return { destination, type: 'tmpfs', source: 'tmpfs', options: ['noexec', 'nosuid', 'nodev', ...given] };
}

/** Docker's rules for the command: entrypoint + cmd, with --entrypoint resetting the image's Cmd. */
export function commandLine(config: ContainerConfig, options: Pick<ProcessOptions, 'entrypoint' | 'cmd'>): string[] {
  const entrypoint = options.entrypoint !== undefined ? (options.entrypoint === '' ? [] : [options.entrypoint]) : [...(config.Entrypoint ?? [])];
  const cmd = options.cmd.length > 0 ? [...options.cmd] : options.entrypoint !== undefined ? [] : [...(config.Cmd ?? [])];
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new KilnError('INVALID_ARGUMENT', 'No command specified: the image has no Cmd or Entrypoint; give a command after the image name');
  return args;
}

/**
 * Reads /etc/passwd or /etc/group of the image, never through a symlink (it could point at the host).
 * Synchronously, as what reads them: a RUN step's container waits on it, and a readFile's four thread-pool
 * round trips (open, stat, read, close) cost more than reading a small file (up to ms each on a busy machine).
 */
function imageFile(rootfs: string, path: string): string[][] {
  const full = join(rootfs, path);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(full);
  } catch {
    return []; // none there
  }
  if (!st?.isFile()) return [];
  return readFileSync(full, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

/** The largest user or group ID: a uid_t is 32 bits, and (uid_t)-1 means "no change" to the kernel. */
const MAX_ID = 0xfffffffe;

/** A user or group name as a message shows it: as it is when plain and short, else quoted and cut. */
function quoted(name: string): string {
  return name.length <= 64 && /^[!-~]+$/.test(name) ? name : JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

/** A numeric ID given for a user or group, refused when no uid_t can hold it. */
function givenId(text: string, kind: 'user' | 'group'): number {
  const id = Number(text);
  if (id > MAX_ID) throw new KilnError('INVALID_ARGUMENT', `${kind} ID ${quoted(text)} is out of range: IDs go from 0 to ${MAX_ID}`);
  return id;
}

/** An ID field of the image's /etc/passwd or /etc/group, refused when it is not one. */
function fileId(text: string | undefined, file: string, name: string): number {
  if (text === undefined || !/^\d{1,10}$/.test(text) || Number(text) > MAX_ID) {
    throw new KilnError('INVALID_INPUT', `the image's ${file} gives ${quoted(name)} the ID ${quoted(text ?? '')}, which is not a number from 0 to ${MAX_ID}`);
  }
  return Number(text);
}

/** Resolves `name|uid[:group|gid]` through the image's passwd and group files, as Docker does. */
export function resolveUser(rootfs: string, user: string): { uid: number; gid: number; home: string; additionalGids: number[] } {
  const [userPart = '', groupPart] = user.split(':', 2);
  const passwd = imageFile(rootfs, 'etc/passwd');
  const groups = imageFile(rootfs, 'etc/group');
  let uid = 0;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (userPart !== '') {
    const entry = passwd.find((p) => p[0] === userPart) ?? (/^\d+$/.test(userPart) ? passwd.find((p) => p[2] === userPart) : undefined);
    if (entry) {
      name = entry[0] ?? '';
      uid = fileId(entry[2], '/etc/passwd', name);
      gid = fileId(entry[3], '/etc/passwd', name);
      home = entry[5] || '/';
    } else if (/^\d+$/.test(userPart)) {
      uid = givenId(userPart, 'user');
    } else {
      throw new KilnError('INVALID_ARGUMENT', `unable to find user ${quoted(userPart)}: no matching entries in the image's /etc/passwd`);
    }
  } else {
    home = passwd.find((p) => p[2] === '0')?.[5] ?? '/root';
  }
  if (groupPart !== undefined && groupPart !== '') {
    const entry = groups.find((g) => g[0] === groupPart) ?? (/^\d+$/.test(groupPart) ? groups.find((g) => g[2] === groupPart) : undefined);
    if (entry) gid = fileId(entry[2], '/etc/group', entry[0] ?? '');
    else if (/^\d+$/.test(groupPart)) gid = givenId(groupPart, 'group');
    else throw new KilnError('INVALID_ARGUMENT', `unable to find group ${quoted(groupPart)}: no matching entries in the image's /etc/group`);
  }
  // Docker lists the primary group among the supplementary ones too (`id` shows groups=GID(...)).
  const member = name === undefined ? [] : groups.filter((g) => (g[3] ?? '').split(',').includes(name));
  const additionalGids = [gid, ...member.map((g) => fileId(g[2], '/etc/group', g[0] ?? '')).filter((id) => id !== gid)];
  return { uid, gid, home, additionalGids };
}

/**
 * Docker's device cgroup before a container's own devices, as runc applies it: all denied; making any
 * node allowed; zero, null, urandom, random, full, tty, console, ptmx and the pseudo-terminals allowed;
 * fuse denied. Given whole: a runtime adds none of its defaults to a list given (crun), and given none
 * at all, some runtimes set no device rules (a RUN step could make a node of a host disk and read it).
 */
const DOCKER_DEVICE_RULES = [
  { allow: false, access: 'rwm' },
  ...[[1, 5], [1, 3], [1, 9], [1, 8], [1, 7], [5, 0], [5, 1], [5, 2]].map(([major, minor]) => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' },
  // After the denials: runc cannot apply one inside a wildcard allowed before it (cgroup v1).
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
];

/** `--device HOST[:CONTAINER][:PERMISSIONS]`, as HostConfig.Devices has it. */
export interface DeviceMapping {
  readonly pathOnHost: string;
  readonly pathInContainer: string;
  /** Of r, w and m (mknod), as the device cgroup takes them. */
  readonly cgroupPermissions: string;
}

/**
 * The device nodes a mapping makes, as dockerd gathers them: a host device, or every device below a host
 * directory (placed below the container path), with its type, numbers, mode and owner.
 */
function hostDevices(mapping: DeviceMapping): { path: string; type: 'c' | 'b'; major: number; minor: number; fileMode: number; uid: number; gid: number; access: string }[] {
  const node = (path: string, st: Stats): ReturnType<typeof hostDevices> => {
    if (!st.isCharacterDevice() && !st.isBlockDevice()) return [];
    // Linux's dev_t: the major number in bits 8-19, the minor in bits 0-7 and 20-31.
    const major = (st.rdev >> 8) & 0xfff;
    const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
    return [{ path, type: st.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid, access: mapping.cgroupPermissions }];
  };
  // Below a directory, symlinks are not followed (dockerd's walk); the path given is.
  const walk = (host: string, path: string, st: Stats): ReturnType<typeof hostDevices> =>
    st.isDirectory() ? readdirSync(host).flatMap((name) => walk(join(host, name), posix.join(path, name), lstatSync(join(host, name)))) : node(path, st);
  let top: Stats;
  try {
    top = statSync(mapping.pathOnHost);
  } catch (err) {
    throw new KilnError('NOT_FOUND', `error gathering device information while adding custom device ${JSON.stringify(mapping.pathOnHost)}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  const found = walk(mapping.pathOnHost, mapping.pathInContainer, top);
  if (found.length === 0) throw new KilnError('INVALID_ARGUMENT', `error gathering device information while adding custom device ${JSON.stringify(mapping.pathOnHost)}: not a device node`);
  return found;
}

/** Where `--init`'s init is in the container, as in Docker. */
const INIT_PATH = '/sbin/docker-init';

/** The group IDs of `--group-add`: a name from the image's /etc/group (Docker's words when it lacks it), or a number. */
function addedGroups(rootfs: string, groups: readonly string[]): number[] {
  if (groups.length === 0) return [];
  const entries = imageFile(rootfs, 'etc/group');
  return groups.map((group) => {
    const entry = entries.find((g) => g[0] === group);
    if (entry) return fileId(entry[2], '/etc/group', group);
    if (/^\d+$/.test(group)) return givenId(group, 'group');
    throw new KilnError('INVALID_ARGUMENT', `Unable to find group ${group}: no matching entries in group file`);
  });
}

/**
 * The owner BuildKit gives what a build step writes for `user[:group]` (COPY --chown, and the directories
 * WORKDIR makes under USER): a number is that ID, and a user number also the group's; `root` is 0; a
 * name is looked up in the image's /etc/passwd (its primary group too) or /etc/group. A name the image
 * lacks is no error: a user becomes 0, a group stays the user's.
 */
export function resolveOwner(rootfs: string, spec: string): { uid: number; gid: number } {
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? undefined : spec.slice(colon + 1);
  const numeric = (text: string, kind: 'user' | 'group'): number | undefined => (text === 'root' ? 0 : /^\d+$/.test(text) ? givenId(text, kind) : undefined);
  let uid = numeric(userPart, 'user');
  let gid = uid;
  if (uid === undefined) {
    const entry = imageFile(rootfs, 'etc/passwd').find((p) => p[0] === userPart);
    uid = entry ? fileId(entry[2], '/etc/passwd', userPart) : 0;
    gid = entry ? fileId(entry[3], '/etc/passwd', userPart) : 0;
  }
  if (groupPart !== undefined) {
    const given = numeric(groupPart, 'group');
    const entry = given === undefined ? imageFile(rootfs, 'etc/group').find((g) => g[0] === groupPart) : undefined;
    gid = given ?? (entry ? fileId(entry[2], '/etc/group', groupPart) : gid);
  }
  return { uid, gid: gid ?? 0 };
}

/** Environment: the image's, then HOSTNAME/HOME/PATH defaults where missing, then `-e` overrides. */
export function environment(config: ContainerConfig, overrides: readonly string[], hostname: string, home: string): string[] {
  const base = [DEFAULT_PATH, `HOSTNAME=${hostname}`, ...(config.Env ?? [])];
  return withOverrides(base.some((e) => e.startsWith('HOME=')) ? base : [...base, `HOME=${home}`], overrides);
}

/** `env` with `-e` overrides: KEY=value replaces KEY's entry, a bare KEY passes kiln's own value (if set). */
export function withOverrides(env: readonly string[], overrides: readonly string[]): string[] {
  const byKey = new Map<string, string>();
  const put = (entry: string): void => {
    const eq = entry.indexOf('=');
    if (eq > 0) byKey.set(entry.slice(0, eq), entry);
  };
  for (const e of env) put(e);
  for (const e of overrides) {
    if (e.includes('=')) put(e);
    else if (process.env[e] !== undefined) put(`${e}=${process.env[e]}`);
  }
  return [...byKey.values()];
}

/** A mount in an OCI runtime spec. */
export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface ConsoleSize {
  readonly height: number;
  readonly width: number;
}

/** The text of config.json for a spec: JSON, with an unlimited rlimit as the number 2^64-1 (see ociRlimits). */
export function specJson(spec: object): string {
  return JSON.stringify(spec, null, 2).replace(new RegExp(`("(?:soft|hard)": )"${RLIM_INFINITY}"`, 'g'), '$118446744073709551615');
}

/** A spec read back from specJson's text (a detached container's supervisor runs the bundle start left). */
export function parseSpec(text: string): object {
  // An rlimit beyond the integers a number holds exactly can only be specJson's unlimited (checkUlimits allows no other).
  return JSON.parse(text, (key, value: unknown) => ((key === 'soft' || key === 'hard') && typeof value === 'number' && !Number.isSafeInteger(value) ? RLIM_INFINITY : value)) as object;
}

/** The OCI runtime spec (config.json) for a container, with Docker's defaults. */
export function runtimeSpec(config: ContainerConfig, rootfs: string, files: { hosts: string; resolvConf: string; hostname: string }, options: ProcessOptions): object {
  const user = resolveUser(rootfs, options.user ?? config.User ?? '');
  const { network } = options;
  const shared = new Set<string>(options.hostNamespaces ?? []);
  const own = ['pid', 'ipc', 'uts'].filter((type) => !shared.has(type)).map((type) => ({ type }));
  const namespaces = [...own, { type: 'mount' }, ...(network === 'none' ? [{ type: 'network' }] : network === 'host' ? [] : [{ type: 'network', path: network.path }])];
  // The host's /dev/shm with its IPC namespace (as Docker binds it), none with `--ipc none`, else a tmpfs of the container's.
  const shm = shared.has('ipc')
    ? [{ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] }]
    : options.noShm
      ? []
      : [{ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${options.shmSize || DEFAULT_SHM_SIZE}`] }];
  const held = options.privileged ? allCapabilities() : capabilities(options.capAdd, options.capDrop);
  const seccomp = options.privileged ? 'unconfined' : (options.security?.seccomp ?? 'default');
  const devices = (options.devices ?? []).flatMap(hostDevices);
  const limits = options.resources && linuxResources(options.resources);
  // The device cgroup as Docker's (see DOCKER_DEVICE_RULES), then the devices given allowed; every
  // device for a privileged container.
  const deviceRules = options.privileged ? [{ allow: true, access: 'rwm' }] : [...DOCKER_DEVICE_RULES, ...devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access }))];
  const resources = { ...limits, devices: deviceRules };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: options.tty ?? false,
      ...(options.tty ? { consoleSize: options.consoleSize ?? { height: 24, width: 80 } } : {}),
      user: { uid: user.uid, gid: user.gid, additionalGids: [...new Set([...user.additionalGids, ...addedGroups(rootfs, options.groupAdd ?? [])])] },
      args: options.init ? [INIT_PATH, '--', ...commandLine(config, options)] : commandLine(config, options),
      env: environment(config, options.env, options.hostname, user.home),
      cwd: options.workdir || config.WorkingDir || '/',
      capabilities: Object.fromEntries(['bounding', 'effective', 'permitted'].map((k) => [k, held])),
      // As Docker's default: setuid programs (su, sudo, ping) work unless --security-opt no-new-privileges.
      noNewPrivileges: options.security?.noNewPrivileges ?? false,
      ...(options.ulimits?.length ? { rlimits: ociRlimits(options.ulimits) } : {}),
    },
    root: { path: rootfs, readonly: options.readOnly ?? false },
    // In the host's UTS namespace the runtime may set no name (the container's is the host's).
    ...(shared.has('uts') ? {} : { hostname: options.hostname }),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', options.privileged ? 'rw' : 'ro'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      ...shm,
      { destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ['rbind', 'rprivate'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConf, options: ['rbind', 'rprivate'] },
      { destination: '/etc/hostname', type: 'bind', source: files.hostname, options: ['rbind', 'rprivate'] },
      ...(options.init ? [{ destination: INIT_PATH, type: 'bind', source: options.init, options: ['rbind', 'ro'] }] : []),
      ...(options.mounts ?? []),
      ...(options.tmpfs ?? []).map(tmpfsMount),
    ],
    linux: {
      namespaces,
      maskedPaths: options.privileged ? [] : MASKED_PATHS,
      readonlyPaths: options.privileged ? [] : READONLY_PATHS,
      resources,
      ...(devices.length > 0 ? { devices: devices.map(({ access: _access, ...node }) => node) } : {}),
      ...(options.sysctls && Object.keys(options.sysctls).length > 0 ? { sysctl: options.sysctls } : {}),
      ...(seccomp === 'unconfined' ? {} : { seccomp: seccomp === 'default' ? defaultSeccomp(held) : customSeccomp(seccomp, held) }),
    },
  };
}
