/**
 * The steps a build runs itself besides its Dockerfile's (a base image's pull, a cache's import or
 * export, a push), as progress events, and how those reach registries: shared by engine/build.ts and
 * engine/build-cache.ts.
 */
import type { BuildEvent } from '../builder/solver.js';
import type { Credentials } from '../registry/credentials.js';
import type { ProgressEvent } from './registry.js';

/** How a build reaches registries: `--insecure-registry`, and the credentials a client sent by host (the Engine API's). */
export interface BuildRegistry {
  readonly insecureRegistries?: readonly string[];
  readonly credentials?: (host: string) => Credentials | undefined;
}

/** The registry options for a pull, push or cache of the build at `host`. */
export function registryAccess(registry: BuildRegistry | undefined, host: string): { insecureRegistries?: readonly string[]; credentials?: Credentials } {
  const credentials = registry?.credentials?.(host);
  return { ...(registry?.insecureRegistries ? { insecureRegistries: registry.insecureRegistries } : {}), ...(credentials ? { credentials } : {}) };
}

/** A registry operation's statuses as step `id`'s log lines; its byte counts (status `counting`) would flood a build log. */
export function statusLines(events: (event: BuildEvent) => void, id: number, counting: string): (event: ProgressEvent) => void {
  return (event) => {
    if (event.status !== counting) events({ type: 'log', id, stream: 'stdout', text: `${event.id ? `${event.id}: ` : ''}${event.status}\n` });
  };
}

/** Runs `work` as step `id` of the build's progress: the step, then its time when done, or its error. */
export async function ownStep<T>(events: (event: BuildEvent) => void, id: number, name: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  events({ type: 'step', id, name });
  let result: T;
  try {
    result = await work();
  } catch (err) {
    events({ type: 'error', id, message: err instanceof Error ? err.message : String(err) });
    throw err;
  }
  events({ type: 'done', id, seconds: (Date.now() - started) / 1000 });
  return result;
}
