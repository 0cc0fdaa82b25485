/** The distribution of a tree, from os-release(5): `/etc/os-release`, else `/usr/lib/os-release`. */
import type { Distro } from './model.js';
import type { Capture, FinalFile } from './tree.js';

const PATHS = ['/etc/os-release', '/usr/lib/os-release'];

/** os-release's `KEY=value` lines, values unquoted as a shell would. */
function parseOsRelease(text: string): Distro | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    let value = match[2] as string;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) value = value.slice(1, -1);
    if (quote === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    fields.set(match[1] as string, value);
  }
  const id = fields.get('ID');
  if (id === undefined || id === '') return undefined;
  return { id, versionId: fields.get('VERSION_ID') ?? '', prettyName: fields.get('PRETTY_NAME') ?? null };
}

export function osReleaseCapture(path: string): Capture<Distro> | undefined {
  return PATHS.includes(path) ? { maxBytes: 64 << 10, read: (bytes) => parseOsRelease(bytes.toString('utf8')) } : undefined;
}

/** The distro of the first os-release file there is (a symlink, as Debian's /etc/os-release, is not read: the file it names is). */
export function distroOf(files: readonly FinalFile<Distro>[]): Distro | null {
  for (const path of PATHS) {
    const file = files.find((f) => f.path === path);
    if (file) return file.value;
  }
  return null;
}
