/**
 * The build operations, each applied to a mounted root filesystem: `exec` runs a command in the OCI
 * runtime, `copy` places files from a source tree, `mkdir` makes a WORKDIR. The solver prepares the
 * snapshot and turns what changed into a layer; these only change the tree.
 */
import { spawn } from 'node:child_process';
import { type Stats, createReadStream, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { chown, lstat, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { sha256 } from '../oci/digest.js';
import { randomHex } from '../random.js';
import { KilnError, isErrno } from '../errors.js';
import { filepathMatch } from '../dockerfile/dockerignore.js';
import { NAME_MAX, PATH_MAX, applyLayer } from '../layer/apply.js';
import { MOUNT_POINTS, treeEntries } from '../layer/diff.js';
import { lstatIfAny } from '../snapshot/snapshotter.js';
import { autoDecompress } from '../layer/compression.js';
import type { TarHeader } from '../layer/tar/header.js';
import type { TarInput } from '../layer/tar/writer.js';
import { writeTar } from '../layer/tar/writer.js';
import { type RuntimeName, runBundle } from '../runtime/runtime.js';
import type { Ulimit } from '../runtime/resources.js';
import { resolveOwner, runtimeSpec } from '../runtime/spec.js';
import type { ContextEntry } from './context.js';
import { fetchGit, isGitUrl, parseGitUrl, withoutCredentials } from './git.js';
import { getUrl } from './http.js';
import type { Operation, ResolvedMount } from './plan.js';

/** A tree files are copied from: the build context, or another image's mounted root filesystem. */
export interface SourceTree {
  resolve(source: string, where: string): ContextEntry[] | Promise<ContextEntry[]>;
  tree(entry: ContextEntry): ContextEntry[] | Promise<ContextEntry[]>;
  absolute(entry: ContextEntry): string;
  /** Whether copied files keep their owners (another image) or become root's (the context). */
  readonly keepOwners: boolean;
}

const MAX_SYMLINKS = 40;
/** Runtime container IDs of RUN steps: `kiln-build-<pid>-<random>`. */
export const BUILD_CONTAINER_PREFIX = 'kiln-build-';
const SMALL_FILE = 1 << 20;

/**
 * Resolves `path` inside `root` the way the container would see it: symlinks are followed, absolute ones
 * from the root, and `..` never climbs above the root. Returns the host path (which may not exist yet).
 * Synchronous: an lstat per name takes microseconds, where each promise's round trip through the thread
 * pool took up to a millisecond on a busy machine (a COPY --from resolves several paths).
 */
export function resolveInRoot(root: string, path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.').reverse();
  const resolved: string[] = [];
  /** Where the first name that does not exist is in `resolved`: below it nothing exists, so nothing is looked up (a path of 30,000 names took 27 s). */
  let missingAt: number | undefined;
  let links = 0;
  while (parts.length > 0) {
    const part = parts.pop() as string;
    if (part === '..') {
      resolved.pop();
      if (missingAt !== undefined && resolved.length <= missingAt) missingAt = undefined;
      continue;
    }
    if (missingAt !== undefined) {
      resolved.push(part);
      continue;
    }
    const host = join(root, ...resolved, part);
    const st = lstatIfAny(host);
    if (!st) missingAt = resolved.length;
    if (st?.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new KilnError('INVALID_INPUT', `too many levels of symbolic links resolving ${path}`);
      const target = readlinkSync(host);
      if (target.startsWith('/')) resolved.length = 0;
      parts.push(...target.split('/').filter((p) => p !== '' && p !== '.').reverse());
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

/** mkdir -p inside the root (through its symlinks), new directories owned by `owner`. */
async function makeDirectories(root: string, path: string, owner: { uid: number; gid: number }): Promise<string> {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let current = '/';
  let host = root;
  for (const part of parts) {
    current = posix.join(current, part);
    host = resolveInRoot(root, current);
    const st = await lstat(host).catch(() => undefined);
    if (!st) {
      await mkdir(host, { mode: 0o755 });
      if (owner.uid !== 0 || owner.gid !== 0) await chown(host, owner.uid, owner.gid);
    } else if (!st.isDirectory()) {
      throw new KilnError('INVALID_INPUT', `cannot create directory ${current}: a file of that name exists in the image`);
    }
  }
  return host;
}

/**
 * Runs what reads the Dockerfile's USER or --chown against the image: a user it cannot resolve (an ID out
 * of range, a passwd file that makes no sense) is an error on the step's line, not a flag's.
 */
async function forStep<T>(what: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof KilnError && (err.code === 'INVALID_ARGUMENT' || err.code === 'INVALID_INPUT')) throw new KilnError('INVALID_INPUT', `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** `--chown=user:group` (or WORKDIR's USER) resolved through the image's own /etc/passwd and /etc/group, as BuildKit does. */
async function owner(rootfs: string, spec: string | undefined, what: string): Promise<{ uid: number; gid: number } | undefined> {
  return spec === undefined ? undefined : forStep(what, () => resolveOwner(rootfs, spec));
}

/**
 * A directory on disk as a SourceTree (another stage's or image's root filesystem). Read with synchronous
 * calls, as the build context is (see context.ts's listDirectory): a promise per lstat made a COPY --from
 * of one small directory wait milliseconds on the thread pool.
 */
export class DirectorySource implements SourceTree {
  readonly keepOwners = true;

  constructor(private readonly root: string) {}

  private entry(path: string): ContextEntry | undefined {
    const host = path === '' ? this.root : join(this.root, path);
    const st = lstatIfAny(host);
    if (!st) return undefined;
    const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
    return {
      path,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      mtime: st.mtimeMs / 1000,
      ...(type === 'symlink' ? { linkTarget: readlinkSync(host) } : {}),
      stat: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
      ...(st.nlink > 1 && type === 'file' ? { inode: `${st.dev}:${st.ino}` } : {}),
    };
  }

  resolve(source: string, where: string): ContextEntry[] {
    // The source path itself follows symlinks inside the image (COPY --from=x /usr/bin/tool).
    const cleaned = posix.normalize(`/${source}`);
    const hasGlob = /[*?[]/.test(cleaned);
    if (!hasGlob) {
      const host = resolveInRoot(this.root, cleaned);
      const path = posix.relative('/', '/' + host.slice(this.root.length).replace(/^\/+/, ''));
      const found = this.entry(path);
      if (!found) throw new KilnError('NOT_FOUND', `${where}: ${JSON.stringify(source)} not found in the source image`);
      return [{ ...found, path }];
    }
    const dir = posix.dirname(cleaned);
    const host = resolveInRoot(this.root, dir);
    const relDir = host.slice(this.root.length).replace(/^\/+/, '');
    let names: string[];
    try {
      names = readdirSync(host).sort();
    } catch {
      names = []; // no directory there: nothing matches
    }
    const matches: ContextEntry[] = [];
    for (const name of names) {
      if (!filepathMatch(posix.basename(cleaned), name)) continue;
      const found = this.entry(relDir ? `${relDir}/${name}` : name);
      if (found) matches.push(found);
    }
    if (matches.length === 0) throw new KilnError('NOT_FOUND', `${where}: ${JSON.stringify(source)} matches nothing in the source image`);
    return matches;
  }

  tree(top: ContextEntry): ContextEntry[] {
    const all: ContextEntry[] = [top];
    const walk = (path: string): void => {
      const host = path === '' ? this.root : join(this.root, path);
      for (const name of readdirSync(host).sort()) {
        const child = this.entry(path === '' ? name : `${path}/${name}`);
        if (!child) continue;
        all.push(child);
        if (child.type === 'directory') walk(child.path);
      }
    };
    if (top.type === 'directory') walk(top.path);
    return all;
  }

  absolute(entry: ContextEntry): string {
    return join(this.root, entry.path);
  }
}

export interface CopyInput {
  /** The step's root filesystem: mounted, unless `unmounted` reads the image. */
  readonly rootfs: string;
  /** Reads the image's tree when `rootfs` is not mounted: what it has at a relative path (see entryInLayers). */
  readonly unmounted?: (path: string) => Stats | undefined | 'unsure';
  readonly source: SourceTree;
  readonly what: string;
  /** Clamp file times to this (SOURCE_DATE_EPOCH), seconds. */
  readonly epoch?: number;
}

/** Whether `path` is a directory in the image, its symlinks followed; undefined when only a mount can tell. */
function isDirectoryIn(input: CopyInput, path: string): boolean | undefined {
  if (input.unmounted) {
    const st = input.unmounted(posix.normalize(`/${path}`).slice(1).replace(/\/$/, '') || '.');
    return st === 'unsure' || st?.isSymbolicLink() ? undefined : (st?.isDirectory() ?? false);
  }
  return lstatIfAny(resolveInRoot(input.rootfs, path))?.isDirectory() ?? false;
}

/** A downloaded ADD source, its bytes and name. */
async function download(url: string, checksum: string | undefined, what: string): Promise<{ name: string; data: Buffer; mtime: number }> {
  const response = await getUrl(url, what);
  const data = Buffer.from(await response.body.arrayBuffer());
  if (checksum !== undefined) {
    const actual = sha256(data);
    if (actual !== checksum) throw new KilnError('DIGEST_MISMATCH', `${what}: ${url} has digest ${actual}, but --checksum says ${checksum}`);
  }
  const modified = response.headers['last-modified'];
  const mtime = typeof modified === 'string' && !Number.isNaN(Date.parse(modified)) ? Date.parse(modified) / 1000 : 0;
  const name = posix.basename(new URL(url).pathname) || 'index.html';
  return { name, data, mtime };
}

/** Compressions ADD extracts, as Docker does, with the system's tool (Docker runs xz too): magic, tool, Debian package. */
const TOOL_COMPRESSIONS = [
  { magic: Buffer.from('BZh'), tool: 'bzip2', pkg: 'bzip2' },
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), tool: 'xz', pkg: 'xz-utils' },
] as const;

/** A file decompressed by `tool -dc`; the process ends with the iteration, whether read to the end or not. */
async function* decompressedByTool(path: string, tool: string, pkg: string): AsyncGenerator<Uint8Array> {
  const child = spawn(tool, ['-dc', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr = (stderr + chunk).slice(-2000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  exited.catch(() => undefined); // read below, after the output
  try {
    yield* child.stdout as AsyncIterable<Buffer>;
    const code = await exited;
    if (code !== 0) throw new KilnError('INVALID_INPUT', `${tool} could not decompress it: ${stderr.trim() || `exit code ${code}`}`);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new KilnError('UNSUPPORTED', `it is ${tool}-compressed, and extracting it needs the ${tool} command: install it (Debian package ${pkg})`);
    throw err;
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

/** A file's bytes, decompressed (gzip, zstd, bzip2, xz) when it is compressed. */
async function decompressed(path: string): Promise<AsyncIterable<Uint8Array>> {
  const file = await open(path, 'r');
  const magic = Buffer.alloc(6);
  try {
    await file.read(magic, 0, 6, 0);
  } finally {
    await file.close();
  }
  const byTool = TOOL_COMPRESSIONS.find((c) => magic.subarray(0, c.magic.length).equals(c.magic));
  return byTool ? decompressedByTool(path, byTool.tool, byTool.pkg) : (await autoDecompress(createReadStream(path))).stream;
}

/** True when a file starts like a tar archive (compressed or not) that ADD extracts. */
async function archiveStream(path: string): Promise<AsyncIterable<Uint8Array> | undefined> {
  const iterator = (await decompressed(path))[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  const seen: Uint8Array[] = [];
  while (head.length < 512) {
    // Bytes that only look compressed (a text file starting "BZh") are no archive: ADD copies them.
    const next = await iterator.next().catch((err: unknown) => {
      if (err instanceof KilnError && err.code === 'UNSUPPORTED') throw err;
      return { done: true as const, value: undefined };
    });
    if (next.done) break;
    seen.push(next.value);
    head = Buffer.concat([head, next.value]);
  }
  const isTar = head.length >= 512 && head.subarray(257, 262).toString('latin1') === 'ustar';
  if (!isTar) {
    await iterator.return?.();
    return undefined;
  }
  return (async function* () {
    // A reader that stops at the archive's end must still end the decompressor (a zstd worker, a bzip2
    // process), or it keeps kiln from exiting.
    try {
      yield* seen;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      await iterator.return?.();
    }
  })();
}

/** A file's bytes, opened only when the tar writer gets to it (a 20,000-file COPY must not open them all). */
async function* openWhenRead(path: string, size: number): AsyncGenerator<Uint8Array> {
  // Small files in one read: a stream's 1 MiB buffer per file would cost more than the file.
  if (size <= SMALL_FILE) yield readFileSync(path);
  else yield* createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
}

/** Where a COPY/ADD goes and what it copies, resolved against the image (both ways of copying share it). */
interface CopyTarget {
  /** `--chown`'s IDs, when given. */
  readonly ownerIds: { readonly uid: number; readonly gid: number } | undefined;
  /** The owner of the directories the copy makes. */
  readonly rootOwner: { readonly uid: number; readonly gid: number };
  /** The sources from the tree (not URLs). */
  readonly tops: readonly ContextEntry[];
  readonly intoDirectory: boolean;
  /** The directory in the image the entries go into. */
  readonly destinationDir: string;
  /** COPY --parents: the path each source keeps under the destination, with the directories above it. */
  readonly kept?: ReadonlyMap<ContextEntry, KeptPath>;
}

/** A COPY --parents source's path under the destination, and its parent directories in the source (their metadata is copied too). */
interface KeptPath {
  readonly path: string;
  readonly parents: readonly ContextEntry[];
}

/**
 * Where a COPY --parents source's kept path starts: after a `/./` in it (BuildKit's pivot), else at the
 * source's root. Returns the cleaned part before the pivot ('' for none).
 */
function pivotOf(name: string): string {
  const path = name.replace(/^(\.\/)+/, '');
  const at = path.indexOf('/./');
  return at < 0 ? '' : posix.normalize(`/${path.slice(0, at)}`).slice(1);
}

/** The path a COPY --parents source keeps, and the source's directories above it (below the pivot). */
async function keptPath(source: SourceTree, top: ContextEntry, pivot: string, what: string): Promise<KeptPath> {
  const path = pivot !== '' && top.path.startsWith(`${pivot}/`) ? top.path.slice(pivot.length + 1) : top.path;
  const parents: ContextEntry[] = [];
  const names = path.split('/').slice(0, -1);
  for (let i = 1; i <= names.length; i++) {
    const relative = names.slice(0, i).join('/');
    const [dir] = await source.resolve(pivot === '' ? relative : `${pivot}/${relative}`, what);
    if (dir?.type === 'directory') parents.push({ ...dir, path: relative });
  }
  return { path, parents };
}

/** ADD's sources from the network: a git repository (see builder/git.ts), or any other HTTP(S) URL, a file to download. */
const isGit = (op: Extract<Operation, { kind: 'copy' }>, source: string): boolean => op.add && isGitUrl(source);
const isUrl = (op: Extract<Operation, { kind: 'copy' }>, source: string): boolean => op.add && /^https?:\/\//.test(source) && !isGitUrl(source);

/**
 * The targets resolved for each step's input: a COPY that copyAsLayer cannot make hands the same input to
 * runCopy, which then resolves nothing again (the owner's lookup in the image, the sources, the destination).
 */
const resolvedTargets = new WeakMap<CopyInput, Promise<CopyTarget | undefined>>();

/** The copy's target; undefined when the image is not mounted and only a mount can tell (a --chown's user, a destination through a symlink). */
function copyTarget(op: Extract<Operation, { kind: 'copy' }>, input: CopyInput): Promise<CopyTarget | undefined> {
  let target = resolvedTargets.get(input);
  if (!target) {
    target = resolveCopyTarget(op, input);
    resolvedTargets.set(input, target);
  }
  return target;
}

async function resolveCopyTarget(op: Extract<Operation, { kind: 'copy' }>, input: CopyInput): Promise<CopyTarget | undefined> {
  const { rootfs, source, what } = input;
  if (input.unmounted && op.chown !== undefined) return undefined;
  const ownerIds = await owner(rootfs, op.chown, what);
  const tops: ContextEntry[] = [];
  const kept = op.parents ? new Map<ContextEntry, KeptPath>() : undefined;
  for (const name of op.sources) {
    if (isUrl(op, name) || isGit(op, name)) continue;
    const found = await source.resolve(name, what);
    tops.push(...found);
    if (kept) for (const top of found) kept.set(top, await keptPath(source, top, pivotOf(name), what));
  }
  const count = tops.length + op.inline.length + op.sources.filter((s) => isUrl(op, s) || isGit(op, s)).length;
  const intoDirectory = op.destinationIsDir || count > 1 || (count === 1 && tops[0]?.type === 'directory') || isDirectoryIn(input, op.destination);
  if (intoDirectory === undefined) return undefined;
  return { ownerIds, rootOwner: ownerIds ?? { uid: 0, gid: 0 }, tops, intoDirectory, destinationDir: intoDirectory ? op.destination : posix.dirname(op.destination), ...(kept ? { kept } : {}) };
}

/** A file time as a layer keeps it: whole seconds, clamped to SOURCE_DATE_EPOCH. */
const clampTime = (input: CopyInput, t: number): number => Math.floor(input.epoch !== undefined ? Math.min(t, input.epoch) : t);

/** A tar entry a COPY writes; a file's body is read from `from` when the tar is written. */
interface CopiedEntry {
  readonly header: TarHeader;
  readonly from?: string;
}

const withBody = ({ header, from }: CopiedEntry): TarInput => (from === undefined ? { header } : { header, body: header.size > 0 ? openWhenRead(from, header.size) : new Uint8Array(0) });

/** The entries (relative to the destination directory) that copy one source and what is below it. */
function copiedEntries(op: Extract<Operation, { kind: 'copy' }>, input: CopyInput, target: CopyTarget, top: ContextEntry, tree: readonly ContextEntry[]): CopiedEntry[] {
  const { source } = input;
  const entries: CopiedEntry[] = [];
  const keep = target.kept?.get(top);
  const base = keep ? keep.path : top.type === 'directory' ? '' : target.intoDirectory ? (top.as ?? posix.basename(top.path)) : posix.basename(op.destination);
  const ownerOf = (entry: ContextEntry) => target.ownerIds ?? (source.keepOwners ? { uid: entry.uid, gid: entry.gid } : { uid: 0, gid: 0 });
  // COPY --parents: the directories above the source come along, as they are in the source.
  for (const dir of keep?.parents ?? []) entries.push({ header: { path: `${dir.path}/`, type: 'directory', mode: dir.mode, ...ownerOf(dir), size: 0, mtime: clampTime(input, dir.mtime) } });
  /** The first name each multiply-linked file of this source was copied to: its other names link to it (BuildKit links within a source, not across). */
  const copiedAs = new Map<string, string>();
  for (const entry of tree) {
    const within = top.type === 'directory' ? entry.path.slice(top.path === '' ? 0 : top.path.length + 1) : base;
    // The source directory itself: its contents go into the destination (with --parents, into its kept path).
    const relative = keep && top.type === 'directory' ? [keep.path, within].filter((part) => part !== '').join('/') : within;
    if (relative === '') continue;
    if (op.excludes.some((pattern) => filepathMatch(pattern, relative) || filepathMatch(pattern, posix.basename(relative)))) continue;
    const ids = ownerOf(entry);
    const header = { path: relative, mode: op.chmod !== undefined ? op.chmod : entry.mode, ...ids, size: 0, mtime: clampTime(input, entry.mtime) };
    if (entry.type === 'directory') entries.push({ header: { ...header, path: `${relative}/`, type: 'directory' } });
    else if (entry.type === 'symlink') entries.push({ header: { ...header, mode: 0o777, type: 'symlink', linkname: entry.linkTarget ?? '' } });
    else if (entry.type === 'file') {
      const first = entry.inode === undefined ? undefined : copiedAs.get(entry.inode);
      if (first !== undefined) entries.push({ header: { ...header, type: 'hardlink', linkname: first } });
      else entries.push({ header: { ...header, type: 'file', size: entry.size }, from: source.absolute(entry) });
      if (entry.inode !== undefined && first === undefined) copiedAs.set(entry.inode, relative);
    }
  }
  return entries;
}

/** A layer cannot hold a file named .wh.*: whoever unpacks the layer would take it for a whiteout. */
function refuseWhiteoutNames(headers: Iterable<TarHeader>, what: string): void {
  for (const header of headers) {
    if (posix.basename(header.path).startsWith('.wh.')) throw new KilnError('INVALID_INPUT', `${what}: cannot copy ${JSON.stringify(header.path)}: names that start with .wh. mark deletions in image layers (OCI image spec), so no layer can hold such a file; rename it or leave it out (.dockerignore)`);
  }
}

/** COPY/ADD into a mounted root filesystem, with Docker's destination rules. */
export async function runCopy(op: Extract<Operation, { kind: 'copy' }>, input: CopyInput): Promise<void> {
  const { rootfs, source, what } = input;
  const target = await copyTarget(op, input);
  if (!target) throw new KilnError('INTERNAL', `${what}: a copy through the mount needs the mount`);
  const { rootOwner, intoDirectory } = target;
  const hostDir = await makeDirectories(rootfs, target.destinationDir, rootOwner);
  const entries: TarInput[] = [];
  const now = clampTime(input, Date.now() / 1000);
  for (const file of op.inline) {
    const name = intoDirectory ? file.name : posix.basename(op.destination);
    const body = Buffer.from(file.content);
    entries.push({ header: { path: name, type: 'file', mode: op.chmod ?? 0o644, ...rootOwner, size: body.length, mtime: now }, body });
  }
  // A git repository is fetched, its tree copied into the destination directory (root's, or --chown's).
  for (const url of op.sources.filter((s) => isGit(op, s))) {
    if (op.checksum !== undefined) throw new KilnError('UNSUPPORTED', `${what}: ADD --checksum of a git repository is not supported (name the commit in the URL: #<commit>)`);
    const work = await mkdtemp(join(tmpdir(), 'kiln-add-git-'));
    try {
      const tree = await fetchGit(parseGitUrl(url), join(work, 'repo'), `${what}: fetching`, op.keepGitDir === true);
      await applyLayer(hostDir, writeTar(treeEntries(tree)), { whiteouts: 'delete', what: `${what}: ${withoutCredentials(url)}`, owner: rootOwner });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  for (const url of op.sources.filter((s) => isUrl(op, s))) {
    const fetched = await download(url, op.checksum, what);
    const name = intoDirectory ? fetched.name : posix.basename(op.destination);
    entries.push({ header: { path: name, type: 'file', mode: op.chmod ?? 0o600, ...rootOwner, size: fetched.data.length, mtime: clampTime(input, fetched.mtime) }, body: fetched.data });
  }
  for (const top of target.tops) {
    if (op.add && top.type === 'file') {
      const archive = await archiveStream(source.absolute(top));
      if (archive) {
        // An archive unpacks into the destination as a directory, slash or not (Docker's and BuildKit's rule).
        const into = intoDirectory ? hostDir : await makeDirectories(rootfs, op.destination, rootOwner);
        await applyLayer(into, archive, { whiteouts: 'delete', what: `${what}: archive ${top.path}` });
        continue;
      }
    }
    entries.push(...copiedEntries(op, input, target, top, await source.tree(top)).map(withBody));
  }
  refuseWhiteoutNames(entries.map((e) => e.header), what);
  await applyLayer(hostDir, writeTar(entries), { whiteouts: 'delete', what });
}

/**
 * True when any of the directories below an overlay (`lowers`) has something at `rel`, a whiteout included.
 * Synchronous: a stat or two, cheaper than a thread-pool round trip each.
 */
function presentBelow(lowers: readonly string[], rel: string): boolean {
  return lowers.some((lower) => lstatIfAny(join(lower, rel)) !== undefined);
}

/** Orders layer paths (as their names) as a walk of the tree does: each directory's names sorted, a directory before what is in it. */
function walkOrder(x: readonly string[], y: readonly string[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i] as string;
    const q = y[i] as string;
    if (p !== q) return p < q ? -1 : 1;
  }
  return x.length - y.length;
}

/** The directories of a path made in an image, as the layer entries of its diff (see directoriesAsLayer). */
interface MadeDirectories {
  readonly directories: CopiedEntry[];
  /** The path with a slash after each directory. */
  readonly prefix: string;
  /** Whether any directory on the path is new. */
  readonly made: boolean;
}

/**
 * `dir`'s directories (mkdir -p) as what diffing the overlay's upper directory would give: those the image
 * has as overlay copies them up (their mode, owner and time; the one new names go into gets the time of
 * `now`) and those made (0755 less the umask, `owner`, `now`). Undefined when it is not that plain: a
 * symlink or a file on the way, a new name the layers below have (a whiteout), or the image not mounted and
 * only a mount would tell. `lowers` are the snapshot's lower directories, nearest first.
 */
async function directoriesAsLayer(input: Pick<CopyInput, 'rootfs' | 'unmounted'>, dir: string, owner: { readonly uid: number; readonly gid: number }, lowers: readonly string[], now: number): Promise<MadeDirectories | undefined> {
  const directories: CopiedEntry[] = [];
  let prefix = '';
  let made = false;
  for (const part of posix.normalize(`/${dir}`).split('/').filter((p) => p !== '')) {
    prefix += `${part}/`;
    const rel = prefix.slice(0, -1);
    const st = made ? undefined : input.unmounted ? input.unmounted(rel) : await lstat(join(input.rootfs, rel)).catch(() => undefined);
    if (st === 'unsure') return undefined;
    if (st) {
      if (!st.isDirectory()) return undefined; // a symlink to follow, or a file in the way (the mount's error)
      directories.push({ header: { path: prefix, type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) } });
      continue;
    }
    if (!made) {
      // Overlay marks a new directory opaque where a lower directory has anything of its name (a whiteout).
      if (presentBelow(lowers, rel)) return undefined;
      touchLast(directories, now);
      made = true;
    }
    directories.push({ header: { path: prefix, type: 'directory', mode: 0o755 & ~process.umask(), ...owner, size: 0, mtime: now } });
  }
  return { directories, prefix, made };
}

/** The last of `directories`, which new names go into, gets the time of `now` (overlay copied it up with its own). */
function touchLast(directories: CopiedEntry[], now: number): void {
  const last = directories.at(-1);
  if (last) directories[directories.length - 1] = { header: { ...last.header, mtime: now } };
}

/**
 * WORKDIR as the layer it makes, without a mount: the directories (see directoriesAsLayer), none when the
 * image has them all. Undefined when it is not that plain, or the USER's IDs need the image's files read.
 */
export async function mkdirAsLayer(op: Extract<Operation, { kind: 'mkdir' }>, input: Pick<CopyInput, 'rootfs' | 'unmounted'>, lowers: readonly string[]): Promise<(() => TarInput[]) | undefined> {
  if (op.user !== '') return undefined;
  const made = await directoriesAsLayer(input, op.path, { uid: 0, gid: 0 }, lowers, Math.floor(Date.now() / 1000));
  if (!made) return undefined;
  const entries = made.made ? made.directories.map(withBody) : [];
  return () => entries;
}

/**
 * A COPY as the layer it makes, without writing a file: what diffing the overlay's upper directory after
 * runCopy would give, entry for entry (so the same layer digest), made from the source and the image.
 * That is the copied entries under the destination, and the destination's directories (see
 * directoriesAsLayer, with the copy's owner). `input.rootfs` is the step's snapshot mounted, only read
 * here, or `input.unmounted` reads the image; `lowers` are its lower directories, nearest first.
 *
 * Returns a function making the entries (each call opens the files anew), or undefined when the copy is
 * not that plain: ADD, heredocs, a destination through a symlink, a name that the image has already (a
 * whiteout included) or that two sources both write, a name whose directory is left out, a path too long
 * or odd, or (not mounted) a --chown's user to look up. The caller copies through the mount then, and diffs.
 */
export async function copyAsLayer(op: Extract<Operation, { kind: 'copy' }>, input: CopyInput, lowers: readonly string[]): Promise<(() => TarInput[]) | undefined> {
  if (op.add || op.inline.length > 0) return undefined;
  const { rootfs, source, what } = input;
  const target = await copyTarget(op, input);
  if (!target) return undefined;
  const now = Math.floor(Date.now() / 1000);
  const destination = await directoriesAsLayer(input, target.destinationDir, target.rootOwner, lowers, now);
  if (!destination) return undefined;
  const { directories, prefix, made } = destination;
  const trees = await Promise.all(target.tops.map(async (top) => source.tree(top)));
  const copied = target.tops.flatMap((top, i) => copiedEntries(op, input, target, top, trees[i] as ContextEntry[]));
  if (copied.length === 0) return undefined;
  refuseWhiteoutNames(copied.map((e) => e.header), what);
  if (!made) touchLast(directories, now);
  const seen = new Set<string>();
  const copiedDirs = new Set<string>();
  const names = (path: string): string[] => path.replace(/\/$/, '').split('/');
  const entries = directories.map((entry) => ({ entry, names: names(entry.header.path) }));
  for (const { header, from } of copied) {
    const rel = header.path.replace(/\/$/, '');
    const parts = rel.split('/');
    if (seen.has(rel) || parts.some((p) => p === '' || p === '.' || p === '..' || (p.length > NAME_MAX / 3 && Buffer.byteLength(p) > NAME_MAX))) return undefined;
    // A name whose directory is not copied (.dockerignore leaves it out, keeping what is below): the tar's
    // apply makes that directory its own way.
    if (parts.length > 1 && !copiedDirs.has(rel.slice(0, rel.lastIndexOf('/')))) return undefined;
    seen.add(rel);
    if (header.type === 'directory') copiedDirs.add(rel);
    const path = prefix + rel;
    if (MOUNT_POINTS.has(path) || Buffer.byteLength(rootfs) + 1 + Buffer.byteLength(path) > PATH_MAX) return undefined;
    if (!made && parts.length === 1 && presentBelow(lowers, path)) return undefined;
    const moved = { ...header, path: prefix + header.path, ...(header.type === 'hardlink' ? { linkname: prefix + (header.linkname ?? '') } : {}) };
    entries.push({ entry: from === undefined ? { header: moved } : { header: moved, from }, names: names(moved.path) });
  }
  // One source's entries come in walk order already; several sources' need sorting.
  if (entries.some((e, i) => i > 0 && walkOrder((entries[i - 1] as typeof e).names, e.names) > 0)) entries.sort((a, b) => walkOrder(a.names, b.names));
  // A hardlink must follow the file it names, as a walk of the upper directory finds them.
  const files = new Set<string>();
  for (const { entry: { header } } of entries) {
    if (header.type === 'file') files.add(header.path);
    else if (header.type === 'hardlink' && !files.has(header.linkname ?? '')) return undefined;
  }
  const ordered = entries.map((e) => e.entry);
  return () => ordered.map(withBody);
}

/** WORKDIR: the directory exists afterwards; those it makes are the USER's, as BuildKit makes them. */
export async function runMkdir(op: Extract<Operation, { kind: 'mkdir' }>, rootfs: string, what: string): Promise<void> {
  await makeDirectories(rootfs, op.path, (await owner(rootfs, op.user === '' ? undefined : op.user, what)) ?? { uid: 0, gid: 0 });
}

export interface ExecInput {
  readonly rootfs: string;
  readonly bundle: string;
  readonly runtime: RuntimeName;
  readonly what: string;
  /** Where a mount's files come from (context directory, another stage's mounted tree). */
  readonly mountSource: (mount: ResolvedMount) => Promise<string>;
  readonly cacheDir: (mount: ResolvedMount) => Promise<string>;
  readonly secrets: ReadonlyMap<string, string>;
  readonly output: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** `--add-host`: more lines of the step's /etc/hosts. */
  readonly extraHosts: readonly ExtraHost[];
  /** `--ulimit`: the step's rlimits. */
  readonly ulimits: readonly Ulimit[];
  /** `--ssh`: the agents' sockets by id, for ssh mounts. */
  readonly sshAgents: ReadonlyMap<string, string>;
  /** `--shm-size`: /dev/shm's size in bytes (0: Docker's 64 MiB). */
  readonly shmSize: number;
  /** Aborted when the build is cancelled: the step's container is killed. */
  readonly signal?: AbortSignal;
}

/** A host name and its address, for /etc/hosts (`--add-host HOST:IP`). */
export interface ExtraHost {
  readonly host: string;
  readonly address: string;
}

/** The id of a secret mount (`--mount=type=secret`): its own, else its target's file name, as BuildKit has it. */
export function secretId(mount: ResolvedMount): string {
  return mount.id ?? posix.basename(mount.target);
}

/** The host's /etc/resolv.conf, empty when it has none. */
function hostResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

/**
 * RUN: the command in the runtime on the mounted tree, with its mounts. Mount points that the runtime
 * had to create (for secrets, caches, binds) are removed afterwards, so they never reach the layer.
 * A non-zero exit is a FAILED error with the code.
 */
export async function runExec(op: Extract<Operation, { kind: 'exec' }>, input: ExecInput): Promise<void> {
  const { rootfs, bundle } = input;
  // A few small files on the step's path to its container: synchronous calls take tens of µs where each
  // promise's round trip through the thread pool took up to milliseconds on a busy machine.
  mkdirSync(bundle, { recursive: true });
  const files = { hosts: join(bundle, 'hosts'), resolvConf: join(bundle, 'resolv.conf'), hostname: join(bundle, 'hostname') };
  const hostname = 'buildkitsandbox';
  // BuildKit's /etc/hosts of a RUN step, with --add-host's lines after.
  writeFileSync(files.hosts, `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n${input.extraHosts.map((h) => `${h.address}\t${h.host}\n`).join('')}`);
  writeFileSync(files.resolvConf, op.network === 'none' ? '' : hostResolvConf());
  writeFileSync(files.hostname, `${hostname}\n`);
  const extraMounts: { destination: string; type: string; source: string; options: string[] }[] = [];
  const created: string[] = [];
  const proxies: { close(): Promise<void> }[] = [];
  const remember = (target: string): void => {
    // The topmost missing path component is what the runtime will create; remember it for removal.
    let path = target;
    let missing: string | undefined;
    while (path !== '/' && !lstatIfAny(resolveInRoot(rootfs, path))) {
      missing = path;
      path = posix.dirname(path);
    }
    if (missing !== undefined) created.push(missing);
  };
  let exitCode: number;
  // From the first ssh mount on, its agent proxies listen: they close when the step ends, however it ends.
  try {
    for (const mount of op.mounts) {
      remember(mount.target);
      if (mount.type === 'tmpfs') {
        extraMounts.push({ destination: mount.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] });
      } else if (mount.type === 'secret') {
        const id = secretId(mount);
        const file = input.secrets.get(id);
        if (file === undefined) {
          if (mount.required) throw new KilnError('NOT_FOUND', `${input.what}: secret ${id} is required; pass it with --secret id=${id},src=FILE`);
          continue;
        }
        extraMounts.push({ destination: mount.target, type: 'bind', source: file, options: ['rbind', 'ro'] });
      } else if (mount.type === 'ssh') {
        const agentId = mount.id ?? 'default';
        const agent = input.sshAgents.get(agentId);
        if (agent === undefined) {
          if (mount.required) throw new KilnError('NOT_FOUND', `${input.what}: ssh agent ${agentId} is required; pass it with --ssh ${agentId}[=SOCKET|KEY]`);
          continue;
        }
        const socket = join(bundle, `ssh-${proxies.length}.sock`);
        // Imported here: it loads node:net, which only a step with an ssh mount needs.
        const { agentProxy } = await import('./ssh-agent.js');
        proxies.push(await agentProxy(agent, socket, { uid: mount.uid ?? 0, gid: mount.gid ?? 0, mode: mount.mode ?? 0o600 }));
        extraMounts.push({ destination: mount.target, type: 'bind', source: socket, options: ['rbind', 'ro'] });
      } else if (mount.type === 'cache') {
        extraMounts.push({ destination: mount.target, type: 'bind', source: await input.cacheDir(mount), options: ['rbind', mount.readonly ? 'ro' : 'rw'] });
      } else {
        extraMounts.push({ destination: mount.target, type: 'bind', source: await input.mountSource(mount), options: ['rbind', mount.readonly === false ? 'rw' : 'ro'] });
      }
    }
    for (const script of op.scripts) {
      const file = join(bundle, `script-${randomHex(4)}`);
      await writeFile(file, script.content, { mode: 0o755 });
      extraMounts.push({ destination: `/dev/pipes/${script.name}`, type: 'bind', source: file, options: ['rbind', 'ro'] });
    }
    const spec = (await forStep(input.what, () => runtimeSpec({ Env: op.env, User: op.user, WorkingDir: op.cwd }, rootfs, files, {
      entrypoint: '',
      cmd: op.args,
      env: [],
      user: op.user,
      workdir: op.cwd,
      hostname,
      network: op.network === 'none' ? 'none' : 'host',
      ...(op.security === 'insecure' ? { privileged: true } : {}),
      ulimits: input.ulimits,
      shmSize: input.shmSize,
    }))) as { mounts: object[]; process: { user: { uid: number; gid: number } } };
    spec.mounts.push(...extraMounts);
    // The owner's pid in the ID: after a kill -9 of kiln, prune finds the runtime containers it left.
    const id = `${BUILD_CONTAINER_PREFIX}${process.pid}-${randomHex(6)}`;
    // A working directory the image lacks is made for the command's user, as BuildKit's executor does.
    await makeDirectories(rootfs, op.cwd, { uid: spec.process.user.uid, gid: spec.process.user.gid });
    // Imported here: a cached build never starts a runtime.
    const { spawnPiped } = await import('./spawn.js');
    exitCode = await runBundle(input.runtime, bundle, id, spec, { stdin: 'ignore', keepLogs: false, output: input.output, spawn: spawnPiped, ...(input.signal ? { signal: input.signal } : {}) });
  } finally {
    for (const proxy of proxies) await proxy.close();
    for (const path of created) {
      await rm(resolveInRoot(rootfs, path), { recursive: true, force: true }).catch((err: unknown) => {
        if (!isErrno(err, 'EBUSY')) throw err;
      });
    }
  }
  input.signal?.throwIfAborted();
  const command = op.args.join(' ');
  // A long command (a script in a heredoc) is cut: the message names the step, its line shows the rest.
  const shown = command.length > 4000 ? `${command.slice(0, 4000)}… (${command.length} characters)` : command;
  if (exitCode !== 0) throw new KilnError('FAILED', `${input.what}: the command ${JSON.stringify(shown)} returned a non-zero code: ${exitCode}`);
}
