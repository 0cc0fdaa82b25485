/**
 * Registry credentials where Docker keeps them: `$DOCKER_CONFIG/config.json` (default `~/.docker`),
 * with `auths` (base64 `user:password`, or an identity token), `credsStore` (one helper for all) and
 * `credHelpers` (a helper per registry), helpers being `docker-credential-<name>` programs that speak
 * JSON on stdin/stdout. Secrets are never logged or put in an error message.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { KilnError } from '../errors.js';

export type Credentials = { readonly username: string; readonly password: string } | { readonly identityToken: string };

interface ConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

/** Docker Hub's key in config.json. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/** The key a registry's entry has in config.json (Docker Hub has its historical URL). */
export function serverKey(registry: string): string {
  return registry === 'docker.io' || registry === 'registry-1.docker.io' || registry === 'index.docker.io' ? DOCKER_HUB_KEY : registry;
}

/**
 * The registry a server address names, as `docker login` takes it: with or without a scheme and an API
 * path (`https://index.docker.io/v1/` is Docker Hub, `docker.io`).
 */
export function registryHost(serverAddress: string): string {
  const host = serverAddress.replace(/^https?:\/\//, '').replace(/\/(v[12]\/?)?$/, '');
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

async function readConfig(path: string): Promise<ConfigFile> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new KilnError('INVALID_INPUT', `cannot read ${path}: ${err.message}`);
  });
  if (text === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as ConfigFile;
  } catch (err) {
    throw new KilnError('INVALID_INPUT', `${path} is not valid JSON (${(err as Error).message}); fix or remove it`);
  }
}

/** config.json's `detachKeys` (the docker CLI's default for attach's --detach-keys), if set. */
export async function configuredDetachKeys(path = configPath()): Promise<string | undefined> {
  const keys = (await readConfig(path)).detachKeys;
  return typeof keys === 'string' && keys !== '' ? keys : undefined;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; its stdout. */
function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.resume();
    child.on('error', (err) => reject(new KilnError('NOT_FOUND', `the credential helper docker-credential-${helper} cannot be run (${err.message}); install it or change credsStore/credHelpers in ${configPath()}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

function helperFor(config: ConfigFile, key: string): string | undefined {
  return config.credHelpers?.[key] ?? config.credsStore;
}

/** The credentials config.json (or its helper) has for a registry, if any. */
export async function credentialsFor(registry: string, path = configPath()): Promise<Credentials | undefined> {
  const config = await readConfig(path);
  const key = serverKey(registry);
  const helper = helperFor(config, key);
  if (helper) {
    const { code, stdout } = await runHelper(helper, 'get', key);
    if (code !== 0) return undefined; // "credentials not found in native keychain"
    try {
      const reply = JSON.parse(stdout) as { Username?: string; Secret?: string };
      if (typeof reply.Secret !== 'string') return undefined;
      return reply.Username === '<token>' ? { identityToken: reply.Secret } : { username: reply.Username ?? '', password: reply.Secret };
    } catch {
      throw new KilnError('INVALID_INPUT', `the credential helper docker-credential-${helper} answered with something that is not JSON`);
    }
  }
  const entry = config.auths?.[key] ?? config.auths?.[`https://${key}`] ?? config.auths?.[`http://${key}`];
  if (!entry) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken };
  if (!entry.auth) return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new KilnError('INVALID_INPUT', `the auth entry for ${key} in ${path} is not base64 of user:password; log in again`);
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function writeConfig(path: string, config: ConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.kiln-${process.pid}`;
  await writeFile(temp, `${JSON.stringify(config, null, '\t')}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** `docker login`: stores credentials in the helper, or base64 in config.json as Docker does. */
export async function storeCredentials(registry: string, username: string, password: string, path = configPath()): Promise<void> {
  const config = await readConfig(path);
  const key = serverKey(registry);
  const helper = helperFor(config, key);
  if (helper) {
    const { code } = await runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: password }));
    if (code !== 0) throw new KilnError('INTERNAL', `docker-credential-${helper} could not store the credentials for ${key}`);
    config.auths = { ...(config.auths ?? {}), [key]: {} };
  } else {
    config.auths = { ...(config.auths ?? {}), [key]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  }
  await writeConfig(path, config);
}

/** `docker logout`: forgets the registry's credentials; false when there were none. */
export async function eraseCredentials(registry: string, path = configPath()): Promise<boolean> {
  const config = await readConfig(path);
  const key = serverKey(registry);
  const helper = helperFor(config, key);
  let had = false;
  if (helper) had = (await runHelper(helper, 'erase', key)).code === 0;
  if (config.auths && key in config.auths) {
    const { [key]: _removed, ...rest } = config.auths;
    config.auths = rest;
    had = true;
    await writeConfig(path, config);
  }
  return had;
}
