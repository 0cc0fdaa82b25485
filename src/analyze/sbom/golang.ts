/**
 * Go binaries: the build information the Go linker embeds in every ELF executable it writes (Go ≥ 1.13
 * modules; `go version -m` prints it): the Go version, the main module, and the modules linked in. It
 * lies in the `.go.buildinfo` section (found by its magic where section headers are stripped): Go ≥ 1.18
 * writes both strings inline, older Go writes pointers to them, resolved here through the program headers.
 */
import type { Cataloguer } from './cataloguer.js';
import { READ_ALL, type ReadAt } from './tree.js';
import { purlOf } from './purl.js';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

interface Module {
  readonly path: string;
  readonly version: string;
}

export interface GoBuildInfo {
  readonly goVersion: string;
  readonly main: Module | undefined;
  readonly deps: readonly Module[];
}

/** Reads ELF fields at the widths and byte order the file's header says. */
class Elf {
  constructor(
    readonly bytes: Buffer,
    readonly wide = bytes[4] === 2,
    readonly little = bytes[5] === 1,
  ) {}

  /** The same file's widths and order over other bytes of it. */
  over(bytes: Buffer): Elf {
    return new Elf(bytes, this.wide, this.little);
  }

  u16(at: number): number {
    return this.little ? this.bytes.readUInt16LE(at) : this.bytes.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.little ? this.bytes.readUInt32LE(at) : this.bytes.readUInt32BE(at);
  }

  /** A 64-bit field as a number (offsets and addresses of a file in memory fit). */
  u64(at: number): number {
    return Number(this.little ? this.bytes.readBigUInt64LE(at) : this.bytes.readBigUInt64BE(at));
  }

  word(at: number): number {
    return this.wide ? this.u64(at) : this.u32(at);
  }

  /** The file offset of a virtual address, through the PT_LOAD program headers. */
  offsetOf(address: number): number | undefined {
    const { wide } = this;
    const phoff = this.word(wide ? 0x20 : 0x1c);
    const size = this.u16(wide ? 0x36 : 0x2a);
    const count = this.u16(wide ? 0x38 : 0x2c);
    for (let i = 0; i < count; i++) {
      const at = phoff + i * size;
      if (at + size > this.bytes.length || this.u32(at) !== 1) continue;
      const offset = this.word(at + (wide ? 0x08 : 0x04));
      const vaddr = this.word(at + (wide ? 0x10 : 0x08));
      const filesz = this.word(at + (wide ? 0x20 : 0x10));
      if (address >= vaddr && address < vaddr + filesz) return offset + (address - vaddr);
    }
    return undefined;
  }
}

/** An unsigned LEB128 varint, as Go's binary.Uvarint reads it. */
function uvarint(bytes: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = at; i < bytes.length && shift < 35; shift += 7, i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return { value, next: i + 1 };
  }
  return undefined;
}

/**
 * The modules of the `mod`, `dep` and `=>` (replacement) lines of the module information. A binary built
 * outside module mode (Debian builds Go in GOPATH mode) has only its main package's `path`: it stands for
 * the main module, at Go's version for a build from a working tree, `(devel)`.
 */
function parseModInfo(text: string): { main: Module | undefined; deps: Module[] } {
  let main: Module | undefined;
  let mainPackage: string | undefined;
  const deps: Module[] = [];
  for (const line of text.split('\n')) {
    const [kind, path = '', version = ''] = line.split('\t');
    if (kind === 'path') mainPackage = path;
    else if (kind === 'mod') main = { path, version };
    else if (kind === 'dep') deps.push({ path, version });
    else if (kind === '=>') {
      // A replacement stands for the module on the line before it.
      if (deps.length > 0) deps[deps.length - 1] = { path, version };
      else if (main) main = { path, version };
    }
  }
  return { main: main ?? (mainPackage === undefined ? undefined : { path: mainPackage, version: '(devel)' }), deps };
}

/** Build information written inline (Go ≥ 1.18): the Go version and the module information, each a varint-prefixed string. */
function inlineBuildInfo(bytes: Buffer, at: number): GoBuildInfo | undefined {
  const version = uvarint(bytes, at + 32);
  if (!version || version.next + version.value > bytes.length) return undefined;
  const mod = uvarint(bytes, version.next + version.value);
  if (!mod || mod.next + mod.value > bytes.length) return undefined;
  return buildInfo(bytes.toString('utf8', version.next, version.next + version.value), bytes.toString('utf8', mod.next, mod.next + mod.value));
}

function buildInfo(goVersion: string, modInfo: string): GoBuildInfo {
  // The module information is framed by 16-byte sentinels.
  const framed = modInfo.length >= 33 && modInfo[modInfo.length - 17] === '\n';
  return { goVersion, ...parseModInfo(framed ? modInfo.slice(16, -16) : modInfo) };
}

const INLINE = 2;

/**
 * The build information from the few parts of an ELF file it needs (its header, section headers and
 * names, the `.go.buildinfo` section): undefined for an ELF file without that section, READ_ALL when the
 * section headers are stripped or the information is in the older pointer form.
 */
async function probeBuildInfo(readAt: ReadAt, size: number): Promise<GoBuildInfo | undefined | typeof READ_ALL> {
  const head = await readAt(0, 64);
  if (head.length < 64 || !head.subarray(0, 4).equals(ELF_MAGIC)) return undefined;
  const elf = new Elf(head);
  const { wide } = elf;
  const shoff = elf.word(wide ? 0x28 : 0x20);
  const entrySize = elf.u16(wide ? 0x3a : 0x2e);
  const count = elf.u16(wide ? 0x3c : 0x30);
  const namesIndex = elf.u16(wide ? 0x3e : 0x32);
  if (shoff === 0 || entrySize < (wide ? 0x40 : 0x28) || shoff + entrySize * count > size || namesIndex >= count) return READ_ALL;
  const table = elf.over(await readAt(shoff, entrySize * count));
  const section = (i: number): { name: number; offset: number; size: number } => ({
    name: table.u32(i * entrySize),
    offset: table.word(i * entrySize + (wide ? 0x18 : 0x10)),
    size: table.word(i * entrySize + (wide ? 0x20 : 0x14)),
  });
  const namesSection = section(namesIndex);
  const names = await readAt(namesSection.offset, Math.min(namesSection.size, 1 << 20));
  const wanted = '.go.buildinfo\0';
  for (let i = 0; i < count; i++) {
    const { name, offset, size: length } = section(i);
    if (names.toString('latin1', name, name + wanted.length) !== wanted) continue;
    const bytes = await readAt(offset, Math.min(length, 16 << 20));
    if (bytes.length < 32 || !bytes.subarray(0, BUILDINFO_MAGIC.length).equals(BUILDINFO_MAGIC)) return READ_ALL;
    return ((bytes[15] as number) & INLINE) !== 0 ? inlineBuildInfo(bytes, 0) : READ_ALL;
  }
  return undefined;
}

/**
 * The build information of a whole ELF file: by the section where it can be found, else by its magic
 * (16-byte aligned); the older pointer form resolved through the program headers.
 */
export async function goBuildInfo(bytes: Buffer): Promise<GoBuildInfo | undefined> {
  const probed = await probeBuildInfo((position, length) => Promise.resolve(bytes.subarray(position, position + length)), bytes.length);
  if (probed !== READ_ALL) return probed;
  let at = bytes.indexOf(BUILDINFO_MAGIC);
  while (at !== -1 && at % 16 !== 0) at = bytes.indexOf(BUILDINFO_MAGIC, at + 1);
  if (at === -1 || at + 32 > bytes.length) return undefined;
  const pointerSize = bytes[at + 14] as number;
  const flags = bytes[at + 15] as number;
  if (flags & INLINE) return inlineBuildInfo(bytes, at);
  if (pointerSize !== 4 && pointerSize !== 8) return undefined;
  const elf = new Elf(bytes);
  const big = (flags & 1) === 1;
  const pointer = (offset: number): number => (pointerSize === 8 ? Number(big ? bytes.readBigUInt64BE(offset) : bytes.readBigUInt64LE(offset)) : big ? bytes.readUInt32BE(offset) : bytes.readUInt32LE(offset));
  /** A Go string header at a virtual address: a pointer to the bytes and a length. */
  const goString = (address: number): string | undefined => {
    const header = elf.offsetOf(address);
    if (header === undefined || header + 2 * pointerSize > bytes.length) return undefined;
    const data = elf.offsetOf(pointer(header));
    const length = pointer(header + pointerSize);
    return data === undefined || data + length > bytes.length ? undefined : bytes.toString('utf8', data, data + length);
  };
  const version = goString(pointer(at + 16));
  const mod = goString(pointer(at + 16 + pointerSize));
  return version === undefined || mod === undefined ? undefined : buildInfo(version, mod);
}

function moduleOf(module: Module): { namespace: string | undefined; name: string } {
  const slash = module.path.lastIndexOf('/');
  return slash === -1 ? { namespace: undefined, name: module.path } : { namespace: module.path.slice(0, slash), name: module.path.slice(slash + 1) };
}

export const golang: Cataloguer<GoBuildInfo> = {
  name: 'go',
  owner: false,
  select: (_path, mode) => ((mode & 0o111) !== 0 ? { maxBytes: 512 << 20, head: (first) => first.subarray(0, 4).equals(ELF_MAGIC), read: goBuildInfo, probe: probeBuildInfo } : undefined),
  catalogue: (files) =>
    files.flatMap((file) => {
      const { goVersion, main, deps } = file.value;
      // The standard library is versioned with the toolchain (go1.21.3: 1.21.3, as the Go vulnerability database names it).
      const modules = [...(main && main.path !== '' ? [main] : []), ...deps, { path: 'stdlib', version: goVersion.replace(/^go/, '').replace(/ .*$/, '') }];
      return modules.map((module) => {
        const { namespace, name } = moduleOf(module);
        return {
          name: module.path,
          version: module.version,
          type: 'golang' as const,
          purl: purlOf('golang', namespace, name, module.version),
          license: null,
          source: null,
          foundIn: file.path,
          files: [file.path],
          layer: file.layer,
        };
      });
    }),
};
