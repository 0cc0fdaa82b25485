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
