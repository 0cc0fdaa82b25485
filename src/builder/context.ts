/**
 * The build context: a directory as the builder sees it through `.dockerignore`. It is walked once per
 * build (lstat only); file contents are read only when a COPY needs them or their digest, and a digest
 * is trusted from the stat cache while the file's dev/inode/size/mtime/ctime are unchanged, so an
 * unchanged large context is not re-read. Without a .dockerignore, native/sys walks the whole context in
 * one call into one packed listing, and a COPY's checksum is remembered with the digest of its sources'
 * listing: while that listing is unchanged (every name, mode, owner and stat), the checksum is reused
 * without an object, a lookup or a line hashed per file.
 */
import { constants, createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, chown, copyFile, link, mkdir, symlink } from 'node:fs/promises';
import { join, normalize, posix } from 'node:path';
import type { BigIntStats } from 'node:fs';
import { KilnError, isErrno, readTextIfPresent } from '../errors.js';
import { type IgnoreState, PatternMatcher, cleanPath, dockerignorePatterns, filepathMatch } from '../dockerfile/dockerignore.js';
import { sha256, sha256Stream, type Digest } from '../oci/digest.js';
import { sys } from '../sys.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface ContextEntry {
  /** Relative to the context root, '/'-separated; '' is the root itself. */
  readonly path: string;
  readonly type: EntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly linkTarget?: string;
  /** dev:ino:size:mtime_ns:ctime_ns, the stat cache's key. */
  readonly stat: string;
  /** dev:ino of a file with more than one name: a COPY keeps such names one file, as Docker does. */
  readonly inode?: string;
  /** The name a COPY source gave it when that was a symlink to it (the copy keeps the link's name). */
  readonly as?: string;
}

/** The store's memory of file digests by absolute path, each with the stat it was taken at. */
export interface DigestCache {
  /** Every file remembered below a directory (read once per build, in one query). */
  under(dir: string): Map<string, { stat: string; digest: Digest }>;
  /** Remembers many files at once (one transaction). */
  put(files: readonly { path: string; stat: string; digest: Digest }[]): void;
  /** The checksum last taken of some sources (`sources` names them), with the digest of their listing then. */
  checksumOf(sources: string): { listing: Digest; checksum: Digest } | undefined;
  /** Remembers the checksum of some sources at a listing, in place of the one before. */
  putChecksum(sources: string, listing: Digest, checksum: Digest): void;
}

function entryType(st: BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** A context entry from a bigint lstat (and the link target of a symlink). */
function describe(path: string, st: BigIntStats, linkTarget?: string): ContextEntry {
  // Built field by field, without spreads: a context of 20,000 files makes 20,000 of these per build.
  const entry: Mutable<ContextEntry> = {
    path,
    type: entryType(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtime: Number(st.mtimeMs) / 1000,
    stat: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`,
  };
  if (linkTarget !== undefined) entry.linkTarget = linkTarget;
  if (st.nlink > 1n && st.isFile()) entry.inode = `${st.dev}:${st.ino}`;
  return entry;
}

const S_IFMT = 0o170000;
const TYPES: ReadonlyMap<number, EntryType> = new Map([[0o100000, 'file'], [0o040000, 'directory'], [0o120000, 'symlink']]);

/** The little-endian u16 at `at` (indexing: Buffer's readUInt16LE checks its arguments, a cost per entry of a long listing). */
const u16 = (packed: Buffer, at: number): number => (packed[at] as number) | ((packed[at + 1] as number) << 8);

/** Where the packed entry (see sys.c's listdir) at `at` ends. */
const recordEnd = (packed: Buffer, at: number): number => at + 38 + u16(packed, at + 32) + u16(packed, at + 34) + u16(packed, at + 36);

/** The packed entry at `at` as an entry, `prefix` before its name. */
function unpackEntry(packed: Buffer, at: number, prefix: string): ContextEntry {
  const mode = packed.readUInt32LE(at);
  const nameEnd = at + 38 + packed.readUInt16LE(at + 32);
  const statEnd = nameEnd + packed.readUInt16LE(at + 34);
  const type = TYPES.get(mode & S_IFMT) ?? 'other';
  const stat = packed.toString('latin1', nameEnd, statEnd);
  const entry: Mutable<ContextEntry> = {
    path: prefix + packed.toString('utf8', at + 38, nameEnd),
    type,
    mode: mode & 0o7777,
    uid: packed.readUInt32LE(at + 4),
    gid: packed.readUInt32LE(at + 8),
    size: packed.readDoubleLE(at + 16),
    mtime: packed.readDoubleLE(at + 24),
    stat,
  };
  if (type === 'symlink') entry.linkTarget = packed.toString('utf8', statEnd, statEnd + packed.readUInt16LE(at + 36));
  if (type === 'file' && packed.readUInt32LE(at + 12) > 1) entry.inode = stat.slice(0, stat.indexOf(':', stat.indexOf(':') + 1));
  return entry;
}

/** Whether the packed entry at `at` is named `path` (as UTF-8 bytes), or lies below it when `path` ends in '/'. */
function namedAt(packed: Buffer, at: number, path: Buffer): boolean {
  const length = u16(packed, at + 32);
  if (path[path.length - 1] === 0x2f ? length <= path.length : length !== path.length) return false;
  for (let i = 0; i < path.length; i++) if (packed[at + 38 + i] !== path[i]) return false;
  return true;
}

/** The length of the entries below the walk's directory record at `at` (0 for any other entry); undefined when not known. */
function belowDirectory(packed: Buffer, at: number): number | undefined {
  if ((packed.readUInt32LE(at) & S_IFMT) !== 0o040000) return 0;
  const length = packed.readUInt32LE(at + 12);
  return length === 0xffffffff ? undefined : length;
}

/** Whether `path` lies below the packed entry at `at` (its name and a '/' start it). */
function startsWithDirectory(path: Buffer, packed: Buffer, at: number): boolean {
  const length = u16(packed, at + 32);
  if (length >= path.length || path[length] !== 0x2f) return false;
  for (let i = 0; i < length; i++) if (packed[at + 38 + i] !== path[i]) return false;
  return true;
}

/**
 * A directory's entries (`prefix` before their names), sorted by name, each described by its lstat.
 * With native/sys (`native`), one call reads the whole directory and its stats (see sys.c's listdir);
 * without it, a synchronous readdir and lstat per entry (a thread-pool round trip each would cost more).
 * Both give the same entries; a name that is not valid UTF-8 takes the JS way, which fails on it as before.
 */
export function listDirectory(native: boolean): (dir: string, prefix: string) => ContextEntry[] {
  const listdir = native ? sys()?.listdir : undefined;
  const byName = (a: ContextEntry, b: ContextEntry): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const portable = (dir: string, prefix: string): ContextEntry[] =>
    readdirSync(dir)
      .sort()
      .map((name) => {
        const full = `${dir}/${name}`;
        const st = lstatSync(full, { bigint: true });
        return describe(prefix + name, st, st.isSymbolicLink() ? readlinkSync(full) : undefined);
      });
  if (!listdir) return portable;
  return (dir, prefix) => {
    const packed = listdir(dir);
    const out: ContextEntry[] = [];
    for (let at = 0; at < packed.length; at = recordEnd(packed, at)) {
      const entry = unpackEntry(packed, at, prefix);
      const nameEnd = at + 38 + packed.readUInt16LE(at + 32);
      // U+FFFD stands in for bytes that are not UTF-8: such a name cannot be opened as decoded.
      if (entry.path.includes('\uFFFD') && !Buffer.from(entry.path.slice(prefix.length)).equals(packed.subarray(at + 38, nameEnd))) return portable(dir, prefix);
      out.push(entry);
    }
    return out.sort(byName);
  };
}

/**
 * The entries below `top` (the root's entry first), leaving out what `ignore` excludes, directory by
 * directory (see listDirectory), giving the loop a turn through `pause`; what it left out goes to `hidden`.
 */
async function walkEntries(top: string, rootEntry: ContextEntry, ignore: PatternMatcher, native: boolean, pause: () => Promise<void>, hidden: string[]): Promise<Map<string, ContextEntry>> {
  const filtering = ignore.patterns.length > 0;
  const entries = new Map<string, ContextEntry>();
  entries.set('', rootEntry);
  const list = listDirectory(native);
  const walk = async (dir: string, prefix: string, above: IgnoreState | undefined): Promise<void> => {
    for (const entry of list(dir, prefix)) {
      await pause();
      const { path } = entry;
      const state = filtering ? ignore.stateOf(path, above) : undefined;
      const excluded = state?.excluded ?? false;
      if (excluded) hidden.push(path);
      if (entry.type === 'directory') {
        if (state !== undefined && ignore.skipsBelow(path, state)) continue;
        if (!excluded) entries.set(path, entry);
        await walk(`${dir}/${path.slice(prefix.length)}`, `${path}/`, state);
        continue;
      }
      if (!excluded) entries.set(path, entry);
    }
  };
  await walk(top, '', undefined);
  return entries;
}

/** A context as native/sys's walk gives it: the root's entry and the packed entries of all below it. */
interface Listing {
  readonly root: ContextEntry;
  readonly packed: Buffer;
}

/** The lstat of a build context's root: a KilnError when it is missing or not a directory. */
export function contextRoot(root: string): BigIntStats {
  let rootStat: BigIntStats;
  try {
    rootStat = lstatSync(root, { bigint: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new KilnError('NOT_FOUND', `the build context ${root} does not exist`);
    throw err;
  }
  if (!rootStat.isDirectory()) throw new KilnError('INVALID_ARGUMENT', `the build context ${root} is not a directory: give the directory that holds the Dockerfile and the files it copies (unpack an archive first)`);
  return rootStat;
}

const hasGlob = (path: string): boolean => /[*?[]/.test(path);

/**
 * Compiling a long .dockerignore, walking a big context and hashing its files are long synchronous
 * work; inside `kiln serve` they share the event loop with every other request. Awaiting the returned
 * function gives the loop a turn whenever the work has held it for PAUSE_MS, so `/_ping` and SIGTERM
 * are answered while a build reads its context.
 */
const PAUSE_MS = 20;
function pauser(): () => Promise<void> {
  // Date.now, not performance.now: the global `performance` loads perf_hooks (some ms of a cached build).
  let since = Date.now();
  return async () => {
    if (Date.now() - since < PAUSE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = Date.now();
  };
}

export class BuildContext {
  /** Files from the context become root's in the image (unless COPY --chown says otherwise). */
  readonly keepOwners = false;

  private constructor(
    readonly root: string,
    /** Every visible entry by path, parents before children; or the walk's listing, unpacked into them when first needed. */
    walked: Map<string, ContextEntry> | Listing,
    private readonly ignore: PatternMatcher,
    private readonly ignoreFile: string | undefined,
    private readonly cache: DigestCache,
    /** What .dockerignore left out, walk order: a bind mount below none of it can show the directory itself. */
    private readonly hidden: readonly string[],
  ) {
    this.prefix = `${normalize(root).replace(/\/+$/, '')}/`;
    if (walked instanceof Map) this.visible = walked;
    else this.listing = walked;
  }

  private visible: Map<string, ContextEntry> | undefined;
  /** The whole context as native/sys's walk packed it (there is no .dockerignore then). */
  private readonly listing: Listing | undefined;
  /** Where in `listing` an entry that `find` gave and all below it lie. */
  private readonly spans = new WeakMap<ContextEntry, readonly [number, number]>();

  /** Every visible entry by path, parents before children. */
  private get entries(): ReadonlyMap<string, ContextEntry> {
    this.visible ??= new Map([...this.unpacked()].map((e) => [e.path, e]));
    return this.visible;
  }

  /** The listing's entries in walk order, the root first. */
  private *unpacked(): Generator<ContextEntry> {
    const { root, packed } = this.listing as Listing;
    yield root;
    for (let at = 0; at < packed.length; at = recordEnd(packed, at)) yield unpackEntry(packed, at, '');
  }

  /**
   * The listing's entry at `path` (not unpacking the others), noting the span of it and all below it.
   * A directory's record gives the length of what lies below it (see sys.c's walk): the search steps
   * over every directory that is not on the path.
   */
  private find(listing: Listing, path: string): ContextEntry | undefined {
    const { root, packed } = listing;
    if (path === '') {
      this.spans.set(root, [0, packed.length]);
      return root;
    }
    const name = Buffer.from(path);
    for (let at = 0, end = packed.length; at < end; ) {
      const next = recordEnd(packed, at);
      const below = belowDirectory(packed, at);
      if (namedAt(packed, at, name)) {
        let last = next + (below ?? 0);
        if (below === undefined) {
          const under = Buffer.from(`${path}/`);
          while (last < packed.length && namedAt(packed, last, under)) last = recordEnd(packed, last);
        }
        const entry = unpackEntry(packed, at, '');
        this.spans.set(entry, [at, last]);
        return entry;
      }
      if (below === undefined) at = next; // through a directory whose length is not known, entry by entry
      else if (startsWithDirectory(name, packed, at)) [at, end] = [next, next + below]; // into one the path lies in
      else at = next + below; // over anything else
    }
    return undefined;
  }

  /** The root with one trailing '/': an entry's absolute path is this and its path (what join would make, without its cost per file). */
  private readonly prefix: string;
  /** The stat cache's digests below the root, read when a digest is first needed. */
  private known: Map<string, { stat: string; digest: Digest }> | undefined;

  /**
   * Walks `root`, leaving out what `.dockerignore` excludes. The ignore file is `<dockerfile>.dockerignore`
   * beside the Dockerfile when that exists (BuildKit's rule), else `.dockerignore` at the root. `native`
   * false walks in JavaScript even where native/sys could (for tests: both walks give the same context).
   */
  static async open(root: string, cache: DigestCache, dockerfilePath?: string, native = true): Promise<BuildContext> {
    return (await BuildContext.begin(root, cache, dockerfilePath, native)).walked;
  }

  /**
   * `open` in two parts: checks the root and reads the ignore file now (their errors come first), and
   * starts the walk, whose context (or failure) `walked` gives; the caller may prepare other work
   * meanwhile (native/sys's walk runs on the thread pool).
   */
  static async begin(root: string, cache: DigestCache, dockerfilePath?: string, native = true): Promise<{ walked: Promise<BuildContext> }> {
    const rootStat = contextRoot(root);
    const pause = pauser();
    let ignoreFile: string | undefined;
    let text = '';
    for (const candidate of [dockerfilePath ? `${dockerfilePath}.dockerignore` : undefined, join(root, '.dockerignore')]) {
      if (candidate === undefined) continue;
      const read = readTextIfPresent(candidate);
      if (read !== undefined) {
        ignoreFile = candidate;
        text = read;
        break;
      }
    }
    const ignore = await PatternMatcher.compile(dockerignorePatterns(text), pause);
    const filtering = ignore.patterns.length > 0;
    // Paths joined by hand below the normalized root: join's normalizing costs more than the lstat.
    const top = normalize(root).replace(/(.)\/+$/, '$1');
    const walked = (async (): Promise<BuildContext> => {
      // What .dockerignore leaves out is decided per entry, in JavaScript, as the walk goes: natively, only without one.
      const walkAll = native && !filtering ? sys()?.walk : undefined;
      const packed = walkAll && (await walkAll(top));
      if (packed) return new BuildContext(root, { root: describe('', rootStat), packed }, ignore, ignoreFile, cache, []);
      const hidden: string[] = [];
      return new BuildContext(root, await walkEntries(top, describe('', rootStat), ignore, native, pause, hidden), ignore, ignoreFile, cache, hidden);
    })();
    // Its failure is the caller's, when it awaits `walked`; one that never does (it failed first) leaves no unhandled rejection.
    walked.catch(() => undefined);
    return { walked };
  }

  /** A COPY/ADD source as written → its cleaned context path ('' for the root); `..` cannot climb out. */
  static sourcePath(source: string): string {
    const cleaned = cleanPath(`/${source}`);
    return cleaned === '/' ? '' : cleaned.slice(1);
  }

  /**
   * The entries a source names: itself, or every match of a wildcard. A missing source is an error that
   * says which .dockerignore rule hid it, when one did.
   */
  resolve(source: string, where: string): ContextEntry[] {
    const path = BuildContext.sourcePath(source);
    const found = this.listing && !hasGlob(path) ? this.find(this.listing, path) : undefined;
    if (found && found.type !== 'symlink') return [found];
    if (hasGlob(path)) {
      const matches = [...this.entries.values()].filter((e) => e.path !== '' && filepathMatch(path, e.path));
      if (matches.length === 0) throw new KilnError('NOT_FOUND', `${where}: no source files were specified: ${JSON.stringify(source)} matches nothing in the build context`);
      return matches.map((e) => this.follow(e, where));
    }
    const entry = this.entries.get(path);
    if (entry) return [this.follow(entry, where)];
    const rule = this.ignore.patterns.length > 0 ? this.ignore.decidingPattern(path) : undefined;
    const hidden = rule !== undefined && !rule.startsWith('!') ? ` (it is excluded by the rule ${JSON.stringify(rule)} in ${this.ignoreFile ?? '.dockerignore'})` : '';
    throw new KilnError('NOT_FOUND', `${where}: ${JSON.stringify(source)} not found in the build context${hidden}`);
  }

  /** A source that is a symlink stands for what it points at inside the context (Docker follows it). */
  private follow(entry: ContextEntry, where: string): ContextEntry {
    let current = entry;
    for (let hops = 0; current.type === 'symlink'; hops++) {
      const target = current.linkTarget ?? '';
      const path = BuildContext.sourcePath(target.startsWith('/') ? target : `${posix.dirname(current.path)}/${target}`);
      const next = this.entries.get(path);
      if (!next || hops > 40) throw new KilnError('NOT_FOUND', `${where}: the source ${JSON.stringify(entry.path)} is a symlink to ${JSON.stringify(target)}, which is not in the build context`);
      current = next;
    }
    return current === entry ? entry : { ...current, as: posix.basename(entry.path) };
  }

  /**
   * An entry and everything visible below it, parents first. The walk stored entries depth-first, so a
   * directory's descendants follow it in one run: no scan of the whole context per source.
   */
  tree(entry: ContextEntry): ContextEntry[] {
    if (entry.type !== 'directory') return [entry];
    if (entry.path === '') return this.ordered;
    const prefix = `${entry.path}/`;
    const start = (this.positions.get(entry.path) ?? -1) + 1;
    let end = start;
    while (end < this.ordered.length && (this.ordered[end] as ContextEntry).path.startsWith(prefix)) end++;
    return [entry, ...this.ordered.slice(start, end)];
  }

  /** Entries in walk order (the root first), and each one's place in it. */
  private get ordered(): ContextEntry[] {
    this.order ??= [...this.entries.values()];
    return this.order;
  }

  private get positions(): Map<string, number> {
    this.index ??= new Map(this.ordered.map((e, i) => [e.path, i]));
    return this.index;
  }

  private order: ContextEntry[] | undefined;
  private index: Map<string, number> | undefined;

  /**
   * The directory a bind mount of `entry` (RUN --mount=type=bind) shows: the context's own when nothing
   * below it is left out by .dockerignore; else, as BuildKit mounts only what its context sync sent, the
   * visible entries copied under `scratch` (a new directory; files hard-linked where the filesystem allows).
   */
  async mountable(entry: ContextEntry, scratch: string): Promise<string> {
    const prefix = entry.path === '' ? '' : `${entry.path}/`;
    if (entry.type !== 'directory' || !this.hidden.some((path) => path.startsWith(prefix))) return this.absolute(entry);
    const made: ContextEntry[] = [];
    for (const visible of this.tree(entry)) {
      const target = join(scratch, visible.path.slice(prefix.length));
      const source = this.absolute(visible);
      if (visible.type === 'directory') {
        await mkdir(target);
        made.push(visible);
      } else if (visible.type === 'symlink') await symlink(visible.linkTarget ?? '', target);
      else {
        await link(source, target).catch(async (err: unknown) => {
          if (!isErrno(err, 'EXDEV') && !isErrno(err, 'EPERM')) throw err;
          await copyFile(source, target, constants.COPYFILE_FICLONE);
          await chown(target, visible.uid, visible.gid);
        });
      }
    }
    // Directories as the context has them, once their entries are in (a read-only one could not take them).
    for (const directory of made.reverse()) {
      const target = join(scratch, directory.path.slice(prefix.length));
      await chown(target, directory.uid, directory.gid);
      await chmod(target, directory.mode & 0o7777);
    }
    return scratch;
  }

  absolute(entry: ContextEntry): string {
    return entry.path === '' ? join(this.root, '') : this.prefix + entry.path;
  }

  /**
   * The sha256 of a file's content, from the stat cache when the file is unchanged; a digest taken here
   * joins `hashed`, for the caller to remember.
   */
  private async fileDigest(entry: ContextEntry, hashed: { path: string; stat: string; digest: Digest }[]): Promise<Digest> {
    const absolute = this.absolute(entry);
    this.known ??= this.cache.under(this.prefix);
    const cached = this.known.get(absolute);
    if (cached?.stat === entry.stat) return cached.digest;
    let digest: Digest;
    if (entry.size <= 1 << 20) digest = sha256(readFileSync(absolute));
    else {
      const hash = sha256Stream();
      for await (const chunk of createReadStream(absolute, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
      digest = hash.digest();
    }
    this.known.set(absolute, { stat: entry.stat, digest });
    hashed.push({ path: absolute, stat: entry.stat, digest });
    return digest;
  }

  /**
   * For sources that all came from `find`: what names them in the stat cache, and the digest of their
   * listing (each entry's path, type, mode, owner, link target and stat: everything their checksum is
   * taken from, with the stat standing for the content as in the stat cache); else undefined.
   */
  private listingOf(entries: readonly ContextEntry[]): { sources: string; listing: Digest } | undefined {
    if (!this.listing) return undefined;
    const parts: (string | Buffer)[] = ['kiln context listing 1\n'];
    for (const top of entries) {
      const span = this.spans.get(top);
      if (!span) return undefined;
      parts.push(`source ${top.path}\0${top.type}\0${top.mode}\0${top.uid}:${top.gid}\0${top.stat}\0${top.linkTarget ?? ''}\n`);
      parts.push(this.listing.packed.subarray(span[0], span[1]));
    }
    return { sources: [this.prefix, ...entries.map((e) => e.path)].join('\0'), listing: sha256(parts) };
  }

  /**
   * The content identity of some sources for the build cache: for every entry, its path relative to the
   * source, type, mode, owner, link target and content digest; never its mtime. Reused from the stat
   * cache while the sources' listing is the one it was taken at.
   */
  async checksum(entries: readonly ContextEntry[]): Promise<Digest> {
    const listed = this.listingOf(entries);
    const known = listed && this.cache.checksumOf(listed.sources);
    if (known && known.listing === listed?.listing) return known.checksum;
    const parts: string[] = [];
    const pause = pauser();
    if (this.listing && !this.visible) {
      // Unpacked with pauses here rather than at once by `entries` (a large context holds the loop long).
      const visible = new Map<string, ContextEntry>();
      for (const entry of this.unpacked()) {
        await pause();
        visible.set(entry.path, entry);
      }
      this.visible ??= visible;
    }
    const hashed: { path: string; stat: string; digest: Digest }[] = [];
    for (const top of entries) {
      parts.push(`source ${top.path}\0`);
      for (const entry of this.tree(top)) {
        // Small files are read synchronously: a context of many of them must still let the loop turn.
        await pause();
        const content = entry.type === 'file' ? await this.fileDigest(entry, hashed) : (entry.linkTarget ?? '');
        parts.push(`${entry.path}\0${entry.type}\0${entry.mode}\0${entry.uid}:${entry.gid}\0${content}\n`);
      }
    }
    this.cache.put(hashed);
    const checksum = sha256(parts);
    if (listed) this.cache.putChecksum(listed.sources, listed.listing, checksum);
    return checksum;
  }
}
