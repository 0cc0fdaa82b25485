import { homedir } from 'node:os';
import { join } from 'node:path';

/** The store root when neither --root nor KILN_ROOT names one: Docker-like for root, XDG for others. */
export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_ROOT) return env.KILN_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/kiln';
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'kiln');
}
