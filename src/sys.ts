import { optionalAddon } from './addon.js';

/**
 * native/sys/sys.c: mount(2), umount2(2) and lgetxattr(2) as calls, where util-linux's mount and umount
 * and attr's getfattr cost a process each (a build step made three); and posix_spawn(3), cheaper than Node's fork. Each throws an Error whose `code`
 * is the errno's name.
 */
export interface SysAddon {
  /** Relative paths in `data` (overlay's lowerdir=…) resolve from `cwd`; the process's own stays. */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, cwd: string | null): void;
  umount(target: string, flags: number): void;
  /** The attribute's value, undefined when the file has none of that name. */
  getxattr(path: string, name: string): string | undefined;
  /** A directory's entries with their lstat, packed (see sys.c): one call for a whole directory. Absent from an addon built before it. */
  listdir?(this: void, path: string): Buffer;
  /**
   * posix_spawnp(3) of `file` with `args` (args[0] included), its stdio /dev/null but for the pipes
   * `flags` ask for (SPAWN_*); returns the pid, stdin's write end, stdout's and stderr's read ends (-1 for
   * those not asked for). Absent from an addon built before it.
   */
  spawn?(this: void, file: string, args: readonly string[], flags: number): [number, number, number, number];
  /**
   * Reads a spawned child's stdout and stderr (read ends from spawn, -1 for none; they are the call's to
   * close) to their end on a thread of its own, then reaps the child. `onEvent` gets (1 or 2, chunk) per
   * chunk in the order read, then once (0, exit code or -1 when killed, the killing signal or 0), or (-1,
   * errno) when the child cannot be waited for. Absent from an addon built before it.
   */
  watch?(this: void, pid: number, stdout: number, stderr: number, onEvent: WatchListener): void;
  /**
   * Everything below a directory, packed as listdir packs it with the path from there for each name,
   * depth first, each directory's entries by name; on the thread pool. Undefined when a name is not
   * UTF-8. Absent from an addon built before it.
   */
  walk?(this: void, path: string): Promise<Buffer | undefined>;
  /**
   * The hex SHA-256 of a string (UTF-8), bytes, or a list of those one after another, through the OpenSSL
   * Node links. Absent from an addon built before it, and where this Node exports no SHA-256.
   */
  sha256?(this: void, data: string | Uint8Array | readonly (string | Uint8Array)[]): string;
  /** The same piece by piece: a state (a Buffer: a copy hashes on apart), data added to it, its hex digest (which spends it). */
  sha256Start?(this: void): Buffer;
  sha256Add?(this: void, state: Buffer, data: string | Uint8Array): void;
  sha256End?(this: void, state: Buffer): string;
  /**
   * The entries of a tar lying uncompressed at [start, end) of an open file, as kiln analyze lists a
   * layer, read on the thread pool; as columns, names and links (tarscan.c), or undefined for a tar it leaves to the
   * JavaScript scan (anything but the usual headers and clean names). Absent from an addon built before it.
   */
  tarscan?(this: void, fd: number, start: number, end: number): Promise<[columns: Buffer, names: Buffer, links: Buffer] | undefined>;
  /**
   * kiln analyze's index of paths, dive's figures and the stacked layers over the layers tarscan read
   * (figures.c), computed on the thread pool; undefined when out of memory. Absent from an addon built before it.
   */
  figures?(this: void, layers: readonly (readonly [Buffer, Buffer, Buffer])[], json: boolean, baseLayers: number): Promise<NativeFigures | undefined>;
  /** A tarscan's file list as kiln analyze's JSON has it (src/analyze/json.ts), made on the thread pool. Absent from an addon built before it. */
  tarjson?(this: void, columns: Buffer, names: Buffer, links: Buffer): Promise<Buffer>;
  /**
   * The SHA-256 of each range of a file (offset, length pairs), 32 bytes each one after another, on the
   * thread pool; undefined when a range runs past the file's end. Absent with sha256.
   */
  hashranges?(this: void, path: string, ranges: Float64Array): Promise<Buffer | undefined>;
  /**
   * A copy of the file in memory, executable, sealed against any change (runc's and crun's seals) and
   * close-on-exec; returns its descriptor. Absent from an addon built before it.
   */
  sealedcopy?(this: void, path: string): number;
  /**
   * The kernel log (/dev/kmsg) opened for reading without blocking, positioned after its last record:
   * reads return what the kernel logs from now on. Absent from an addon built before it.
   */
  kmsgend?(this: void): number;
  /** Ends the process with `code` at once (_exit): no exit handler runs, no stream is flushed. Absent from an addon built before it. */
  exitnow?(this: void, code: number): never;
}

/** What figures computes (figures.c says what each array holds). */
export interface NativeFigures {
  readonly parent: Int32Array;
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  readonly sources: Int32Array;
  readonly layerSizes: Float64Array;
  readonly dive: Float64Array;
  readonly references: Float64Array;
  readonly versionLayer: Int32Array;
  readonly versionIndex: Int32Array;
  readonly versionNode: Int32Array;
  readonly endLayer: Int32Array;
  readonly endDeleted: Uint8Array;
  readonly endBy: Int32Array;
  readonly dead: Int32Array;
  readonly deadBytes: Float64Array;
  readonly live: Int32Array;
  readonly liveBytes: Float64Array;
  readonly layerBytes: Float64Array;
  readonly wasted: Promise<{ readonly order: Int32Array; readonly json?: Buffer }>;
  readonly reclaimable: Float64Array;
  readonly removed: Float64Array;
  readonly largestFiles: Int32Array;
  readonly largestDirectories: Int32Array;
  readonly largestDirectoryBytes: Float64Array;
  readonly needed: Int32Array;
  readonly findable: Int32Array;
}

/** What watch tells: a chunk of output (stream 1 or 2, the chunk), the exit (0, code, signal), or a failed wait (-1, errno). */
export type WatchListener = (stream: number, chunkOrCode: Buffer | number, signal: number) => void;

/** mount(2)'s and umount2(2)'s flags, from <sys/mount.h>. */
export const MS_RDONLY = 1;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MNT_DETACH = 2;

/** spawn's flags (sys.c): a pipe to the child's stdin; pipes from its stdout and stderr; a new session (Node's `detached`). */
export const SPAWN_STDIN_PIPE = 1;
export const SPAWN_OUTPUT_PIPES = 2;
export const SPAWN_SESSION = 4;

/**
 * The addon `npm ci` builds from native/sys (it needs no library, only a C compiler and Node's headers);
 * undefined when it was not built or cannot load: the commands run then.
 */
export const sys = optionalAddon<SysAddon>(new URL('../../native/sys/build/Release/sys.node', import.meta.url));
