import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * One of kiln's own native addons (`native/`, built by `npm ci`), loaded at the first call of the
 * returned function; that returns undefined when the addon was not built or cannot load (a library it
 * links was removed since), and the caller does the work without it. Loaded with process.dlopen, as
 * require loads a .node file, without require's resolving of the path (its realpath, its package.json
 * lookups: some tenths of a millisecond of every command's start).
 */
export function optionalAddon<T>(file: URL): () => T | undefined {
  let loaded: T | null | undefined;
  return () => {
    if (loaded === undefined) {
      const path = fileURLToPath(file);
      loaded = null;
      try {
        if (existsSync(path)) {
          const module = { exports: {} as T };
          process.dlopen(module, path);
          loaded = module.exports;
        }
      } catch {
        // not loaded: the caller goes without it
      }
    }
    return loaded ?? undefined;
  };
}
