/**
 * `POST /build`: the legacy builder's endpoint (the docker CLI uses it when `/_ping` says
 * `Builder-Version: 1`). The request body is the context as a tar (unpacked with the same safety rules
 * as a layer: nothing outside the directory) or a Dockerfile alone, or `remote` names a git repository
 * or a URL (see engine/context-source.ts); the build streams jsonmessage lines and ends with the image
 * ID in `aux`, as dockerd does.
 */
import type { IncomingMessage } from 'node:http';
import { KilnError } from '../errors.js';
import type { Credentials } from '../registry/credentials.js';
import { buildImage } from '../engine/build.js';
import { buildNetwork, checkUlimits, credentialsByRegistry } from '../engine/build-inputs.js';
import { type ContextSource, dockerfileInContext, withBuildContext } from '../engine/context-source.js';
import { parseReference } from '../reference/reference.js';
import type { RuntimeName } from '../runtime/runtime.js';
import type { Driver } from '../snapshot/snapshotter.js';
import { map } from './json.js';
import { authConfig, buildArgs as buildArgsShape, flag, headerJson, integer, jsonParameter, stringList, stringMap, ulimitList, ulimitsOf } from './request.js';
import { type Call, jsonStream } from './server.js';

export interface BuildRouteOptions {
  /** The runtime of RUN steps; left out, the engine picks (crun where it runs on the host as it is, else runc). */
  readonly runtime?: RuntimeName;
  readonly storageDriver?: Driver;
}

/** X-Registry-Config: the credentials the docker CLI sends with a build, base64 JSON by registry, for pulling base images. */
function registryConfig(req: IncomingMessage): (host: string) => Credentials | undefined {
  return credentialsByRegistry(headerJson(req, 'X-Registry-Config', map(authConfig)) ?? {});
}

export async function buildRoute(call: Call, options: BuildRouteOptions): Promise<void> {
  const { query, req, res, engine } = call;
  const remote = query.get('remote');
  const dockerfile = query.get('dockerfile') ?? 'Dockerfile';
  const buildArgs = Object.entries(jsonParameter(query, 'buildargs', buildArgsShape, 'build args') ?? {}).flatMap(([key, value]) => (value === null ? [] : [[key, value] as const]));
  const labels = jsonParameter(query, 'labels', stringMap, 'labels') ?? {};
  const cacheFrom = jsonParameter(query, 'cachefrom', stringList) ?? [];
  const ulimits = checkUlimits(ulimitsOf(jsonParameter(query, 'ulimits', ulimitList, 'ulimits')));
  const shmSize = integer(query, 'shmsize');
  const quiet = flag(query, 'q');
  for (const tag of query.getAll('t')) parseReference(tag); // a malformed tag is a 400 before the build, as dockerd answers
  const credentials = registryConfig(req);
  const network = buildNetwork(query.get('networkmode') ?? undefined, 'networkmode');
  const stream = jsonStream(res);
  // dockerd cancels a build whose client went away (a ctrl-c in `docker build`): so does kiln.
  const cancel = new AbortController();
  const cancelOnClose = (): void => {
    if (!res.writableFinished) cancel.abort(new KilnError('FAILED', 'the build was cancelled: its client went away'));
  };
  res.on('close', cancelOnClose);
  try {
    // dockerd's sources: the body (a context archive, or a Dockerfile alone), or `remote` (a git repository or a URL).
    const source: ContextSource = remote ? { kind: 'url', url: remote } : { kind: 'stream', body: req, what: 'the request body' };
    await withBuildContext(engine, source, async (context) => {
      const result = await buildImage(engine, {
        contextDir: context.dir,
        dockerfile: dockerfileInContext(context, dockerfile),
        tags: query.getAll('t'),
        buildArgs: new Map(buildArgs),
        ...(query.get('target') ? { target: query.get('target') ?? '' } : {}),
        labels,
        noCache: flag(query, 'nocache'),
        noCacheFilter: [],
        cacheFrom,
        secrets: new Map(),
        ...(query.get('platform') ? { platform: query.get('platform') ?? '' } : {}),
        ...(network ? { network } : {}),
        extraHosts: query.getAll('extrahosts'),
        ulimits,
        ...(shmSize ? { shmSize } : {}),
        squash: flag(query, 'squash'),
        pull: flag(query, 'pull'),
        registry: { credentials },
        ...(options.runtime ? { runtime: options.runtime } : {}),
        ...(options.storageDriver ? { storageDriver: options.storageDriver } : {}),
        notice: (message) => stream.send({ stream: `${message}\n` }),
        signal: cancel.signal,
        events: (event) => {
          if (quiet) return;
          if (event.type === 'step') stream.send({ stream: `Step ${event.name}\n` });
          else if (event.type === 'cached') stream.send({ stream: ' ---> Using cache\n' });
          else if (event.type === 'log') stream.send({ stream: event.text });
          else if (event.type === 'done') stream.send({ stream: ` ---> Done in ${event.seconds.toFixed(1)}s\n` });
        },
      });
      for (const warning of result.warnings) stream.send({ stream: `[Warning] ${warning}\n` });
      stream.send({ aux: { ID: result.id } });
      // In quiet mode the docker CLI prints the stream as it came, and dockerd sends just the ID there.
      if (quiet) stream.send({ stream: `${result.id}\n` });
      else {
        stream.send({ stream: `Successfully built ${result.id.slice(7, 19)}\n` });
        for (const tag of query.getAll('t')) stream.send({ stream: `Successfully tagged ${tag.includes(':') ? tag : `${tag}:latest`}\n` });
      }
    });
  } catch (err) {
    stream.fail(err);
  } finally {
    res.end();
  }
}
