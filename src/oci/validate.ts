import { KilnError } from '../errors.js';
import type { Descriptor, ImageConfig, Index, Manifest } from './types.js';

/**
 * Validators for OCI documents (and their Docker schema 2 counterparts). Each enforces what the
 * image-spec JSON Schemas enforce, plus the four checks the schemas miss (upstream's Go validation):
 * `Env` entries are NAME=value; registered digest algorithms need lowercase hex of the exact length;
 * `urls` are absolute URIs; `data` is padded standard base64. Errors name the document and the JSON path.
 */

const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const REGISTERED_DIGESTS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/;
/** int64's limit, as close as a JS number gets. */
const MAX_INT64 = Number.MAX_SAFE_INTEGER;

type Json = unknown;
type Obj = Record<string, Json>;

class Checker {
  constructor(private readonly what: string) {}

  fail(path: string, problem: string): never {
    throw new KilnError('INVALID_INPUT', `${this.what}: ${path || 'document'} ${problem}`);
  }

  object(value: Json, path: string): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'must be a JSON object');
    return value as Obj;
  }

  array(value: Json, path: string): Json[] {
    if (!Array.isArray(value)) this.fail(path, 'must be a JSON array');
    return value as Json[];
  }

  string(value: Json, path: string): string {
    if (typeof value !== 'string') this.fail(path, 'must be a string');
    return value;
  }

  integer(value: Json, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(path, 'must be an integer');
    const n = value;
    if (n < min || n > max) this.fail(path, `must be between ${min} and ${max}`);
    return n;
  }

  boolean(value: Json, path: string): void {
    if (typeof value !== 'boolean') this.fail(path, 'must be true or false');
  }

  required(obj: Obj, keys: readonly string[], path: string): void {
    for (const key of keys) if (!(key in obj)) this.fail(path ? `${path}.${key}` : key, 'is required');
  }

  optional(obj: Obj, key: string, path: string, check: (value: Json, path: string) => void): void {
    if (key in obj) check(obj[key], path ? `${path}.${key}` : key);
  }

  mediaType(value: Json, path: string): void {
    if (!MEDIA_TYPE_RE.test(this.string(value, path))) this.fail(path, `${JSON.stringify(value)} is not a valid media type`);
  }

  digest(value: Json, path: string): void {
    const digest = this.string(value, path);
    if (!DIGEST_RE.test(digest)) this.fail(path, `${JSON.stringify(digest)} is not a valid digest`);
    const [algorithm = '', encoded = ''] = digest.split(':');
    const length = REGISTERED_DIGESTS[algorithm];
    if (length !== undefined && !(encoded.length === length && /^[a-f0-9]+$/.test(encoded))) {
      this.fail(path, `${JSON.stringify(digest)} must have ${length} lowercase hex digits for ${algorithm}`);
    }
  }

  stringMap(value: Json, path: string): void {
    const obj = this.object(value, path);
    for (const [key, v] of Object.entries(obj)) if (key.length > 0) this.string(v, `${path}.${key}`);
  }

  objectMap(value: Json, path: string): void {
    const obj = this.object(value, path);
    for (const [key, v] of Object.entries(obj)) if (key.length > 0) this.object(v, `${path}.${key}`);
  }

  strings(value: Json, path: string): string[] {
    return this.array(value, path).map((item, i) => this.string(item, `${path}[${i}]`));
  }

  nullable(check: (value: Json, path: string) => void): (value: Json, path: string) => void {
    return (value, path) => {
      if (value !== null) check(value, path);
    };
  }

  descriptor(value: Json, path: string, sizeMin = 0): Descriptor {
    const obj = this.object(value, path);
    this.required(obj, ['mediaType', 'size', 'digest'], path);
    this.mediaType(obj.mediaType, `${path}.mediaType`);
    this.integer(obj.size, `${path}.size`, sizeMin, MAX_INT64);
    this.digest(obj.digest, `${path}.digest`);
    this.optional(obj, 'urls', path, (urls, p) =>
      this.strings(urls, p).forEach((url, i) => {
        if (!URI_RE.test(url)) this.fail(`${p}[${i}]`, `${JSON.stringify(url)} is not an absolute URI`);
      }),
    );
    this.optional(obj, 'data', path, (data, p) => {
      if (!BASE64_RE.test(this.string(data, p))) this.fail(p, 'is not padded standard base64');
    });
    this.optional(obj, 'artifactType', path, (v, p) => this.mediaType(v, p));
    this.optional(obj, 'annotations', path, (v, p) => this.stringMap(v, p));
    this.optional(obj, 'platform', path, (v, p) => this.platform(v, p));
    return obj as unknown as Descriptor;
  }

  platform(value: Json, path: string): void {
    const obj = this.object(value, path);
    this.required(obj, ['architecture', 'os'], path);
    this.string(obj.architecture, `${path}.architecture`);
    this.string(obj.os, `${path}.os`);
    this.optional(obj, 'os.version', path, (v, p) => this.string(v, p));
    this.optional(obj, 'os.features', path, (v, p) => this.strings(v, p));
    this.optional(obj, 'variant', path, (v, p) => this.string(v, p));
    this.optional(obj, 'features', path, (v, p) => this.strings(v, p));
  }
}

/** Parses JSON from outside, refusing documents over `maxBytes` before parsing them. */
export function parseJson(bytes: Uint8Array | string, what: string, maxBytes = 8 << 20): unknown {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > maxBytes) throw new KilnError('INVALID_INPUT', `${what}: ${size} bytes is more than the ${maxBytes} allowed for a JSON document`);
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new KilnError('INVALID_INPUT', `${what}: invalid JSON (${(err as Error).message})`);
  }
}

function schemaVersion(c: Checker, obj: Obj): void {
  c.integer(obj.schemaVersion, 'schemaVersion', 2, 2);
}

export function validateDescriptor(value: unknown, what: string): Descriptor {
  return new Checker(what).descriptor(value, '');
}

export function validateManifest(value: unknown, what: string): Manifest {
  const c = new Checker(what);
  const obj = c.object(value, '');
  c.required(obj, ['schemaVersion', 'config', 'layers'], '');
  schemaVersion(c, obj);
  c.optional(obj, 'mediaType', '', (v, p) => c.mediaType(v, p));
  c.optional(obj, 'artifactType', '', (v, p) => c.mediaType(v, p));
  c.descriptor(obj.config, 'config');
  c.optional(obj, 'subject', '', (v, p) => c.descriptor(v, p));
  const layers = c.array(obj.layers, 'layers');
  if (layers.length === 0 && obj.artifactType === undefined) c.fail('layers', 'must have at least one entry');
  layers.forEach((layer, i) => c.descriptor(layer, `layers[${i}]`));
  c.optional(obj, 'annotations', '', (v, p) => c.stringMap(v, p));
  return obj as unknown as Manifest;
}

export function validateIndex(value: unknown, what: string): Index {
  const c = new Checker(what);
  const obj = c.object(value, '');
  c.required(obj, ['schemaVersion', 'manifests'], '');
  schemaVersion(c, obj);
  c.optional(obj, 'mediaType', '', (v, p) => c.mediaType(v, p));
  c.optional(obj, 'artifactType', '', (v, p) => c.mediaType(v, p));
  c.optional(obj, 'subject', '', (v, p) => c.descriptor(v, p));
  c.array(obj.manifests, 'manifests').forEach((m, i) => c.descriptor(m, `manifests[${i}]`, -MAX_INT64));
  c.optional(obj, 'annotations', '', (v, p) => c.stringMap(v, p));
  return obj as unknown as Index;
}

function dateTime(c: Checker, value: Json, path: string): void {
  const text = c.string(value, path);
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(text) || Number.isNaN(Date.parse(text))) {
    c.fail(path, `${JSON.stringify(text)} is not an RFC 3339 date-time`);
  }
}

export function validateImageConfig(value: unknown, what: string): ImageConfig {
  const c = new Checker(what);
  const obj = c.object(value, '');
  c.required(obj, ['architecture', 'os', 'rootfs'], '');
  c.string(obj.architecture, 'architecture');
  c.string(obj.os, 'os');
  for (const key of ['author', 'variant', 'os.version']) c.optional(obj, key, '', (v, p) => c.string(v, p));
  c.optional(obj, 'created', '', (v, p) => dateTime(c, v, p));
  c.optional(obj, 'os.features', '', (v, p) => c.strings(v, p));
  c.optional(obj, 'config', '', (v, p) => {
    const config = c.object(v, p);
    c.optional(config, 'User', p, (u, q) => c.string(u, q));
    c.optional(config, 'ExposedPorts', p, c.nullable((u, q) => c.objectMap(u, q)));
    // Docker writes null for an empty Env; the schema's array-of-strings holds otherwise.
    c.optional(config, 'Env', p, c.nullable((u, q) =>
      c.strings(u, q).forEach((entry, i) => {
        if (!/^[^=]+=/.test(entry)) c.fail(`${q}[${i}]`, `${JSON.stringify(entry)} must look like NAME=value`);
      }),
    ));
    for (const key of ['Entrypoint', 'Cmd', 'Shell', 'OnBuild']) c.optional(config, key, p, c.nullable((u, q) => c.strings(u, q)));
    c.optional(config, 'Volumes', p, c.nullable((u, q) => c.objectMap(u, q)));
    c.optional(config, 'Labels', p, c.nullable((u, q) => c.stringMap(u, q)));
    for (const key of ['WorkingDir', 'StopSignal']) c.optional(config, key, p, (u, q) => c.string(u, q));
    c.optional(config, 'ArgsEscaped', p, (u, q) => c.boolean(u, q));
  });
  const rootfs = c.object(obj.rootfs, 'rootfs');
  c.required(rootfs, ['diff_ids', 'type'], 'rootfs');
  if (rootfs.type !== 'layers') c.fail('rootfs.type', 'must be "layers"');
  c.array(rootfs.diff_ids, 'rootfs.diff_ids').forEach((d, i) => c.digest(d, `rootfs.diff_ids[${i}]`));
  c.optional(obj, 'history', '', (v, p) =>
    c.array(v, p).forEach((entry, i) => {
      const h = c.object(entry, `${p}[${i}]`);
      const at = `${p}[${i}]`;
      c.optional(h, 'created', at, (u, q) => dateTime(c, u, q));
      for (const key of ['author', 'created_by', 'comment']) c.optional(h, key, at, (u, q) => c.string(u, q));
      c.optional(h, 'empty_layer', at, (u, q) => c.boolean(u, q));
    }),
  );
  return obj as unknown as ImageConfig;
}

export function validateLayout(value: unknown, what: string): { imageLayoutVersion: string } {
  const c = new Checker(what);
  const obj = c.object(value, '');
  c.required(obj, ['imageLayoutVersion'], '');
  if (c.string(obj.imageLayoutVersion, 'imageLayoutVersion') !== '1.0.0') c.fail('imageLayoutVersion', 'must be "1.0.0"');
  return obj as { imageLayoutVersion: string };
}
