import { release } from 'node:os';

/**
 * The seccomp filter of every container and RUN step, with Docker's default profile's effect: the system
 * calls Docker refuses a container (EPERM) unless it holds the capability that lets them through, as
 * Docker's documentation lists them ("Significant syscalls blocked by the default profile"). clone3 fails
 * with ENOSYS instead, as in Docker's profile: C libraries then fall back to clone, whose flags a filter can
 * read, and which is refused only when it would make a namespace.
 *
 * Kept as a deny list over an allowed default, where Docker's profile is an allow list: a system call newer
 * than this list is allowed here, refused there. What a Dockerfile or a container can do is otherwise the
 * same: `unshare -U` fails in a RUN step as it does under BuildKit.
 */

const EPERM = 1;
const ENOSYS = 38;

/** The namespace flags of clone(2): a process without CAP_SYS_ADMIN may make none (CLONE_NEWNS … CLONE_NEWNET). */
const CLONE_NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

/** Refused system calls, by the capabilities any one of which lets them through ([] for none: always refused). */
const REFUSED: readonly (readonly [readonly string[], readonly string[]])[] = [
  // The kernel keyring is not namespaced; obsolete calls; calls that reach outside the container.
  [[], ['add_key', 'keyctl', 'request_key', 'create_module', 'get_kernel_syms', 'query_module', 'nfsservctl', 'sysfs', '_sysctl', 'uselib', 'ustat', 'vm86', 'vm86old', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register']],
  [['CAP_SYS_ADMIN'], ['mount', 'umount', 'umount2', 'pivot_root', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'move_mount', 'open_tree', 'mount_setattr', 'setns', 'unshare', 'swapon', 'swapoff', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'name_to_handle_at', 'fanotify_init', 'sethostname', 'setdomainname']],
  [['CAP_SYS_ADMIN', 'CAP_BPF'], ['bpf']],
  [['CAP_SYS_ADMIN', 'CAP_PERFMON'], ['perf_event_open']],
  [['CAP_SYS_ADMIN', 'CAP_SYSLOG'], ['syslog']],
  [['CAP_SYS_BOOT'], ['reboot', 'kexec_load', 'kexec_file_load']],
  [['CAP_SYS_MODULE'], ['init_module', 'finit_module', 'delete_module']],
  [['CAP_SYS_TIME'], ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64']],
  [['CAP_SYS_NICE'], ['get_mempolicy', 'set_mempolicy', 'mbind', 'move_pages']],
  [['CAP_SYS_RAWIO'], ['iopl', 'ioperm']],
  [['CAP_SYS_PTRACE'], ['kcmp', 'pidfd_getfd', 'process_madvise']],
  [['CAP_SYS_PACCT'], ['acct']],
  [['CAP_SYS_TTY_CONFIG'], ['vhangup']],
  [['CAP_SYS_CHROOT'], ['chroot']],
  [['CAP_DAC_READ_SEARCH'], ['open_by_handle_at']],
];

/** The architectures a filter covers, as Docker's profile lists them for each host: 32-bit programs run on 64-bit hosts. */
function architectures(): string[] | undefined {
  if (process.arch === 'x64') return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
  if (process.arch === 'arm64') return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
  return undefined; // the host's own architecture only
}

/** The OCI spec's `linux.seccomp` for a process holding `capabilities` (CAP_ names). */
export function defaultSeccomp(capabilities: readonly string[]): object {
  const held = new Set(capabilities);
  const refused = REFUSED.filter(([unless]) => !unless.some((cap) => held.has(cap))).flatMap(([, names]) => names);
  const admin = held.has('CAP_SYS_ADMIN');
  // clone's flags are its first argument, but its second on s390.
  const flagsIndex = process.arch === 's390x' ? 1 : 0;
  const syscalls = [
    { names: refused, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    ...(admin
      ? []
      : [
          { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
          // One rule per flag: the rules of a call are alternatives, the conditions of a rule all hold.
          ...CLONE_NAMESPACE_FLAGS.map((flag) => ({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: flagsIndex, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }] })),
        ]),
  ];
  const arches = architectures();
  return { defaultAction: 'SCMP_ACT_ALLOW', ...(arches ? { architectures: arches } : {}), syscalls };
}

/** A rule of a profile in Docker's format (`docker run --security-opt seccomp=FILE`), as far as kiln reads it. */
interface DockerSyscallRule {
  readonly names?: readonly string[];
  /** The older form: one name. */
  readonly name?: string;
  readonly action: string;
  readonly errnoRet?: number;
  readonly args?: readonly { readonly index: number; readonly value: number; readonly valueTwo?: number; readonly op: string }[];
  readonly includes?: DockerRuleFilter;
  readonly excludes?: DockerRuleFilter;
}
interface DockerRuleFilter {
  readonly caps?: readonly string[];
  readonly arches?: readonly string[];
  readonly minKernel?: string;
}

/** A seccomp profile in Docker's format, checked (see seccompProfile). */
export interface DockerSeccompProfile {
  readonly defaultAction: string;
  readonly defaultErrnoRet?: number;
  readonly architectures?: readonly string[];
  readonly archMap?: readonly { readonly architecture: string; readonly subArchitectures?: readonly string[] }[];
  readonly flags?: readonly string[];
  readonly syscalls?: readonly DockerSyscallRule[];
}

const ACTIONS = new Set(['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG']);
const OPERATORS = new Set(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);
/** This host's architecture by Node's name: libseccomp's name (archMap's) and Go's (a rule's arches). */
const ARCH_NAMES: Readonly<Record<string, readonly [string, string]>> = {
  x64: ['SCMP_ARCH_X86_64', 'amd64'],
  arm64: ['SCMP_ARCH_AARCH64', 'arm64'],
  arm: ['SCMP_ARCH_ARM', 'arm'],
  ia32: ['SCMP_ARCH_X86', '386'],
  ppc64: ['SCMP_ARCH_PPC64LE', 'ppc64le'],
  s390x: ['SCMP_ARCH_S390X', 's390x'],
  riscv64: ['SCMP_ARCH_RISCV64', 'riscv64'],
};

/**
 * Reads a profile in Docker's JSON format (what the docker CLI sends for `seccomp=FILE`: the file's text),
 * refusing what a runtime would refuse less clearly: a field of the wrong kind, an action or operator
 * libseccomp does not know (SCMP_ACT_NOTIFY needs a listener kiln does not run).
 */
export function seccompProfile(text: string): DockerSeccompProfile {
  const fail = (why: string): never => {
    throw new Error(`the seccomp profile ${why}`);
  };
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (err) {
    return fail(`is not JSON: ${(err as Error).message}`);
  }
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
  const isStrings = (value: unknown): boolean => value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
  const action = (value: unknown, where: string): void => {
    if (typeof value !== 'string' || !ACTIONS.has(value)) fail(`has ${where} ${JSON.stringify(value)}, which is none of ${[...ACTIONS].join(', ')}`);
  };
  if (!isObject(profile)) return fail('is not a JSON object');
  action(profile.defaultAction, 'defaultAction');
  if (profile.defaultErrnoRet !== undefined && !Number.isInteger(profile.defaultErrnoRet)) fail('has a defaultErrnoRet that is not a number');
  if (!isStrings(profile.architectures) || !isStrings(profile.flags)) fail('has architectures or flags that are not lists of names');
  if (profile.archMap !== undefined && !(Array.isArray(profile.archMap) && profile.archMap.every((entry) => isObject(entry) && typeof entry.architecture === 'string' && isStrings(entry.subArchitectures)))) fail('has an archMap that is not a list of {architecture, subArchitectures}');
  if (profile.syscalls !== undefined && !Array.isArray(profile.syscalls)) fail('has syscalls that are not a list');
  for (const [i, rule] of ((profile.syscalls ?? []) as unknown[]).entries()) {
    if (!isObject(rule) || !isStrings(rule.names) || !(rule.name === undefined || typeof rule.name === 'string')) return fail(`syscalls[${i}] has no names`);
    action(rule.action, `syscalls[${i}].action`);
    if (rule.errnoRet !== undefined && !Number.isInteger(rule.errnoRet)) fail(`syscalls[${i}] has an errnoRet that is not a number`);
    for (const key of ['includes', 'excludes']) {
      const filter = rule[key];
      if (filter !== undefined && !(isObject(filter) && isStrings(filter.caps) && isStrings(filter.arches) && (filter.minKernel === undefined || typeof filter.minKernel === 'string'))) fail(`syscalls[${i}] has ${key} that are not {caps, arches, minKernel}`);
    }
    if (rule.args !== undefined && !(Array.isArray(rule.args) && rule.args.every((arg) => isObject(arg) && Number.isInteger(arg.index) && Number.isInteger(arg.value) && OPERATORS.has(arg.op as string)))) fail(`syscalls[${i}] has args that are not {index, value, valueTwo, op} with op one of ${[...OPERATORS].join(', ')}`);
  }
  return profile as unknown as DockerSeccompProfile;
}

/** The kernel's version as numbers ("6.1.0-18-amd64" → [6, 1]), which a rule's minKernel is compared with. */
function kernelAtLeast(minimum: string): boolean {
  const [major = 0, minor = 0] = release().split(/[.-]/).map(Number);
  const [wantMajor = 0, wantMinor = 0] = minimum.split('.').map(Number);
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

/**
 * A Docker-format profile as the OCI spec's `linux.seccomp` for a process holding `capabilities`, as
 * dockerd makes it: the architectures of archMap's entry for this host (or the list given), and the rules
 * whose includes (every capability, this architecture, a kernel at least that old) and excludes hold.
 */
export function customSeccomp(profile: DockerSeccompProfile, capabilities: readonly string[]): object {
  const held = new Set(capabilities);
  const [native, goArch] = ARCH_NAMES[process.arch] ?? [];
  const mapped = profile.archMap?.find((entry) => entry.architecture === native);
  const architectures = mapped ? [mapped.architecture, ...(mapped.subArchitectures ?? [])] : profile.architectures;
  const applies = (rule: DockerSyscallRule): boolean => {
    const { includes = {}, excludes = {} } = rule;
    if (includes.caps && !includes.caps.every((cap) => held.has(cap))) return false;
    if (includes.arches && !includes.arches.includes(goArch ?? process.arch)) return false;
    if (includes.minKernel && !kernelAtLeast(includes.minKernel)) return false;
    if (excludes.caps?.some((cap) => held.has(cap))) return false;
    return !excludes.arches?.includes(goArch ?? process.arch);
  };
  const syscalls = (profile.syscalls ?? []).filter(applies).map((rule) => ({
    names: rule.names ?? (rule.name !== undefined ? [rule.name] : []),
    action: rule.action,
    ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
    ...(rule.args ? { args: rule.args.map((arg) => ({ index: arg.index, value: arg.value, valueTwo: arg.valueTwo ?? 0, op: arg.op })) } : {}),
  }));
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures ? { architectures } : {}),
    ...(profile.flags ? { flags: profile.flags } : {}),
    syscalls,
  };
}
