import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { readTextIfPresent } from '../../src/errors.js';

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
 * What is mounted in it is detached first: a kiln a test killed (a build past its time bound) leaves its
 * mounts to its guard, which may not have undone them yet; rm then failed on the busy mount point, and a
 * failed hook skips the test's later ones, which left every later directory of that test behind.
 */
export async function tempDir(prefix = 'kiln-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(async () => {
    for (const target of mountsBelow(dir)) {
      try {
        execFileSync('umount', ['-l', target], { stdio: 'ignore' });
      } catch {
        // undone meanwhile (by the guard), or rm says what is wrong
      }
    }
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** The mount points at or below `dir`, deepest first (/proc/self/mountinfo's fifth field, octal escapes undone). */
function mountsBelow(dir: string): string[] {
  const mountinfo = readTextIfPresent('/proc/self/mountinfo') ?? '';
  const points = mountinfo.split('\n').map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  return points.filter((point) => point === dir || point.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

export const isRoot = process.getuid?.() === 0;
