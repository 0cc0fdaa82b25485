import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { customSeccomp, defaultSeccomp, seccompProfile } from '../../src/runtime/seccomp.js';
import { runtimeSpec, securityOptions } from '../../src/runtime/spec.js';

interface Rule {
  readonly names: readonly string[];
  readonly errnoRet: number;
  readonly args?: readonly { readonly index: number; readonly value: number }[];
}
interface Filter {
  readonly defaultAction: string;
  readonly syscalls: readonly Rule[];
}

/** The calls a filter refuses outright (rules without argument conditions), with the errno each fails with. */
function refused(filter: Filter): Map<string, number> {
  return new Map(filter.syscalls.filter((rule) => !rule.args).flatMap((rule) => rule.names.map((name) => [name, rule.errnoRet] as const)));
}

const DOCKER_DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

describe('seccomp: Docker\'s default profile\'s effect', () => {
  it('refuses what Docker refuses a container with its default capabilities, clone3 with ENOSYS, clone only with a namespace flag', () => {
    const filter = defaultSeccomp(DOCKER_DEFAULT_CAPS) as Filter;
    assert.equal(filter.defaultAction, 'SCMP_ACT_ALLOW');
    const calls = refused(filter);
    for (const name of ['unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'keyctl', 'add_key', 'bpf', 'perf_event_open', 'reboot', 'init_module', 'settimeofday', 'swapon', 'syslog', 'open_by_handle_at', 'userfaultfd', 'io_uring_setup', 'sethostname']) {
      assert.equal(calls.get(name), 1, `${name} fails with EPERM`);
    }
    assert.equal(calls.get('clone3'), 38);
    // What the default capabilities allow, and what every program needs, stays allowed.
    for (const name of ['chroot', 'clone', 'ptrace', 'read', 'execve', 'socket', 'chown']) assert.equal(calls.has(name), false, name);
    const cloneRules = filter.syscalls.filter((rule) => rule.names.includes('clone'));
    const flags = cloneRules.map((rule) => rule.args?.[0]?.value ?? 0).reduce((a, b) => a | b, 0);
    assert.equal(flags, 0x7e020000, 'CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET');
  });

  it('lets calls through for the capability Docker lets them through for, and takes a capability dropped away', () => {
    const admin = refused(defaultSeccomp([...DOCKER_DEFAULT_CAPS, 'CAP_SYS_ADMIN']) as Filter);
    for (const name of ['unshare', 'mount', 'setns', 'bpf', 'clone3']) assert.equal(admin.has(name), false, name);
    assert.equal(admin.get('keyctl'), 1, 'the keyring is refused even so');
    assert.equal((defaultSeccomp([...DOCKER_DEFAULT_CAPS, 'CAP_SYS_ADMIN']) as Filter).syscalls.some((rule) => rule.names.includes('clone')), false);
    assert.equal(refused(defaultSeccomp([...DOCKER_DEFAULT_CAPS, 'CAP_SYS_TIME']) as Filter).has('settimeofday'), false);
    assert.equal(refused(defaultSeccomp(DOCKER_DEFAULT_CAPS.filter((cap) => cap !== 'CAP_SYS_CHROOT')) as Filter).get('chroot'), 1);
  });

  it('is in every spec but a privileged or seccomp=unconfined one, which no-new-privileges also reaches', () => {
    const files = { hosts: '/h', resolvConf: '/r', hostname: '/n' };
    const spec = (options: object) => runtimeSpec({}, '/nonexistent-root', files, { cmd: ['true'], env: [], hostname: 'h', network: 'none', ...options }) as { linux: { seccomp?: Filter }; process: { noNewPrivileges: boolean } };
    assert.ok(spec({}).linux.seccomp);
    assert.equal(spec({ privileged: true }).linux.seccomp, undefined);
    assert.equal(spec({ security: securityOptions(['seccomp=unconfined']) }).linux.seccomp, undefined);
    assert.deepEqual(spec({ security: securityOptions(['seccomp={"defaultAction":"SCMP_ACT_LOG"}']) }).linux.seccomp, { defaultAction: 'SCMP_ACT_LOG', syscalls: [] });
    assert.equal(spec({ privileged: true, security: securityOptions(['seccomp={"defaultAction":"SCMP_ACT_LOG"}']) }).linux.seccomp, undefined);
    assert.equal(spec({}).process.noNewPrivileges, false);
    assert.equal(spec({ security: securityOptions(['no-new-privileges']) }).process.noNewPrivileges, true);
  });

  it('makes a profile in Docker\'s format into the spec\'s as dockerd does: archMap, includes and excludes', () => {
    const arch = process.arch === 'arm64' ? ['SCMP_ARCH_AARCH64', 'arm64'] : ['SCMP_ARCH_X86_64', 'amd64'];
    const profile = seccompProfile(
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 1,
        archMap: [
          { architecture: arch[0], subArchitectures: ['SCMP_ARCH_SUB'] },
          { architecture: 'SCMP_ARCH_ELSEWHERE', subArchitectures: [] },
        ],
        syscalls: [
          { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
          { name: 'old-form', action: 'SCMP_ACT_ALLOW' },
          { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
          { names: ['here'], action: 'SCMP_ACT_ALLOW', includes: { arches: [arch[1]], minKernel: '2.6' } },
          { names: ['too-new'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '999.0' } },
          { names: ['not-here'], action: 'SCMP_ACT_ALLOW', excludes: { arches: [arch[1]] } },
          { names: ['not-for-admin'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { caps: ['CAP_SYS_ADMIN'] } },
        ],
      }),
    );
    const spec = (caps: readonly string[]) => customSeccomp(profile, caps) as { architectures: string[]; defaultErrnoRet: number; syscalls: Rule[] };
    const plain = spec(DOCKER_DEFAULT_CAPS);
    assert.deepEqual(plain.architectures, [arch[0], 'SCMP_ARCH_SUB']);
    assert.equal(plain.defaultErrnoRet, 1);
    assert.deepEqual(plain.syscalls.map((rule) => rule.names.join(',')), ['read,write', 'old-form', 'personality', 'here', 'not-for-admin']);
    assert.deepEqual(plain.syscalls[2], { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }] });
    assert.deepEqual(spec([...DOCKER_DEFAULT_CAPS, 'CAP_SYS_ADMIN']).syscalls.map((rule) => rule.names.join(',')), ['read,write', 'old-form', 'mount', 'personality', 'here']);
  });

  it('reads --security-opt as Docker does, and refuses what kiln cannot apply, naming it', () => {
    assert.deepEqual(securityOptions([]), { seccomp: 'default', noNewPrivileges: false });
    assert.deepEqual(securityOptions(['seccomp:unconfined', 'no-new-privileges=true', 'apparmor=unconfined', 'label=disable']), { seccomp: 'unconfined', noNewPrivileges: true });
    assert.deepEqual(securityOptions(['seccomp=unconfined', 'seccomp=builtin', 'no-new-privileges', 'no-new-privileges:false']), { seccomp: 'default', noNewPrivileges: false });
    assert.deepEqual(securityOptions(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']).seccomp, { defaultAction: 'SCMP_ACT_ALLOW' });
    for (const [value, message] of [
      ['seccomp=/etc/profile.json', /invalid --security-opt "seccomp=\/etc\/profile.json": give seccomp=unconfined, seccomp=builtin, or a profile/],
      ['seccomp={"defaultAction":"SCMP_ACT_MAYBE"}', /the seccomp profile has defaultAction "SCMP_ACT_MAYBE", which is none of SCMP_ACT_KILL/],
      ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}', /syscalls\[0\] has args that are not \{index, value, valueTwo, op\}/],
      ['seccomp={"defaultAction":', /the seccomp profile is not JSON/],
      ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ALLOW","includes":{"caps":"CAP_SYS_ADMIN"}}]}', /syscalls\[0\] has includes that are not \{caps, arches, minKernel\}/],
      ['no-new-privileges=maybe', /no-new-privileges takes true or false/],
      ['apparmor=docker-default', /kiln applies no AppArmor profile/],
      ['label=type:svirt_t', /kiln applies no SELinux label/],
      ['colour=blue', /invalid --security-opt "colour=blue": kiln knows seccomp=unconfined/],
    ] as const) {
      assert.throws(() => securityOptions([value]), message);
    }
  });
});
