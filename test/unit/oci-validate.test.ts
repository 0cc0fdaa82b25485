import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { sha256 } from '../../src/oci/digest.js';
import { parseJson, validateDescriptor, validateImageConfig, validateIndex, validateLayout, validateManifest } from '../../src/oci/validate.js';
import { conformanceDir } from '../helpers/paths.js';

const corpus = join(conformanceDir, 'oci-image-spec');

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

describe('OCI image-spec conformance cases', () => {
  for (const file of readdirSync(join(corpus, 'cases')).sort()) {
    const data = JSON.parse(readFileSync(join(corpus, 'cases', file), 'utf8')) as { cases: Case[]; dockerToOciMediaTypeReplacements?: Record<string, string> };
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

describe('OCI image-spec examples from the spec text', () => {
  const index = JSON.parse(readFileSync(join(corpus, 'examples', 'index.json'), 'utf8')) as { examples: { file: string; mediaType: string }[] };
  for (const { file, mediaType } of index.examples) {
    it(`${file} (${mediaType}) is valid`, () => validate(mediaType, readFileSync(join(corpus, 'examples', file), 'utf8')));
  }
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
