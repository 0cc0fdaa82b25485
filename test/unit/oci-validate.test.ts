import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { sha256 } from '../../src/oci/digest.js';
import { parseJson, validateDescriptor, validateImageConfig, validateIndex, validateLayout, validateManifest } from '../../src/oci/validate.js';
import { conformanceCorpus } from '../helpers/paths.js';

// The image-spec's examples and its Go tables' documents: an optional external corpus, read in place.
const corpus = conformanceCorpus('oci-image-spec');

const VALIDATORS: Record<string, (value: unknown, what: string) => unknown> = {
  'application/vnd.oci.image.manifest.v1+json': validateManifest,
  'application/vnd.oci.image.index.v1+json': validateIndex,
  'application/vnd.oci.image.config.v1+json': validateImageConfig,
  'application/vnd.oci.descriptor.v1+json': validateDescriptor,
  'application/vnd.oci.layout.header.v1+json': validateLayout,
};

function validate(mediaType: string, document: string): void {
  const validator = VALIDATORS[mediaType];
  assert.ok(validator, `no validator for ${mediaType}`);
  validator(parseJson(document, 'document'), 'document');
}

interface Case {
  description: string | null;
  mediaType: string;
  valid: boolean;
  document: string;
  sha256OfDocument?: string;
}

describe('OCI image-spec conformance cases', { skip: corpus.skip }, () => {
  for (const file of corpus.skip ? [] : readdirSync(corpus.path('cases')).sort()) {
    const data = JSON.parse(readFileSync(corpus.path('cases', file), 'utf8')) as { cases: Case[]; dockerToOciMediaTypeReplacements?: Record<string, string> };
    describe(file, () => {
      data.cases.forEach((c, i) => {
        it(`${i}: ${(c.description ?? '').slice(0, 90)}`, () => {
          let document = c.document;
          if (c.sha256OfDocument) assert.equal(sha256(document), `sha256:${c.sha256OfDocument.replace(/^sha256:/, '')}`, 'digest of the bytes as received');
          for (const [from, to] of Object.entries(data.dockerToOciMediaTypeReplacements ?? {})) document = document.replaceAll(from, to);
          if (c.valid) validate(c.mediaType, document);
          else assert.throws(() => validate(c.mediaType, document), (err) => isKilnError(err, 'INVALID_INPUT') && !err.message.includes('\n'));
        });
      });
    });
  }
});

describe('OCI image-spec examples from the spec text', { skip: corpus.skip }, () => {
  const index = corpus.skip ? { examples: [] } : (JSON.parse(readFileSync(corpus.path('examples', 'index.json'), 'utf8')) as { examples: { file: string; mediaType: string }[] });
  for (const { file, mediaType } of index.examples) {
    it(`${file} (${mediaType}) is valid`, () => validate(mediaType, readFileSync(corpus.path('examples', file), 'utf8')));
  }
});

/*
 * The project's own documents, written from the OCI image-spec (descriptor.md, manifest.md, image-index.md,
 * config.md, image-layout.md and its JSON Schemas' rules) and from what Docker writes. Each invalid one
 * breaks one rule of a valid one and must be refused with a one-line INVALID_INPUT naming the JSON path.
 */
const digestOf = (text: string): string => sha256(text);
const CONFIG_DIGEST = digestOf('config');
const LAYER_DIGEST = digestOf('layer');

const descriptor = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 32654, digest: LAYER_DIGEST, ...extra });
const manifest = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: 7023, digest: CONFIG_DIGEST },
  layers: [descriptor(), descriptor({ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', size: 16724, digest: digestOf('layer 2') })],
  annotations: { 'org.opencontainers.image.created': '2024-01-02T03:04:05Z' },
  ...extra,
});
const platformEntry = (architecture: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 7143,
  digest: digestOf(`manifest for ${architecture}`),
  platform: { architecture, os: 'linux', ...extra },
});
const index = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [platformEntry('amd64'), platformEntry('arm64', { variant: 'v8' }), platformEntry('amd64', { os: 'windows', 'os.version': '10.0.17763.1040', 'os.features': ['win32k'] })],
  ...extra,
});
const config = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  created: '2024-01-02T03:04:05.123456789Z',
  author: 'kiln tests',
  architecture: 'amd64',
  os: 'linux',
  config: { User: '1000:1000', ExposedPorts: { '8080/tcp': {} }, Env: ['PATH=/usr/bin:/bin', 'EMPTY='], Entrypoint: ['/bin/app'], Cmd: ['--serve'], Volumes: { '/data': {} }, WorkingDir: '/srv', Labels: { tier: 'web' }, StopSignal: 'SIGTERM', ArgsEscaped: true },
  rootfs: { type: 'layers', diff_ids: [digestOf('diff 1'), digestOf('diff 2')] },
  history: [{ created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /', empty_layer: false }, { created: '2024-01-02T03:04:06+02:00', author: 'a', comment: 'c', empty_layer: true }],
  ...extra,
});

type Validator = (value: unknown, what: string) => unknown;

/** `document` with the value at a /-separated path (numeric parts index arrays) set, or removed when undefined. */
function changed(document: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(document);
  const parts = path.split('/');
  let target = copy;
  for (const part of parts.slice(0, -1)) target = target[part] as Record<string, unknown>;
  const last = parts.at(-1) as string;
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}

function accepts(validator: Validator, document: unknown, why: string): void {
  assert.doesNotThrow(() => validator(document, 'doc.json'), why);
}

/**
 * Refused with one line that names the document and the JSON path of the problem (a lone descriptor's
 * fields are named with a leading dot: `.mediaType`).
 */
function refuses(validator: Validator, document: unknown, path: string, why: string): void {
  assert.throws(
    () => validator(document, 'doc.json'),
    (err) => isKilnError(err, 'INVALID_INPUT') && [`doc.json: ${path} `, `doc.json: .${path} `].some((start) => err.message.startsWith(start)) && !err.message.includes('\n'),
    `${why}: expected a refusal at ${path}`,
  );
}

describe('OCI descriptors', () => {
  it('accepts the required fields, and urls, data, annotations, artifactType and a platform', () => {
    accepts(validateDescriptor, descriptor(), 'the three required fields');
    accepts(validateDescriptor, descriptor({ urls: ['https://example.com/layer.tar.gz', 'file:///srv/layer'], data: 'bGF5ZXI=', annotations: { 'org.example': 'yes', '': 'empty key' }, artifactType: 'application/vnd.example.sbom+json' }), 'every optional field');
    accepts(validateDescriptor, descriptor({ size: 0, digest: 'sha512:' + 'ab'.repeat(64), platform: { architecture: 'ppc64le', os: 'linux', features: ['sse4'] } }), 'size 0, sha512, a platform');
    accepts(validateDescriptor, descriptor({ digest: 'sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564', mediaType: 'application/vnd.example+type' }), 'an unregistered algorithm is only checked against the grammar');
    accepts(validateDescriptor, descriptor({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }), 'a Docker media type');
  });

  it('refuses a missing or malformed field, naming it', () => {
    const cases: [unknown, string, string][] = [
      [changed(descriptor(), 'mediaType', undefined), 'mediaType', 'no media type'],
      [changed(descriptor(), 'size', undefined), 'size', 'no size'],
      [changed(descriptor(), 'digest', undefined), 'digest', 'no digest'],
      [descriptor({ mediaType: 'no-slash' }), 'mediaType', 'a media type without a subtype'],
      [descriptor({ mediaType: 'application/' }), 'mediaType', 'an empty subtype'],
      [descriptor({ mediaType: 'application/x y' }), 'mediaType', 'a blank in a media type'],
      [descriptor({ mediaType: `application/${'x'.repeat(128)}` }), 'mediaType', 'a subtype over 127 characters'],
      [descriptor({ mediaType: 7 }), 'mediaType', 'a number as media type'],
      [descriptor({ size: -1 }), 'size', 'a negative size'],
      [descriptor({ size: 1.5 }), 'size', 'a fractional size'],
      [descriptor({ size: '12' }), 'size', 'a size as a string'],
      [descriptor({ digest: 'sha256:' + 'A'.repeat(64) }), 'digest', 'uppercase hex for sha256'],
      [descriptor({ digest: 'sha256:' + 'a'.repeat(63) }), 'digest', 'sha256 one digit short'],
      [descriptor({ digest: 'sha512:' + 'a'.repeat(64) }), 'digest', 'sha512 with sha256\'s length'],
      [descriptor({ digest: 'sha256' }), 'digest', 'no encoded part'],
      [descriptor({ digest: ':abc' }), 'digest', 'no algorithm'],
      [descriptor({ digest: 'SHA256:' + 'a'.repeat(64) }), 'digest', 'an uppercase algorithm'],
      [descriptor({ digest: 'sha256:abc+def' }), 'digest', 'a + in the encoded part'],
      [descriptor({ urls: ['not a uri'] }), 'urls[0]', 'a url that is not an absolute URI'],
      [descriptor({ urls: ['/relative/path'] }), 'urls[0]', 'a relative reference'],
      [descriptor({ urls: 'https://example.com' }), 'urls', 'urls not an array'],
      [descriptor({ data: 'bGF5ZXI' }), 'data', 'base64 without its padding'],
      [descriptor({ data: 'bGF5-XI=' }), 'data', 'URL-safe base64'],
      [descriptor({ annotations: { key: 1 } }), 'annotations.key', 'an annotation that is not a string'],
      [descriptor({ annotations: ['a'] }), 'annotations', 'annotations as an array'],
      [descriptor({ artifactType: 'sbom' }), 'artifactType', 'an artifact type that is no media type'],
      [descriptor({ platform: { os: 'linux' } }), 'platform.architecture', 'a platform without architecture'],
      [descriptor({ platform: { architecture: 'amd64', os: 'linux', 'os.features': 'win32k' } }), 'platform.os.features', 'os.features not an array'],
      [descriptor({ platform: { architecture: 'arm', os: 'linux', variant: 7 } }), 'platform.variant', 'a number as variant'],
      [['not', 'an', 'object'], 'document', 'an array'],
      [null, 'document', 'null'],
    ];
    for (const [document, path, why] of cases) refuses(validateDescriptor, document, path, why);
  });
});

describe('OCI image manifests', () => {
  it('accepts an image manifest, one with a subject, an artifact with no layers, and Docker\'s schema 2', () => {
    accepts(validateManifest, manifest(), 'an image');
    accepts(validateManifest, changed(manifest(), 'mediaType', undefined), 'without the optional mediaType');
    accepts(validateManifest, manifest({ subject: descriptor({ mediaType: 'application/vnd.oci.image.manifest.v1+json' }), artifactType: 'application/vnd.example.signature' }), 'a referrer');
    accepts(validateManifest, manifest({ artifactType: 'application/vnd.example.sbom', layers: [] }), 'an artifact needs no layer');
    accepts(validateManifest, manifest({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 1469, digest: CONFIG_DIGEST }, layers: [descriptor({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' })] }), 'Docker schema 2');
  });

  it('refuses what breaks the manifest\'s rules, naming the path', () => {
    const cases: [unknown, string, string][] = [
      [changed(manifest(), 'schemaVersion', undefined), 'schemaVersion', 'no schemaVersion'],
      [manifest({ schemaVersion: 1 }), 'schemaVersion', 'schema 1'],
      [manifest({ schemaVersion: '2' }), 'schemaVersion', 'schemaVersion as a string'],
      [changed(manifest(), 'config', undefined), 'config', 'no config'],
      [changed(manifest(), 'layers', undefined), 'layers', 'no layers'],
      [manifest({ layers: [] }), 'layers', 'an image with no layer'],
      [manifest({ layers: {} }), 'layers', 'layers as an object'],
      [changed(manifest(), 'config/digest', 'sha256:zz'), 'config.digest', 'a bad config digest'],
      [changed(manifest(), 'layers/1/size', -5), 'layers[1].size', 'a negative layer size'],
      [changed(manifest(), 'layers/0/mediaType', undefined), 'layers[0].mediaType', 'a layer without media type'],
      [manifest({ mediaType: 'manifest' }), 'mediaType', 'a bad media type'],
      [manifest({ annotations: { created: 2024 } }), 'annotations.created', 'a number as annotation'],
      [manifest({ subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1 } }), 'subject.digest', 'a subject without digest'],
      ['{"schemaVersion":2}', 'document', 'a string, not an object'],
    ];
    for (const [document, path, why] of cases) refuses(validateManifest, document, path, why);
  });
});

describe('OCI image indexes', () => {
  it('accepts an index of several platforms, an empty one, one with annotations and a subject, and Docker\'s manifest list', () => {
    accepts(validateIndex, index(), 'three platforms');
    accepts(validateIndex, index({ manifests: [] }), 'no manifests');
    accepts(validateIndex, index({ annotations: { 'org.opencontainers.image.ref.name': 'v1' }, subject: descriptor(), artifactType: 'application/vnd.example' }), 'annotations, subject, artifactType');
    accepts(validateIndex, index({ mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [{ ...platformEntry('amd64'), mediaType: 'application/vnd.docker.distribution.manifest.v2+json' }] }), 'a Docker manifest list');
    accepts(validateIndex, index({ manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', size: 1, digest: digestOf('nested') }] }), 'an index in an index, without platform');
  });

  it('refuses what breaks the index\'s rules, naming the path', () => {
    const cases: [unknown, string, string][] = [
      [changed(index(), 'manifests', undefined), 'manifests', 'no manifests'],
      [index({ manifests: {} }), 'manifests', 'manifests as an object'],
      [index({ schemaVersion: 3 }), 'schemaVersion', 'schema 3'],
      [changed(index(), 'manifests/1/platform/architecture', undefined), 'manifests[1].platform.architecture', 'a platform without architecture'],
      [changed(index(), 'manifests/0/platform/os', 5), 'manifests[0].platform.os', 'a number as os'],
      [changed(index(), 'manifests/2/platform/os.version', 10), 'manifests[2].platform.os.version', 'a number as os.version'],
      [changed(index(), 'manifests/0/digest', 'sha256:' + 'g'.repeat(64)), 'manifests[0].digest', 'a digest that is not hex'],
      [changed(index(), 'manifests/0/mediaType', undefined), 'manifests[0].mediaType', 'an entry without media type'],
      [index({ mediaType: 'index' }), 'mediaType', 'a bad media type'],
      [index({ annotations: 'x' }), 'annotations', 'annotations as a string'],
    ];
    for (const [document, path, why] of cases) refuses(validateIndex, document, path, why);
  });
});

describe('OCI image configs', () => {
  it('accepts a full config, a minimal one, and Docker\'s with nulls and fields of its own', () => {
    accepts(validateImageConfig, config(), 'every field');
    accepts(validateImageConfig, { architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, 'the three required fields');
    accepts(validateImageConfig, config({ variant: 'v8', 'os.version': '10.0', 'os.features': ['win32k'], created: '2024-01-02 03:04:05z', container: 'abc', docker_version: '20.10.24', config: { Env: null, Cmd: null, Entrypoint: null, Volumes: null, Labels: null, ExposedPorts: null, OnBuild: null, Hostname: 'x', Image: '' } }), 'Docker\'s nulls and extra fields');
  });

  it('refuses what breaks the config\'s rules, naming the path', () => {
    const cases: [unknown, string, string][] = [
      [changed(config(), 'architecture', undefined), 'architecture', 'no architecture'],
      [changed(config(), 'os', undefined), 'os', 'no os'],
      [changed(config(), 'rootfs', undefined), 'rootfs', 'no rootfs'],
      [config({ architecture: 64 }), 'architecture', 'a number as architecture'],
      [config({ created: 'yesterday' }), 'created', 'a created time that is not RFC 3339'],
      [config({ created: '2024-01-02T03:04:05' }), 'created', 'a time without zone'],
      [config({ created: '2024-13-02T03:04:05Z' }), 'created', 'month 13'],
      [changed(config(), 'rootfs/type', 'tarball'), 'rootfs.type', 'a rootfs type other than layers'],
      [changed(config(), 'rootfs/diff_ids', undefined), 'rootfs.diff_ids', 'no diff_ids'],
      [changed(config(), 'rootfs/diff_ids/1', 'sha256:1234'), 'rootfs.diff_ids[1]', 'a short diffID'],
      [changed(config(), 'config/Env', ['PATH']), 'config.Env[0]', 'an Env entry without ='],
      [changed(config(), 'config/Env', ['=value']), 'config.Env[0]', 'an Env entry without a name'],
      [changed(config(), 'config/Env', 'A=1'), 'config.Env', 'Env as a string'],
      [changed(config(), 'config/Cmd', 'run'), 'config.Cmd', 'Cmd as a string'],
      [changed(config(), 'config/Entrypoint', [1]), 'config.Entrypoint[0]', 'a number in Entrypoint'],
      [changed(config(), 'config/ExposedPorts', { '80/tcp': true }), 'config.ExposedPorts.80/tcp', 'a port whose value is not an object'],
      [changed(config(), 'config/Volumes', ['/data']), 'config.Volumes', 'Volumes as an array'],
      [changed(config(), 'config/Labels', { tier: 1 }), 'config.Labels.tier', 'a label that is not a string'],
      [changed(config(), 'config/User', 1000), 'config.User', 'a number as User'],
      [changed(config(), 'config/ArgsEscaped', 'yes'), 'config.ArgsEscaped', 'ArgsEscaped as a string'],
      [changed(config(), 'history/1/empty_layer', 'true'), 'history[1].empty_layer', 'empty_layer as a string'],
      [changed(config(), 'history/0/created', 'now'), 'history[0].created', 'a bad time in history'],
      [config({ history: {} }), 'history', 'history as an object'],
      [config({ config: [] }), 'config', 'config as an array'],
    ];
    for (const [document, path, why] of cases) refuses(validateImageConfig, document, path, why);
  });
});

describe('OCI layout files', () => {
  it('accepts version 1.0.0 only', () => {
    accepts(validateLayout, { imageLayoutVersion: '1.0.0' }, 'the one version');
    refuses(validateLayout, { imageLayoutVersion: '1.1.0' }, 'imageLayoutVersion', 'another version');
    refuses(validateLayout, { imageLayoutVersion: 1 }, 'imageLayoutVersion', 'a number');
    refuses(validateLayout, {}, 'imageLayoutVersion', 'no version');
  });
});

describe('Docker documents', () => {
  it('accepts a Docker-written config with nulls and extra fields, and reports the JSON path of a problem', () => {
    validateImageConfig({ architecture: 'amd64', os: 'linux', config: { Env: null, Cmd: null, Volumes: null, Labels: null, Hostname: '' }, container_config: {}, docker_version: '20.10', rootfs: { type: 'layers', diff_ids: [] } }, 'c');
    assert.throws(() => validateManifest({ schemaVersion: 2, config: { mediaType: 'a/b', size: 1, digest: 'sha256:zz' }, layers: [] }, 'manifest.json'), /^KilnError: manifest.json: config.digest "sha256:zz" is not a valid digest$|manifest.json: config.digest/);
  });

  it('refuses a JSON document over the size limit without parsing it', () => {
    assert.throws(() => parseJson(Buffer.alloc(9 << 20, 0x20), 'index.json'), (err) => isKilnError(err, 'INVALID_INPUT') && /index.json: \d+ bytes is more than/.test(err.message));
    assert.throws(() => parseJson('{', 'x'), (err) => isKilnError(err, 'INVALID_INPUT') && /invalid JSON/.test(err.message));
  });
});
