import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

/** The repository root (tests run compiled from dist/test/...). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** `../shared` beside the repository: conformance corpora and fixtures, read in place. */
export const sharedDir = resolve(repoRoot, '../shared');
export const fixturesDir = join(sharedDir, 'fixtures/images');
export const conformanceDir = join(sharedDir, 'conformance');

/** A fresh temporary directory, removed when the test file ends. */
export async function tempDir(prefix = 'kiln-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const isRoot = process.getuid?.() === 0;
