// Lint configuration: typescript-eslint's recommended type-aware rules over src, test and bench.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layering of src/ (docs/architecture.md, "One folder, one noun"): the folders each folder may import,
 * lowest first. An import of any other folder of src/ fails lint, static or dynamic (`await import()`).
 * src/errors.ts is everyone's. A new edge is a decision: add it here and to the map in the docs.
 */
const LAYERS = {
  oci: [],
  dockerfile: [],
  reference: ['oci'],
  content: ['oci'],
  meta: ['oci'],
  layer: ['oci'],
  image: ['oci'],
  registry: ['oci'],
  runtime: ['oci'],
  gc: ['oci', 'content', 'image', 'meta'],
  snapshot: ['oci', 'content', 'image', 'layer', 'meta'],
  transport: ['oci', 'reference', 'content', 'meta', 'gc', 'image', 'layer', 'registry'],
  builder: ['oci', 'dockerfile', 'content', 'image', 'layer', 'meta', 'runtime', 'snapshot', 'transport'],
  analyze: ['oci', 'reference', 'dockerfile', 'image', 'layer', 'meta', 'builder'],
  engine: ['oci', 'reference', 'dockerfile', 'content', 'meta', 'layer', 'image', 'registry', 'runtime', 'gc', 'snapshot', 'transport', 'builder', 'analyze'],
  // The front ends call engine (and parse names as typed); they may name a lower folder's types, never call it.
  // The CLI starts the API server (`kiln serve`: api/server.js, nothing else of api/), prints analyze's
  // documents in their formats and reads the docker client's config.json (registry/credentials.js: its
  // detachKeys); api/ never imports cli/.
  api: ['engine', 'reference'],
  cli: ['engine', 'reference', 'analyze', 'api/server.js', 'registry/credentials.js'],
};
const FRONT_ENDS = ['api', 'cli'];
const FOLDERS = Object.keys(LAYERS);

/** One config per folder: its forbidden folders as import patterns (`../engine/…`, `../../api/…`). */
function layering(folder) {
  const allowed = LAYERS[folder];
  // An allowed `folder/file.js` lets in that one module of the folder.
  const forbidden = FOLDERS.filter((other) => other !== folder && !allowed.includes(other)).map((other) => {
    const only = allowed.filter((entry) => entry.startsWith(`${other}/`)).map((entry) => entry.slice(other.length + 1).replaceAll('.', '\\.'));
    return only.length > 0 ? `${other}/(?!(${only.join('|')})$)` : `${other}/`;
  });
  const regex = `^(\\.\\./)+(${forbidden.join('|')})`;
  const message = `${folder}/ may import only ${allowed.join(', ') || 'errors.ts'}${FRONT_ENDS.includes(folder) ? ' (and other folders\' types)' : ''}: see LAYERS in eslint.config.js and docs/architecture.md`;
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex, message, allowTypeImports: FRONT_ENDS.includes(folder) }] }],
      'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/${regex.replaceAll('/', '\\/')}/]`, message }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...FOLDERS.map(layering),
  {
    // node:test's describe/it return promises that the runner itself awaits.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
