/**
 * Platforms (OCI image-spec `platform`): the one parser of `os/arch[/variant]`, formatter, matcher and
 * host platform. Names are normalised as containerd's platforms package does (x86_64 → amd64,
 * aarch64 → arm64, armhf → arm/v7, arm64/v8 ≡ arm64, amd64/v1 ≡ amd64, arm ≡ arm/v7), so that Docker's
 * spellings pick the same images in kiln.
 */
import { KilnError } from '../errors.js';

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly 'os.version'?: string;
  readonly 'os.features'?: readonly string[];
  readonly variant?: string;
}

/** An architecture and variant by their canonical names (lowercase; the default variant as matching takes it). */
function normalArch(architecture: string, variant: string): { architecture: string; variant: string } {
  const arch = architecture.toLowerCase();
  const v = variant.toLowerCase();
  if (arch === 'i386') return { architecture: '386', variant: '' };
  if (arch === 'x86_64' || arch === 'x86-64' || arch === 'amd64') return { architecture: 'amd64', variant: v === 'v1' ? '' : v };
  if (arch === 'aarch64' || arch === 'arm64') return { architecture: 'arm64', variant: v === '8' || v === 'v8' ? '' : v };
  if (arch === 'armhf') return { architecture: 'arm', variant: 'v7' };
  if (arch === 'armel') return { architecture: 'arm', variant: 'v6' };
  if (arch === 'arm') return { architecture: 'arm', variant: v === '' || v === '7' ? 'v7' : /^[568]$/.test(v) ? `v${v}` : v };
  return { architecture: arch, variant: v };
}

/** A platform in canonical names, its variant as matching compares it ('' when the architecture's default or none). */
function normalised(platform: Platform): { os: string; architecture: string; variant: string } {
  const os = platform.os.toLowerCase();
  return { os: os === 'macos' ? 'darwin' : os, ...normalArch(platform.architecture, platform.variant ?? '') };
}

/**
 * `os/arch[/variant]` (a `--platform` flag) as a platform in canonical names; the host's when absent or
 * empty. As with Docker, a variant given for arm64 is kept (v8 when it is the default), and arm's default
 * v7 is left implicit when no variant is given.
 */
export function parsePlatform(text: string | undefined): Platform {
  if (text === undefined || text === '') return hostPlatform();
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || variant === '' || extra !== undefined) {
    throw new KilnError('INVALID_ARGUMENT', `invalid platform ${JSON.stringify(text)}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  }
  const normal = normalised({ os, architecture, ...(variant !== undefined ? { variant } : {}) });
  let wanted = normal.variant;
  if (variant === undefined && normal.architecture === 'arm' && wanted === 'v7') wanted = '';
  if (variant !== undefined && normal.architecture === 'arm64' && wanted === '') wanted = 'v8';
  return { os: normal.os, architecture: normal.architecture, ...(wanted ? { variant: wanted } : {}) };
}

/** `os/arch[/variant]`, as Docker prints a platform. */
export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

/**
 * Whether an image of platform `candidate` serves `wanted`: the same os and architecture and, when
 * `wanted` names a variant, the same variant once defaults are applied (arm64 ≡ arm64/v8, amd64 ≡
 * amd64/v1, arm ≡ arm/v7). A wanted platform without a variant (the host's, `linux/amd64`) takes any
 * variant of its architecture: the first an index lists.
 */
export function platformMatches(candidate: Platform, wanted: Platform): boolean {
  const have = normalised(candidate);
  const want = normalised(wanted);
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  return !wanted.variant || have.variant === want.variant;
}

/** The platform an image's config names. */
export function imagePlatform(config: { readonly os: string; readonly architecture: string; readonly variant?: string }): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/** Node's names of architectures in OCI's. */
const NODE_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of the machine kiln runs on, without a variant. */
export function hostPlatform(): Platform {
  return { os: process.platform === 'win32' ? 'windows' : 'linux', architecture: NODE_ARCH[process.arch] ?? process.arch };
}
