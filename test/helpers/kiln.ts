import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, tempDir } from './paths.js';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly stdoutBytes: Buffer;
}

export const kilnBin = join(repoRoot, 'bin', 'kiln');

/**
 * Runs the real `bin/kiln` against a store root, as a program (as a user's shell runs it), feeding `input`
 * to stdin, in `cwd` (default the test's).
 */
export function runKiln(root: string, args: readonly string[], input?: Buffer | string, env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(kilnBin, ['--root', root, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC', ...env }, ...(cwd !== undefined ? { cwd } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** A fresh store and a runner bound to it. */
export async function newKiln(): Promise<{ root: string; kiln: (args: readonly string[], input?: Buffer | string, env?: NodeJS.ProcessEnv) => Promise<RunResult> }> {
  const root = await tempDir('kiln-root-');
  return { root, kiln: (args, input, env) => runKiln(root, args, input, env) };
}

/** Runs kiln and fails with its stderr when it does not exit 0. */
export async function ok(result: Promise<RunResult>): Promise<RunResult> {
  const r = await result;
  if (r.code !== 0) throw new Error(`kiln exited ${r.code}: ${r.stderr}`);
  return r;
}
