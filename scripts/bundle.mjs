// The second half of `npm run build`, after tsc: the CLI as one CommonJS module, dist/kiln.cjs, and V8's
// code cache for it, which bin/kiln runs (one file to read, mostly compiled already, where tsc's output is
// some sixty modules to resolve, read and compile before a command starts). CommonJS, as Node 20 compiles
// a script with a code cache (vm.Script's cachedData), not an ES module. tsc's output stays the reference:
// the tests import it, workers run from it, and bin/kiln falls back to it when the bundle is missing or
// older.
//
// - Packages with native addons or heavy code (zstd-napi, undici, the SBOM libraries) stay outside,
//   loaded from node_modules where they are used; commander and better-sqlite3's JavaScript go in.
// - Node's built-ins are imported through shims, which run only when the module that imports them first
//   runs (see lazyBuiltins).
// - `import.meta.url` in a source file is rewritten to the URL of that file's tsc output, so the paths
//   it resolves (workers, native/, bin/kiln) are the same in the bundle as in dist/src.
// - The source map names the TypeScript sources: an internal error's stack trace points at them.
// - The bundle ends with a build ID (a digest of its content), which its code cache starts with: bin/kiln
//   uses a cache only with the bundle it was made from (V8 itself checks only the source's length).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = resolve(repo, 'dist', 'kiln.cjs');
const pkg = JSON.parse(await readFile(resolve(repo, 'package.json'), 'utf8'));
/**
 * Packages bundled: commander, and better-sqlite3's JavaScript (its addon is loaded from node_modules by
 * path, see openSqlite in src/meta/db.ts), which would otherwise be a dozen modules to resolve and
 * compile whenever a command opens the store.
 */
const BUNDLED = new Set(['commander', 'better-sqlite3']);
const external = Object.keys(pkg.dependencies)
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

/**
 * The names kiln's sources import from each built-in (`import { a, b as c } from 'node:x'`), which its
 * shim exports: a shim that is an ES module is linked to directly, where a CommonJS one would be copied
 * into a new object for every module that imports it (138 copies in a cached build, some ms). Another
 * form of import (default, namespace) finds no export here and fails the build, loudly.
 */
async function builtinImports() {
  const names = new Map();
  for (const file of await readdir(resolve(repo, 'src'), { recursive: true })) {
    if (!file.endsWith('.ts')) continue;
    const source = await readFile(resolve(repo, 'src', file), 'utf8');
    for (const [, list, builtin] of source.matchAll(/^import \{([^}]*)\} from '(node:[^']+)';/gm)) {
      const imported = names.get(builtin) ?? new Set();
      for (const item of list.split(',').map((part) => part.trim()).filter((part) => part && !part.startsWith('type '))) imported.add(item.split(/\s+as\s+/)[0]);
      names.set(builtin, imported);
    }
  }
  return names;
}

/**
 * Built-ins of which kiln only calls the functions it imports: their shims export functions that load the
 * module at the first call. crypto costs some ms to load, and listing or inspecting images hashes nothing;
 * fs/promises loads Node's streams and readline (some ms), and `kiln version` reads no file; timers/promises
 * is for the waits of builds, registries and containers.
 */
const CALLED_ONLY = new Set(['node:crypto', 'node:fs/promises', 'node:child_process', 'node:timers/promises']);

/**
 * Functions of CALLED_ONLY built-ins with their own util.promisify form (execFile's resolves to stdout and
 * stderr): their stand-ins carry one that forwards to it, so that `promisify(execFile)` at a module's top
 * level still loads nothing and behaves the same. child_process costs some ms to load (net, dgram, streams),
 * and a fully cached build runs nothing.
 */
const PROMISIFIED = new Map([['node:child_process', ['execFile', 'exec']]]);

/**
 * Built-ins through shims, which the bundle runs only when the module that imports them first runs:
 * `kiln version` never loads child_process or crypto (an ES module's `import` of a built-in is hoisted
 * to the bundle's top and would run at start-up, whatever needs it). A dynamic `import('node:x')` becomes
 * a require through a shim (the bundle is a script, which has no `import()`). commander's
 * `require('node:child_process')` (some ms, and commander spawns only for external subcommands, which
 * kiln has none of) gets an object that loads the module at the first property read;
 * only there, as a method read through it is called on that object, not on the module (`spawn` does
 * not mind). commander's other requires are of modules Node has loaded before any code runs.
 * @type {import('esbuild').Plugin}
 */
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const importedNames = builtinImports();
    b.onResolve({ filter: /^node:/ }, (args) => {
      if (args.namespace.startsWith('lazy-builtin')) return { path: args.path, external: true };
      if (args.kind !== 'require-call' && args.kind !== 'dynamic-import') return { path: args.path, namespace: 'lazy-builtin' };
      return { path: args.path, namespace: args.path === 'node:child_process' ? 'lazy-builtin-property' : 'lazy-builtin-cjs' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (args) => {
      const names = [...((await importedNames).get(args.path) ?? [])];
      const builtin = JSON.stringify(args.path);
      if (CALLED_ONLY.has(args.path)) {
        const custom = "Symbol.for('nodejs.util.promisify.custom')";
        const promisified = (PROMISIFIED.get(args.path) ?? []).filter((name) => names.includes(name));
        return {
          contents: [
            'let builtin;',
            ...names.map((name) => `export function ${name}(...args) { return (builtin ??= require(${builtin})).${name}(...args); }`),
            ...promisified.map((name) => `${name}[${custom}] = (...args) => (builtin ??= require(${builtin})).${name}[${custom}](...args);`),
          ].join('\n'),
          loader: 'js',
        };
      }
      return { contents: [`const builtin = require(${builtin});`, ...names.map((name) => `export const ${name} = builtin.${name};`)].join('\n'), loader: 'js' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin-cjs' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin-property' }, (args) => ({
      contents: `let loaded;\nmodule.exports = new Proxy({}, { get: (_, key) => (loaded ??= require(${JSON.stringify(args.path)}))[key] });`,
      loader: 'js',
    }));
  },
};

/**
 * The packages left outside, through CommonJS shims: an ES module's `import` of an external package is
 * hoisted to the bundle's top and would load it at start-up (the SBOM libraries, zstd-napi's addon)
 * whatever needs it; a shim is run only when the module that imports it first runs. A dynamic
 * `import('pkg')` becomes the shim's require too (the bundle is a script, which has no `import()`).
 * @type {import('esbuild').Plugin}
 */
const lazyPackages = {
  name: 'lazy-packages',
  setup(b) {
    const outside = new RegExp(`^(${Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name)).map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})(/.*)?$`);
    b.onResolve({ filter: outside }, (args) => (args.namespace === 'lazy-package' || (args.kind !== 'import-statement' && args.kind !== 'dynamic-import') ? { path: args.path, external: true } : { path: args.path, namespace: 'lazy-package' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

/** @type {import('esbuild').Plugin} */
const tscImportMetaUrl = {
  name: 'tsc-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\/src\/.*\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      const compiled = relative(dirname(outfile), resolve(repo, 'dist', relative(repo, args.path))).replace(/\.ts$/, '.js');
      return { contents: source.replaceAll('import.meta.url', `new URL(${JSON.stringify(`./${compiled}`)}, __kilnBundleUrl).href`), loader: 'ts' };
    });
  },
};

/**
 * `kiln build`'s own bundle, dist/kiln-build.cjs: the CLI without the other commands' modules (those
 * main.ts imports by name; a build never loads them). A fully cached build is mostly start-up, and this
 * bundle is a third smaller: less to read and decode, and a third fewer functions made as it starts.
 * bin/kiln runs it for `kiln build` where it is; it is kept only with its code cache (see buildCache),
 * since without one the whole CLI with the common cache starts faster.
 * @type {import('esbuild').Plugin}
 */
const onlyBuild = {
  name: 'only-build',
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\// }, (args) => (args.importer === resolve(repo, 'src', 'cli', 'main.ts') && args.path !== './commands/build.js' ? { path: args.path, namespace: 'left-out' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({ contents: `throw new Error(${JSON.stringify(`${args.path} is not in dist/kiln-build.cjs, which bin/kiln runs only for kiln build`)});`, loader: 'js' }));
  },
};

/** The CLI bundled into `file` (the `extra` plugins first), ending with its build ID, and checked. */
async function bundle(file, extra = []) {
  const name = relative(repo, file);
  await build({
    absWorkingDir: repo,
    entryPoints: ['src/cli/main.ts'],
    outfile: file,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external,
    plugins: [...extra, lazyBuiltins, lazyPackages, tscImportMetaUrl],
    // The file is the CommonJS module wrapped in its function, as Node's loader wraps one: bin/kiln compiles
    // it as it is (no copy of 900 kB with a wrapper around). import.meta.url in the ES modules becomes the
    // bundle's URL (node:url is loaded before any code runs). Strict, as ES modules are.
    banner: { js: "(function (exports, require, module, __filename, __dirname) {'use strict';\nconst __kilnBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    footer: { js: '})' },
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
  const buildId = createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 32);
  await appendFile(file, `//# kilnBuild=${buildId}\n`);
  // A script has no `import()` (a specifier esbuild could not resolve, e.g. one computed at run time).
  const bundled = await readFile(file, 'utf8');
  if (/(?<![\w$.])import\(/.test(bundled)) throw new Error(`${name} calls import(), which a script compiled by bin/kiln cannot: import a specifier esbuild can resolve`);
  // ASCII only: reading it then takes Node's fast path, without decoding UTF-8 (esbuild escapes strings,
  // not regular expressions: write \u00b5 there).
  const nonAscii = /[^\0-\x7f]/.exec(bundled);
  if (nonAscii) throw new Error(`${name} has a character that is not ASCII (${JSON.stringify(bundled.slice(Math.max(0, nonAscii.index - 40), nonAscii.index + 10))}): escape it in the source`);
}

const buildOutfile = resolve(repo, 'dist', 'kiln-build.cjs');
await bundle(outfile);
await bundle(buildOutfile, [onlyBuild]);

// The code cache, made by bin/kiln itself (the same compilation as at run time) running `kiln version`.
// What runs at start-up must stay Node's own: the bundle's top level may require only what Node has
// loaded before any code runs (a package or another built-in would load before any command needs it),
// which the same run checks.
const cache = `${outfile}.cache`;
for (const name of await readdir(dirname(outfile))) if (/^kiln(-build)?\.cjs(\.\w+)?\.cache$/.test(name)) await rm(resolve(dirname(outfile), name), { force: true });
const kiln = resolve(repo, 'bin', 'kiln');
const checkTopLevel = resolve(repo, 'scripts', 'bundle-top-level.cjs');
execFileSync(process.execPath, ['--require', checkTopLevel, kiln, 'version'], { env: { ...process.env, KILN_CODE_CACHE_OUT: cache }, stdio: ['ignore', 'ignore', 'inherit'] });

/**
 * `kiln build`'s own bundle's cache, made by two builds of a two-stage Dockerfile, the second fully
 * cached, the second adding to the first's cache (see bin/kiln), so that V8 has compiled what both run: a
 * cold build's RUN steps (the runtime's spec and start, the layer of its changes) and a cached build's
 * checks, plan, cache lookups and progress. Without these a cold build of two RUN steps compiled some
 * 8 ms of functions as it went (a tenth of its time); a cached build starts some 1 ms later for the
 * larger cache. The RUN steps need busybox-static (the image) and a runtime; without them (or when those
 * builds fail) the builds are of COPY and metadata alone. A build needs root; without it (or when it
 * fails) the build bundle goes, and builds run the whole CLI with the common cache.
 */
async function buildCache(store) {
  if (process.getuid?.() === 0) {
    const context = join(store, 'context');
    await mkdir(context);
    await writeFile(join(context, 'a.txt'), 'a\n');
    const cache = `${buildOutfile}.build.cache`;
    let failure;
    for (const runs of busyboxImage(store) ? [true, false] : [false]) {
      const run = (command) => (runs ? [`RUN ${command}`] : []);
      const base = runs ? 'cache:busybox' : 'cache:warm';
      await writeFile(join(context, 'Dockerfile'), [`FROM ${base} AS one`, 'ARG N=1', 'ENV A=$N', 'WORKDIR /app', 'COPY a.txt .', ...run('mkdir -p /out && echo $A > /out/one'), `FROM ${base}`, 'LABEL n=1', ...run('echo two > /two'), 'COPY --from=one /app /app', 'CMD ["cat", "/app/a.txt"]', ''].join('\n'));
      const build = [kiln, '--root', join(store, 'root'), 'build', '--network', 'none', '-t', 'cache:build', context];
      const env = { ...process.env, KILN_CODE_CACHE_OUT: cache };
      await rm(cache, { force: true }); // what a failed try left
      try {
        execFileSync(process.execPath, build, { env, stdio: ['ignore', 'ignore', 'pipe'] });
        execFileSync(process.execPath, build, { env, stdio: ['ignore', 'ignore', 'pipe'] });
        return;
      } catch (err) {
        failure = err; // no runtime may run; the store's file system may not take the build's snapshots
      }
    }
    process.stderr.write(`kiln: no code cache of its own for kiln build (${String(failure.stderr ?? failure.message).trim().split('\n').at(-1)})\n`);
  }
  await rm(buildOutfile, { force: true });
  await rm(`${buildOutfile}.map`, { force: true });
  await rm(`${buildOutfile}.build.cache`, { force: true });
}

/** Imports a busybox root filesystem as cache:busybox into the store; false where busybox-static is missing. */
function busyboxImage(store) {
  try {
    const rootfs = join(store, 'busybox.tar');
    execFileSync('bash', [resolve(repo, 'scripts', 'busybox-rootfs.sh'), rootfs], { stdio: ['ignore', 'ignore', 'ignore'] });
    execFileSync(process.execPath, [kiln, '--root', join(store, 'root'), 'import', rootfs, 'cache:busybox'], { stdio: ['ignore', 'ignore', 'inherit'] });
    return true;
  } catch {
    return false;
  }
}

// The commands with a cache of their own (see bin/kiln), each made by running it on a store of one image
// (an empty layer, imported from an empty tar), so that V8 has compiled what it runs for every image
// (for analyze: the listing, the figures, the findings and the JSON, some 2 % of a big image's time; then,
// added to it, what reading the image from a docker-archive: source runs, some 5 ms).
const store = await mkdtemp(join(tmpdir(), 'kiln-code-cache.'));
const savedTar = join(store, 'saved.tar');
const OWN_CACHE = [['images'], ['inspect', 'cache:warm'], ['analyze', '--format', 'json', 'cache:warm'], ['analyze', '--format', 'json', `docker-archive:${savedTar}`]];
try {
  const emptyTar = join(store, 'empty.tar');
  await writeFile(emptyTar, Buffer.alloc(1024));
  execFileSync(process.execPath, [kiln, '--root', join(store, 'root'), 'import', emptyTar, 'cache:warm'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(process.execPath, [kiln, '--root', join(store, 'root'), 'save', '-o', savedTar, 'cache:warm'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const args of OWN_CACHE) {
    execFileSync(process.execPath, [kiln, '--root', join(store, 'root'), ...args], { env: { ...process.env, KILN_CODE_CACHE_OUT: `${outfile}.${args[0]}.cache` }, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  await buildCache(store);
} finally {
  await rm(store, { recursive: true, force: true });
}
