/**
 * A build's inputs as the front ends get them, checked and turned into BuildOptions' terms here so that
 * `kiln build` and `POST /build` apply the same rules: the network mode, a context sent as a tar, the
 * credentials a client sends by registry, and ulimits (which `run` and `create` take too: checked here,
 * a light module, so that kiln build's one-file CLI does not carry the container verbs for them).
 */
import { resolve } from 'node:path';
import type { NamedContext } from '../builder/plan.js';
import { KilnError, storeWriteError } from '../errors.js';
import { familiarString, parseReference } from '../reference/reference.js';
import { type Credentials, registryHost, serverKey } from '../registry/credentials.js';
import type { Engine } from './engine.js';

export { checkUlimits } from '../runtime/resources.js';

/**
 * `--network` (`networkmode` in the API): the network of RUN steps that do not choose one. `default` (or
 * nothing) is the host's; other modes (a bridge, a network of the user's) are refused, not taken as host.
 * `what` names the setting in the error: the flag or the parameter.
 */
export function buildNetwork(mode: string | undefined, what: string): 'none' | 'host' | undefined {
  if (mode === undefined || mode === '' || mode === 'default') return undefined;
  if (mode === 'none' || mode === 'host') return mode;
  throw new KilnError('INVALID_ARGUMENT', `invalid ${what} ${JSON.stringify(mode)}: use default, none or host`);
}

/** Unpacks a build context sent as a tar (compressed or not) into `directory`, with a layer's safety rules. */
export async function unpackContext(engine: Engine, tar: AsyncIterable<Uint8Array>, directory: string): Promise<void> {
  // The layer code (zlib, workers) loads here: `kiln build`, which reads its context in place, does not need it.
  const [{ autoDecompress }, { applyLayer }] = await Promise.all([import('../layer/compression.js'), import('../layer/apply.js')]);
  const { stream } = await autoDecompress(tar);
  await applyLayer(directory, stream, { whiteouts: 'delete', what: 'the build context', privileged: false }).catch((err: unknown) => {
    throw storeWriteError(err, engine.store.root, directory);
  });
}

/** One registry's entry of the credentials a client sends (Docker's types.AuthConfig, the parts used). */
export interface AuthEntry {
  readonly username?: string;
  readonly password?: string;
  readonly identitytoken?: string;
}

/**
 * The credentials for a registry host out of entries keyed by server address, as the docker CLI sends them
 * with a build (X-Registry-Config): the entry under the registry's config.json key, else one whose key
 * names the same registry (see registryHost: with a scheme or without, Docker Hub by any of its names).
 */
export function credentialsByRegistry(entries: Readonly<Record<string, AuthEntry>>): (host: string) => Credentials | undefined {
  return (host) => {
    const key = serverKey(host);
    const registry = registryHost(host);
    const entry = Object.hasOwn(entries, key) ? entries[key] : Object.entries(entries).find(([k]) => registryHost(k) === registry)?.[1];
    if (entry?.identitytoken) return { identityToken: entry.identitytoken };
    if (entry?.username && entry.password) return { username: entry.username, password: entry.password };
    return undefined;
  };
}

/** `--build-context` values parsed: what plan's namedContext answers by name, and the directories of the local ones. */
export interface BuildContexts {
  readonly named: ReadonlyMap<string, NamedContext>;
  /** The local contexts' directories, absolute, by name. */
  readonly directories: ReadonlyMap<string, string>;
}

/**
 * The key a name has among named contexts, as BuildKit matches them: the reference's familiar form without
 * `:latest` (`FROM docker.io/library/alpine:latest` finds `alpine`); undefined for a word that is no reference.
 */
export function namedContextKey(word: string): string | undefined {
  try {
    const ref = parseReference(word);
    return ref.digest ? undefined : familiarString(ref).replace(/:latest$/, '');
  } catch {
    return undefined;
  }
}

/**
 * `--build-context NAME=VALUE` (buildx's flag): VALUE is `docker-image://REF` (an image, pulled when the
 * store lacks it; `docker-image://scratch` the empty one) or a local directory (relative to the current
 * one; its own .dockerignore applies). The other sources BuildKit takes (git, HTTP, oci-layout) are refused
 * by name: kiln builds from local files.
 */
export function parseBuildContexts(given: readonly string[]): BuildContexts {
  const named = new Map<string, NamedContext>();
  const directories = new Map<string, string>();
  for (const entry of given) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq) : '';
    const value = eq > 0 ? entry.slice(eq + 1) : '';
    const key = namedContextKey(name);
    if (!key || value === '') throw new KilnError('INVALID_ARGUMENT', `invalid --build-context ${JSON.stringify(entry)}: use NAME=DIR or NAME=docker-image://REF, NAME a lower-case name as a stage or image has`);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase() ?? (/^git@/.test(value) ? 'git' : undefined);
    if (scheme === 'docker-image') {
      const ref = value.slice('docker-image://'.length);
      if (ref === 'scratch') named.set(key, { kind: 'scratch' });
      else {
        parseReference(ref);
        named.set(key, { kind: 'image', ref });
      }
    } else if (scheme !== undefined) {
      throw new KilnError('UNSUPPORTED', `--build-context ${name}=${value}: ${scheme} contexts are not supported; give a local directory or docker-image://REF`);
    } else {
      named.set(key, { kind: 'local', name: key });
      directories.set(key, resolve(value));
    }
  }
  return { named, directories };
}
