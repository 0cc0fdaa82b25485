/**
 * A build's inputs as the front ends get them, checked and turned into BuildOptions' terms here so that
 * `kiln build` and `POST /build` apply the same rules: the network mode, a context sent as a tar, the
 * credentials a client sends by registry, and ulimits (which `run` and `create` take too: checked here,
 * a light module, so that kiln build's one-file CLI does not carry the container verbs for them).
 */
import { KilnError, storeWriteError } from '../errors.js';
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
