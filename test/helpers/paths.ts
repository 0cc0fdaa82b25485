import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

/** The repository root (tests run compiled from dist/test/...). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Where the external conformance corpora are, when they are anywhere: $KILN_CONFORMANCE_DIR, else
 * `../shared/conformance` beside the repository when it exists. They are optional inputs (BuildKit's
 * parser and word-expansion vectors, the OCI image-spec's documents), not the project's to copy: the
 * project's own cases run without them. Image fixtures never come from here (see fixtures.ts).
 */
export const conformanceDir = resolve(process.env.KILN_CONFORMANCE_DIR ?? join(repoRoot, '../shared/conformance'));

/** One external corpus: its files, or why its tests skip. */
export interface ConformanceCorpus {
  /** False when the corpus is here; otherwise the reason, naming KILN_CONFORMANCE_DIR. */
  readonly skip: string | false;
  /** A path inside the corpus (only for tests that did not skip). */
  path(...parts: string[]): string;
}

export function conformanceCorpus(name: string): ConformanceCorpus {
  const dir = join(conformanceDir, name);
  const present = existsSync(dir);
  return {
    skip: present ? false : `the external ${name} corpus is not here: set KILN_CONFORMANCE_DIR to a directory holding ${name}/ (looked in ${conformanceDir}); the project's own cases run without it`,
    path: (...parts) => {
      if (!present) throw new Error(`no ${name} corpus in ${conformanceDir}`);
      return join(dir, ...parts);
    },
  };
}

/**
 * A fresh temporary directory, removed when the test that asked for it ends (node:test's `after`, called in a
 * test, is that test's hook, run before any the test adds later), or the file, when asked outside a test.
 */
export async function tempDir(prefix = 'kiln-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const isRoot = process.getuid?.() === 0;
