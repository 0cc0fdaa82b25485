/**
 * Where a build's context comes from, as `docker build` takes it: a directory; `-`, stdin holding either a
 * context archive (tar, gzip or zstd) or a Dockerfile alone (an empty context); a git repository
 * (`https://…/repo.git#ref:dir`, `git@…`, `git://…`, `github.com/…`), fetched at the ref and read from
 * the directory; or an HTTP(S) URL of a context archive or of a Dockerfile alone. Anything but a directory
 * is made into a work directory of the store that lives as long as the build (see withBuildContext).
 * `kiln build PATH|-|URL` and `POST /build` (its body, or `remote=URL`) both come through here.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { fetchGit, isGitUrl, parseGitUrl, withoutCredentials } from '../builder/git.js';
import { getUrl } from '../builder/http.js';
import { KilnError } from '../errors.js';
import { randomHex } from '../random.js';
import { unpackContext } from './build-inputs.js';
import type { Engine } from './engine.js';

export type ContextSource =
  | { readonly kind: 'directory'; readonly path: string }
  | { readonly kind: 'stream'; readonly body: AsyncIterable<Uint8Array>; readonly what: string }
  | { readonly kind: 'url'; readonly url: string };

/** A build's context on disk, and the Dockerfile's text when the source was a Dockerfile alone. */
export interface BuildContextDir {
  readonly dir: string;
  /** The context is kiln's copy (not the user's directory): a Dockerfile path given with it is inside it. */
  readonly copied: boolean;
  readonly dockerfileText?: string;
}

/** A Dockerfile sent alone is small; more than this is not one. */
const MAX_DOCKERFILE_BYTES = 16 << 20;

/** The source `docker build`'s PATH argument names: `-`, a URL, or a directory. */
export function contextSource(argument: string, stdin: () => AsyncIterable<Uint8Array>): ContextSource {
  if (argument === '-') return { kind: 'stream', body: stdin(), what: 'stdin' };
  if (isGitUrl(argument) || /^https?:\/\//.test(argument)) return { kind: 'url', url: argument };
  return { kind: 'directory', path: argument };
}

/**
 * The Dockerfile of a context kiln made: its text when the source was a Dockerfile alone, else the file
 * `name` names inside the context (never outside it), shown in messages by that name, as Docker reads it.
 */
export function dockerfileInContext(context: BuildContextDir, name = 'Dockerfile'): { readonly text: string } | { readonly path: string; readonly display: string } {
  if (context.dockerfileText !== undefined) return { text: context.dockerfileText };
  const inside = posix.normalize(`/${name}`);
  return { path: join(context.dir, inside), display: inside.slice(1) };
}

/** Runs `build` with the context on disk; a context kiln made is removed when it ends, however it ends. */
export async function withBuildContext<T>(engine: Engine, source: ContextSource, build: (context: BuildContextDir) => Promise<T>): Promise<T> {
  if (source.kind === 'directory') return build({ dir: resolve(source.path), copied: false });
  // A build's work directory (its pid first): after a kill -9, system check names it and system prune removes it.
  const work = join(engine.store.paths.builds, `${process.pid}-context-${randomHex(6)}`);
  await mkdir(work, { recursive: true, mode: 0o700 });
  try {
    const context = join(work, 'context');
    await mkdir(context);
    if (source.kind === 'stream') return await build({ ...(await fromStream(engine, source.body, context, source.what)), copied: true });
    if (isGitUrl(source.url)) return await build({ dir: await fetchGit(parseGitUrl(source.url), join(work, 'repo'), 'the build context'), copied: true });
    return await build({ ...(await fromStream(engine, (await getUrl(source.url, undefined, `the build context ${withoutCredentials(source.url)}`)).body, context, withoutCredentials(source.url))), copied: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A context archive (unpacked into `dir`) or a Dockerfile alone (its text; the context stays empty), told apart by their first bytes as Docker does. */
async function fromStream(engine: Engine, body: AsyncIterable<Uint8Array>, dir: string, what: string): Promise<{ dir: string; dockerfileText?: string }> {
  const { peek } = await import('../layer/compression.js'); // loaded only for a context that is not a directory
  const { head, stream } = await peek(body, 512);
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  const zstd = head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
  const tar = head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
  if (head.subarray(0, 3).toString('latin1') === 'BZh' || head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    throw new KilnError('UNSUPPORTED', `the build context from ${what} is compressed with bzip2 or xz: kiln reads tar, gzip and zstd contexts (decompress it first, e.g. xz -dc ctx.tar.xz | kiln build -)`);
  }
  if (gzip || zstd || tar) {
    await unpackContext(engine, stream, dir);
    return { dir };
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of stream) {
    length += chunk.length;
    if (length > MAX_DOCKERFILE_BYTES) throw new KilnError('INVALID_INPUT', `${what} is neither a context archive (tar, gzip, zstd) nor a Dockerfile (more than ${MAX_DOCKERFILE_BYTES >> 20} MiB of text)`);
    chunks.push(chunk);
  }
  return { dir, dockerfileText: Buffer.concat(chunks).toString('utf8') };
}


