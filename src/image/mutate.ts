/**
 * The one place a new image is made (import, commit, a build step, a squash): a config and its layers
 * become an {@link Image} whose raw config is the config's JSON and whose ID is that JSON's digest.
 * Every function returns a new value; none changes the image it is given.
 */
import { KilnError } from '../errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import type { HistoryEntry, ImageConfig } from '../oci/types.js';
import type { Image, Layer } from './image.js';

/**
 * An image of `config` over `layers` (bottom first; their diffIDs must be the config's). The raw config
 * is `JSON.stringify(config)` — keys in the order the config has them, as Docker's encoder writes its
 * struct's — computed, with the ID, once and only when first asked: a chain of edits serialises the last
 * config alone.
 */
export function imageOf(config: ImageConfig, layers: readonly Layer[]): Image {
  const diffIds = config.rootfs.diff_ids;
  if (layers.length !== diffIds.length || layers.some((layer, i) => layer.diffId !== diffIds[i])) {
    throw new KilnError('INTERNAL', `an image's layers (${layers.length}) do not match its config's diff_ids (${diffIds.length})`);
  }
  let raw: { bytes: Buffer; id: Digest } | undefined;
  const serialised = (): { bytes: Buffer; id: Digest } => {
    if (!raw) {
      const bytes = Buffer.from(JSON.stringify(config));
      raw = { bytes, id: sha256(bytes) };
    }
    return raw;
  };
  return {
    get id() {
      return serialised().id;
    },
    get rawConfig() {
      return serialised().bytes;
    },
    config,
    layers,
  };
}

/** What a history entry says, by Docker's meaning; {@link historyEntry} gives it Docker's field names and order. */
export interface HistoryFields {
  readonly created?: string;
  readonly createdBy?: string;
  readonly author?: string;
  readonly comment?: string;
  /** True for an entry of a step that made no layer (ENV, a config-only change). */
  readonly emptyLayer?: boolean;
}

/** A history entry with the fields given, in the order of Docker's image spec struct (absent ones left out). */
export function historyEntry(fields: HistoryFields): HistoryEntry {
  return {
    ...(fields.created !== undefined ? { created: fields.created } : {}),
    ...(fields.createdBy !== undefined ? { created_by: fields.createdBy } : {}),
    ...(fields.author !== undefined ? { author: fields.author } : {}),
    ...(fields.comment !== undefined ? { comment: fields.comment } : {}),
    ...(fields.emptyLayer ? { empty_layer: true } : {}),
  };
}

/** Config fields to set; `undefined` removes a field. rootfs stays the layers' business. */
export type ConfigFields = { readonly [field: string]: unknown } & { readonly rootfs?: never };

/**
 * The image with config fields set or removed, its layers unchanged. A field the config has keeps its
 * place in the JSON; a new one goes at the end (so the ID is the one Docker's field order gives).
 */
export function setConfig(image: Image, fields: ConfigFields): Image {
  const config: Record<string, unknown> = { ...image.config };
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) delete config[field];
    else config[field] = value;
  }
  return imageOf(config as ImageConfig, image.layers);
}

/** The image with `layers` on top and `history` entries after its own (an empty_layer entry needs no layer). */
export function appendLayers(image: Image, layers: readonly Layer[], history: readonly HistoryEntry[]): Image {
  const { config } = image;
  return imageOf(
    {
      ...config,
      rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, ...layers.map((layer) => layer.diffId)] },
      history: [...(config.history ?? []), ...history],
    },
    [...image.layers, ...layers],
  );
}

/**
 * `--squash`: the image's layers above those of `base` (scratch when undefined) become the one layer
 * `merged`. Its history stays, the entries above the base's marked empty_layer, and `entry` (the merge)
 * comes last, carrying the new layer — as Docker's classic builder records a squash.
 */
export function squash(image: Image, base: Image | undefined, merged: Layer, entry: HistoryEntry): Image {
  const below = base?.layers ?? [];
  const belowHistory = (base?.config.history ?? []).length;
  const { config } = image;
  return imageOf(
    {
      ...config,
      rootfs: { type: 'layers', diff_ids: [...below.map((layer) => layer.diffId), merged.diffId] },
      history: [...(config.history ?? []).map((h, i) => (i < belowHistory ? h : { ...h, empty_layer: true })), entry],
    },
    [...below, merged],
  );
}
