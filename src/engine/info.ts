/** `docker info`: the store's counts and the host as kiln sees it. */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { arch, cpus, hostname, release, totalmem } from 'node:os';
import { containerStatus } from './containers/records.js';
import type { Engine } from './engine.js';
import { KILN_VERSION } from './version.js';

/** A file's first line, or '' when it cannot be read. */
async function firstLine(path: string): Promise<string> {
  return ((await readFile(path, 'utf8').catch(() => '')).split('\n')[0] ?? '').trim();
}

/**
 * `docker info` (`GET /info`) in API 1.41's fields: the store's counts, and the host as kiln sees it.
 * Resource-limit capabilities are false (kiln applies no limits); Docker's daemon-only figures
 * (goroutines, event listeners, the commits of containerd and its init) are zero or empty.
 */
export async function systemInfo(engine: Engine): Promise<Record<string, unknown>> {
  const states = engine.store.db.containers().map(containerStatus);
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const osField = (key: string): string => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1] ?? '';
  const noCommit = { ID: '', Expected: '' };
  return {
    ID: engine.store.root,
    Containers: states.length,
    ContainersRunning: states.filter((s) => s === 'running').length,
    ContainersPaused: states.filter((s) => s === 'paused').length,
    ContainersStopped: states.filter((s) => s === 'exited' || s === 'created').length,
    Images: engine.listImages().length,
    Driver: 'overlay2',
    DriverStatus: [['Backing Filesystem', 'kiln snapshots']],
    Plugins: { Volume: ['local'], Network: ['host', 'none'], Authorization: null, Log: ['json-file'] },
    MemoryLimit: false,
    SwapLimit: false,
    KernelMemory: false,
    KernelMemoryTCP: false,
    CpuCfsPeriod: false,
    CpuCfsQuota: false,
    CPUShares: false,
    CPUSet: false,
    PidsLimit: false,
    IPv4Forwarding: (await firstLine('/proc/sys/net/ipv4/ip_forward')) === '1',
    BridgeNfIptables: false,
    BridgeNfIp6tables: false,
    Debug: false,
    NFd: (await readdir('/proc/self/fd').catch(() => [])).length,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs',
    CgroupVersion: existsSync('/sys/fs/cgroup/cgroup.controllers') ? '2' : '1',
    NEventsListener: 0,
    KernelVersion: release(),
    OperatingSystem: 'kiln (daemonless Docker image engine)',
    OSVersion: osField('VERSION_ID'),
    OSType: 'linux',
    Architecture: arch() === 'x64' ? 'x86_64' : arch(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: { AllowNondistributableArtifactsCIDRs: [], AllowNondistributableArtifactsHostnames: [], InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {}, Mirrors: [] },
    NCPU: cpus().length,
    MemTotal: totalmem(),
    GenericResources: null,
    DockerRootDir: engine.store.root,
    HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
    HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
    NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
    Name: hostname(),
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: KILN_VERSION,
    Runtimes: { runc: { path: 'runc' }, crun: { path: 'crun' } },
    DefaultRuntime: 'runc',
    Swarm: { LocalNodeState: 'inactive', NodeID: '', NodeAddr: '', ControlAvailable: false, Error: '', RemoteManagers: null },
    LiveRestoreEnabled: false,
    Isolation: '',
    InitBinary: '',
    ContainerdCommit: noCommit,
    RuncCommit: noCommit,
    InitCommit: noCommit,
    // Docker's words for its default seccomp profile, which every container and RUN step gets (runtime/seccomp.ts).
    SecurityOptions: ['name=seccomp,profile=builtin'],
    Warnings: [],
  };
}
