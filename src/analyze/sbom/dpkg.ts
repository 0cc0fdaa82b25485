/**
 * Debian packages from dpkg's database: `/var/lib/dpkg/status` (and distroless images' one file per
 * package in `status.d/`), the files each owns from `info/NAME[:ARCH].list`, its license from
 * `/usr/share/doc/NAME/copyright` when that file is in Debian's machine-readable format (DEP-5).
 */
import { type Cataloguer, type FoundPackage, firstLayerHolding, paragraphs, recordFields } from './cataloguer.js';
import { allOf, spdxExpression } from './licenses.js';
import type { Distro } from './model.js';
import { distroQualifier, purlOf } from './purl.js';
import type { FinalFile } from './tree.js';

const DPKG = '/var/lib/dpkg/';
const STATUS = `${DPKG}status`;
const STATUS_D = `${DPKG}status.d/`;
const INFO = `${DPKG}info/`;
const DOC = /^\/usr\/share\/doc\/([^/]+)\/copyright$/;
const MAX_RECORD = 64 << 20;

interface Stanza {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly multiArchSame: boolean;
  readonly source: { readonly name: string; readonly version: string } | null;
}

type DpkgFile = { readonly kind: 'status'; readonly stanzas: readonly Stanza[] } | { readonly kind: 'list'; readonly paths: readonly string[] } | { readonly kind: 'copyright'; readonly license: string | null };

/** States in which a package's files are on disk (not `not-installed`, not `config-files`). */
const PRESENT = new Set(['installed', 'unpacked', 'half-configured', 'half-installed', 'triggers-awaited', 'triggers-pending']);

function parseStatus(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  for (const paragraph of paragraphs(text)) {
    const fields = recordFields(paragraph);
    const name = fields.get('Package');
    const version = fields.get('Version');
    // A status file has `Status:`; a distroless status.d file may not, and lists installed packages only.
    const state = fields.get('Status')?.split(/\s+/)[2] ?? 'installed';
    if (name === undefined || version === undefined || !PRESENT.has(state)) continue;
    const sourceField = /^(\S+)(?:\s+\((\S+)\))?/.exec(fields.get('Source') ?? '');
    stanzas.push({
      name,
      version,
      architecture: fields.get('Architecture') ?? '',
      multiArchSame: fields.get('Multi-Arch') === 'same',
      // Without `Source:`, the source package has the binary's name and version, as dpkg-query's ${source:Package} gives.
      source: sourceField ? { name: sourceField[1] as string, version: sourceField[2] ?? version } : { name, version },
    });
  }
  return stanzas;
}

/** The licenses of a DEP-5 copyright file: every `License:` field's short name, as one SPDX expression. */
function parseCopyright(text: string): string | null {
  if (!/^Format:\s*\S*copyright-format/im.test(text)) return null;
  const names = [...text.matchAll(/^License:[ \t]*(.+)$/gm)].map((m) => (m[1] as string).trim());
  return allOf(names.map(spdxExpression));
}

export const dpkg: Cataloguer<DpkgFile> = {
  name: 'dpkg',
  owner: true,
  select(path) {
    if (path === STATUS) return { maxBytes: MAX_RECORD, history: true, read: (bytes) => ({ kind: 'status', stanzas: parseStatus(bytes.toString('utf8')) }) };
    if (path.startsWith(STATUS_D) && !path.endsWith('.md5sums') && !path.includes('/', STATUS_D.length)) {
      return { maxBytes: MAX_RECORD, read: (bytes) => ({ kind: 'status', stanzas: parseStatus(bytes.toString('utf8')) }) };
    }
    if (path.startsWith(INFO) && path.endsWith('.list') && !path.includes('/', INFO.length)) {
      return { maxBytes: MAX_RECORD, read: (bytes) => ({ kind: 'list', paths: bytes.toString('utf8').split('\n').filter((p) => p !== '' && p !== '/.') }) };
    }
    if (DOC.test(path)) return { maxBytes: 4 << 20, read: (bytes) => ({ kind: 'copyright', license: parseCopyright(bytes.toString('utf8')) }) };
    return undefined;
  },
  catalogue(files, distro) {
    const lists = new Map<string, readonly string[]>();
    const licenses = new Map<string, string | null>();
    const records: FinalFile<DpkgFile>[] = [];
    for (const file of files) {
      const { value } = file;
      if (value.kind === 'list') lists.set(file.path.slice(INFO.length, -'.list'.length), value.paths);
      else if (value.kind === 'copyright') licenses.set(DOC.exec(file.path)?.[1] ?? '', value.license);
      else records.push(file);
    }
    const packages: FoundPackage[] = [];
    for (const file of records.sort((a, b) => (a.path < b.path ? -1 : 1))) {
      if (file.value.kind !== 'status') continue;
      for (const stanza of file.value.stanzas) packages.push(packageOf(stanza, file as FinalFile<{ kind: 'status'; stanzas: readonly Stanza[] }>, lists, licenses, distro));
    }
    return packages;
  },
};

function packageOf(stanza: Stanza, file: FinalFile<{ readonly kind: 'status'; readonly stanzas: readonly Stanza[] }>, lists: ReadonlyMap<string, readonly string[]>, licenses: ReadonlyMap<string, string | null>, distro: Distro | null): FoundPackage {
  const { name, version, architecture } = stanza;
  const layer = firstLayerHolding(file, (value) => value.stanzas.some((s) => s.name === name && s.version === version && s.architecture === architecture));
  return {
    name,
    version,
    type: 'deb',
    purl: purlOf('deb', distro?.id ?? 'debian', name, version, { arch: architecture, distro: distroQualifier(distro) }),
    license: licenses.get(name) ?? null,
    source: stanza.source,
    foundIn: file.path,
    files: lists.get(stanza.multiArchSame ? `${name}:${architecture}` : name) ?? lists.get(name) ?? [],
    layer,
  };
}
