import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir } from './paths.js';

/** A schema to validate against, or why the checks against it skip. */
export type SchemaOrSkip = { readonly schema: Record<string, unknown> } | { readonly skip: string };

/**
 * A published JSON schema from the corpus folder `folder` (the first file whose name matches `name`), or
 * why the checks against it skip: the schemas are other projects' files, read where the user keeps them.
 */
export function conformanceSchema(folder: string, name: RegExp, what: string): SchemaOrSkip {
  const dir = join(conformanceDir, folder);
  const file = existsSync(dir) ? readdirSync(dir).find((entry) => name.test(entry)) : undefined;
  if (!file) return { skip: `${what} is not here: set KILN_CONFORMANCE_DIR to a directory whose ${folder}/ holds it (looked in ${dir})` };
  return { schema: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown> };
}

/** The SARIF 2.1.0 schema (OASIS), draft-04, as ajv 8 reads it: draft-07 differs for it only in `id` → `$id`. */
export function sarifSchema(): SchemaOrSkip {
  const found = conformanceSchema('sarif', /^(?!.*external).*sarif.*2\.1\.0.*\.json$/, 'the SARIF 2.1.0 JSON schema (OASIS, sarif-schema-2.1.0.json)');
  if ('skip' in found) return found;
  const { $schema: _draft, id, ...schema } = found.schema;
  return { schema: { ...schema, $id: id } };
}

/** SPDX 2.3's published JSON schema (draft-07). */
export function spdxSchema(): SchemaOrSkip {
  return conformanceSchema('spdx', /^spdx-schema\.json$/, "SPDX 2.3's published JSON schema (spdx-spec's schemas/spdx-schema.json at tag v2.3)");
}
