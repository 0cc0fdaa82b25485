/**
 * `docker events`: what happened to containers, images, volumes and networks, from whichever kiln
 * process did it (the CLI, `kiln serve`, a container's supervisor), kept in the store's database so
 * every process sees every other's. A follower polls for events after the last it has seen.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { EventRow } from '../meta/db.js';
import { nowNanos } from '../runtime/logs.js';
import type { Engine } from './engine.js';
import { type Filters, checkFilterKeys, matchLabels, parseTimestamp } from './filters.js';

export type EventType = 'container' | 'image' | 'volume' | 'network';

/** An event as the Engine API streams it (events.Message, with the older status/id/from fields Docker still sends). */
export interface EventMessage {
  readonly status?: string;
  readonly id?: string;
  readonly from?: string;
  readonly Type: string;
  readonly Action: string;
  readonly Actor: { readonly ID: string; readonly Attributes: Readonly<Record<string, string>> };
  readonly scope: 'local';
  readonly time: number;
  readonly timeNano: number;
}

export const EVENT_FILTERS = ['container', 'event', 'image', 'label', 'type', 'volume', 'network', 'scope'];

/**
 * Records an event. Never fails the operation it reports: an event that cannot be written (a full
 * disk, a locked store) is dropped.
 */
export function recordEvent(engine: Engine, type: EventType, action: string, actor: string, attributes: Readonly<Record<string, string>> = {}): void {
  try {
    engine.store.db.addEvent({ timeNano: nowNanos(), type, action, actor, attributes });
  } catch {
    // The event is lost; what it reports was done.
  }
}

/**
 * Records an image event as dockerd does: the actor is the image's ID (a pull's and a push's, the
 * reference), its attributes the image's labels and `name` (the new tag of a tag event, the repository
 * of a pull or push, else the ID again).
 */
export function recordImageEvent(engine: Engine, action: string, actor: string, name = actor): void {
  const labels = actor.startsWith('sha256:') ? (engine.store.db.image(actor)?.labels ?? {}) : {};
  recordEvent(engine, 'image', action, actor, { ...labels, name });
}

function message(row: EventRow): EventMessage {
  const legacy = row.type === 'container' || row.type === 'image' ? { status: row.action, ...(row.actor !== '' ? { id: row.actor } : {}), ...(row.type === 'container' && row.attributes.image ? { from: row.attributes.image } : {}) } : {};
  return {
    ...legacy,
    Type: row.type,
    Action: row.action,
    Actor: { ID: row.actor, Attributes: row.attributes },
    scope: 'local',
    time: Number(row.timeNano / 1_000_000_000n),
    timeNano: Number(row.timeNano),
  };
}

/** Docker's event filters: each key given must match (any of its values). */
function matches(row: EventRow, filters: Filters): boolean {
  const any = (key: string, values: readonly string[]): boolean => {
    const wanted = filters.get(key) ?? [];
    return wanted.length === 0 || wanted.some((w) => values.some((v) => v === w || (v.length >= 12 && v.startsWith(w) && /^[0-9a-f]+$/.test(w))));
  };
  const { attributes } = row;
  const name = attributes.name ?? '';
  return (
    any('type', [row.type]) &&
    any('event', [row.action, row.action.split(':')[0] ?? '']) &&
    any('scope', ['local']) &&
    (!filters.has('container') || (row.type === 'container' && any('container', [row.actor, name]))) &&
    (!filters.has('image') || any('image', [attributes.image ?? '', row.type === 'image' ? row.actor : '', row.type === 'image' ? name : ''])) &&
    (!filters.has('volume') || (row.type === 'volume' && any('volume', [row.actor]))) &&
    (!filters.has('network') || (row.type === 'network' && any('network', [row.actor, name]))) &&
    matchLabels(attributes, filters.get('label') ?? [])
  );
}

export interface EventsOptions {
  /** Events from this time on (Docker's since: a time, Unix seconds, or a duration ago); else only new ones. */
  readonly since?: string;
  /** Stop at this time (then end); else follow until `signal`. */
  readonly until?: string;
  readonly filters: Filters;
  readonly signal?: AbortSignal;
}

/** How often a follower looks for new events. */
const POLL_MS = 100;

/**
 * The events that match, as messages to `send`: those since `since` that the store still has, then new
 * ones as they happen, until `until` has passed or `signal` aborts.
 */
export async function followEvents(engine: Engine, send: (event: EventMessage) => void, options: EventsOptions): Promise<void> {
  checkFilterKeys(options.filters, EVENT_FILTERS);
  const nanos = (value: string | undefined): bigint | undefined => (value ? BigInt(Math.round(parseTimestamp(value))) * 1_000_000n : undefined);
  const since = nanos(options.since);
  const until = nanos(options.until);
  let last = since === undefined ? engine.store.db.lastEventSeq() : 0;
  for (;;) {
    for (const row of engine.store.db.eventsAfter(last)) {
      last = row.seq;
      if (since !== undefined && row.timeNano < since) continue;
      if (until !== undefined && row.timeNano > until) return;
      if (matches(row, options.filters)) send(message(row));
    }
    if ((until !== undefined && nowNanos() > until) || options.signal?.aborted) return;
    await delay(POLL_MS, undefined, { signal: options.signal }).catch(() => undefined);
  }
}
