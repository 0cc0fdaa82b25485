import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * One of kiln's own native addons (`native/`, built by `npm ci`), loaded at the first call of the
 * returned function; that returns undefined when the addon was not built or cannot load (a library it
 * links was removed since), and the caller does the work without it.
 */
export function optionalAddon<T>(file: URL): () => T | undefined {
  let loaded: T | null | undefined;
  return () => {
    if (loaded === undefined) {
      const path = fileURLToPath(file);
      try {
        loaded = existsSync(path) ? (createRequire(import.meta.url)(path) as T) : null;
      } catch {
        loaded = null;
      }
    }
    return loaded ?? undefined;
  };
}
