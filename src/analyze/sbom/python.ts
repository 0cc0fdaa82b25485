/**
 * Python distributions: `NAME-VER.dist-info/METADATA` (wheels, pip) and `NAME-VER.egg-info/PKG-INFO` or a
 * single-file `NAME-VER.egg-info` (setuptools), wherever they lie (site-packages, dist-packages, a venv).
 */
import { type Cataloguer, recordFields } from './cataloguer.js';
import { spdxExpression } from './licenses.js';
import { purlOf } from './purl.js';

const METADATA = /\/[^/]+\.dist-info\/METADATA$|\/[^/]+\.egg-info\/PKG-INFO$|\/[^/]+\.egg-info$/;

/** Trove classifiers' license names (`License :: OSI Approved :: MIT License`) that name one SPDX license. */
const CLASSIFIERS: Readonly<Record<string, string>> = {
  'MIT License': 'MIT',
  'Apache Software License': 'Apache-2.0',
  'ISC License (ISCL)': 'ISC',
  'Mozilla Public License 2.0 (MPL 2.0)': 'MPL-2.0',
  'Python Software Foundation License': 'PSF-2.0',
  'The Unlicense (Unlicense)': 'Unlicense',
  'GNU General Public License v2 (GPLv2)': 'GPL-2.0-only',
  'GNU General Public License v3 (GPLv3)': 'GPL-3.0-only',
  'GNU Lesser General Public License v3 (LGPLv3)': 'LGPL-3.0-only',
};

interface PythonMetadata {
  readonly name: string;
  readonly version: string;
  readonly license: string | null;
}

function parseMetadata(bytes: Buffer): PythonMetadata | undefined {
  // The headers end at the first blank line; the description follows.
  const text = bytes.toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  const fields = recordFields((end === -1 ? text : text.slice(0, end)).replace(/\r\n/g, '\n'));
  const name = fields.get('Name');
  const version = fields.get('Version');
  if (name === undefined || version === undefined || name === '' || version === '') return undefined;
  const classified = (fields.get('Classifier') ?? '')
    .split('\n')
    .map((c) => /^License :: (?:OSI Approved :: )?(.+)$/.exec(c.trim())?.[1])
    .map((c) => (c === undefined ? undefined : CLASSIFIERS[c]))
    .find((c) => c !== undefined);
  const license = spdxExpression(fields.get('License-Expression')) ?? spdxExpression(fields.get('License')) ?? classified ?? null;
  return { name, version, license };
}

export const python: Cataloguer<PythonMetadata> = {
  name: 'python',
  owner: false,
  select: (path) => (METADATA.test(path) ? { maxBytes: 16 << 20, read: parseMetadata } : undefined),
  catalogue: (files) =>
    files.map((file) => ({
      name: file.value.name,
      version: file.value.version,
      type: 'pypi' as const,
      purl: purlOf('pypi', undefined, file.value.name, file.value.version),
      license: file.value.license,
      source: null,
      foundIn: file.path,
      files: [file.path],
      layer: file.layer,
    })),
};
