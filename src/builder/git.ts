/**
 * Git repositories as Docker names them (`https://…/repo.git#ref:dir`, `git@…`, `git://…`, `github.com/…`):
 * what a build context (engine/context-source.ts) and `ADD <git URL>` fetch. Git runs without prompts,
 * and a URL's credentials never reach a message.
 */
import { mkdir, realpath, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { KilnError } from '../errors.js';
import { execFileAsync } from '../exec-file.js';

/** Docker's rule (urlutil.IsGitURL): a git transport, or an HTTP(S) URL whose path ends in .git (before a #fragment). */
export function isGitUrl(value: string): boolean {
  return /^(git:\/\/|git@|github\.com\/)/.test(value) || (/^https?:\/\//.test(value) && /\.git(?:#.+)?$/.test(value));
}

/** Text (a URL, git's messages) as messages show it: a user and password in a URL (a token, often) are not shown. */
export function withoutCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@#\s'"]*@/gi, '$1***@');
}

/** A git URL's parts: the remote, the ref (`#ref`, the remote's HEAD by default) and the directory (`#ref:dir`). */
export interface GitSource {
  readonly remote: string;
  readonly ref: string;
  readonly subdir: string;
  /** The URL as messages name it. */
  readonly shown: string;
}

export function parseGitUrl(url: string): GitSource {
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const fragment = hash < 0 ? '' : url.slice(hash + 1);
  const colon = fragment.indexOf(':');
  const ref = (colon < 0 ? fragment : fragment.slice(0, colon)) || 'HEAD';
  const shown = withoutCredentials(url);
  if (ref.startsWith('-')) throw new KilnError('INVALID_ARGUMENT', `${shown}: invalid ref ${JSON.stringify(ref)}`);
  return { remote: url.startsWith('github.com/') ? `https://${base}` : base, ref, subdir: colon < 0 ? '' : fragment.slice(colon + 1), shown };
}

/** Runs git (in `dir`, when given) without prompts; returns its output; a failure says what git said. */
async function git(dir: string | undefined, args: readonly string[], what: string): Promise<string> {
  // No prompt may wait on a build: not for a password, not for an unknown ssh host key.
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes' };
  const result = await execFileAsync('git', [...(dir !== undefined ? ['-C', dir] : []), ...args], { env, maxBuffer: 16 << 20 }).catch((err: Error & { stderr?: string; code?: string }) => {
    if (err.code === 'ENOENT') throw new KilnError('UNSUPPORTED', `${what}: git is not installed (Debian's git package)`);
    const said = (err.stderr ?? err.message).trim().split('\n').filter(Boolean).at(-1) ?? err.message;
    throw new KilnError('NOT_FOUND', `${what}: ${withoutCredentials(said)}`);
  });
  return result.stdout;
}

/**
 * The commit a git source's ref names now (`git ls-remote`; a full commit ID is its own): what a cache key
 * of `ADD <git URL>` holds, so that a branch that moved is fetched again, as BuildKit's is.
 */
export async function gitCommit(source: GitSource, what: string): Promise<string> {
  if (/^[0-9a-f]{40}$/.test(source.ref)) return source.ref;
  const listed = await git(undefined, ['ls-remote', source.remote, source.ref], `${what}: ${source.shown}`);
  const lines = listed.split('\n').filter(Boolean).map((line) => line.split('\t'));
  // A ref may match a branch, a tag and its peeled commit (`^{}`): the peeled one, else the first.
  const found = lines.find(([, name]) => name?.endsWith('^{}')) ?? lines[0];
  if (!found?.[0]) throw new KilnError('NOT_FOUND', `${what}: ${source.shown}: no ref ${JSON.stringify(source.ref)} in the repository`);
  return found[0];
}

/**
 * Fetches a git source into `repo` (a new directory) at its ref, submodules too, as Docker fetches one:
 * shallow where the server allows it. Its `.git` is left out unless `keepGitDir` (ADD --keep-git-dir).
 * Returns the directory the source names in it (`#ref:dir`), which must stay inside it.
 */
export async function fetchGit(source: GitSource, repo: string, what: string, keepGitDir = false): Promise<string> {
  const doing = `${what} ${source.shown}`;
  await mkdir(repo);
  await git(repo, ['init', '-q'], doing);
  await git(repo, ['remote', 'add', 'origin', source.remote], doing);
  // A dumb HTTP server cannot serve a shallow fetch: the whole history then.
  await git(repo, ['fetch', '-q', '--depth', '1', 'origin', source.ref], doing).catch(() => git(repo, ['fetch', '-q', 'origin', source.ref], doing));
  await git(repo, ['checkout', '-q', 'FETCH_HEAD'], doing);
  await git(repo, ['submodule', 'update', '-q', '--init', '--recursive'], doing);
  if (!keepGitDir) await rm(join(repo, '.git'), { recursive: true, force: true });
  const root = await realpath(repo);
  const dir = await realpath(join(repo, source.subdir)).catch(() => {
    throw new KilnError('NOT_FOUND', `${doing}: the repository has no directory ${JSON.stringify(source.subdir)}`);
  });
  if (dir !== root && !dir.startsWith(root + sep)) throw new KilnError('INVALID_INPUT', `${doing}: ${JSON.stringify(source.subdir)} leads outside the repository`);
  return dir;
}
