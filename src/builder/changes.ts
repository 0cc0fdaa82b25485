import { KilnError } from '../errors.js';
import type { ContainerConfig } from '../oci/types.js';
import { planBuild } from './plan.js';
import { hostPlatform } from '../oci/platform.js';
import { parseInstructions } from '../dockerfile/instructions.js';

/**
 * The Dockerfile instructions that `import -c` and `commit -c` accept, applied to an image's container
 * config through the same parser and planner as a build (so `ENV`, `LABEL`, `CMD`… mean exactly what
 * they mean in a Dockerfile), one instruction per change, as Docker takes them.
 */
const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'] as const;

/** Applies `changes` in order to `config`, returning a new config. */
export function applyChanges(config: ContainerConfig, changes: readonly string[]): ContainerConfig {
  if (changes.length === 0) return config;
  for (const change of changes) {
    const where = `change ${JSON.stringify(change)}`;
    if (/[\r\n]/.test(change)) throw new KilnError('INVALID_ARGUMENT', `${where}: a change is one instruction on one line`);
    const instruction = (/^\s*(\S+)/.exec(change)?.[1] ?? '').toUpperCase();
    if (instruction === '') throw new KilnError('INVALID_ARGUMENT', `${where}: empty change`);
    if (!(ALLOWED as readonly string[]).includes(instruction)) {
      throw new KilnError('INVALID_ARGUMENT', `${where}: ${instruction} is not a valid change command (use one of ${ALLOWED.join(', ')})`);
    }
  }
  try {
    const dockerfile = parseInstructions(['FROM base', ...changes].join('\n'), '--change');
    const base = { architecture: '', os: '', rootfs: { type: 'layers' as const, diff_ids: [] }, config };
    const plan = planBuild(dockerfile, { buildArgs: new Map(), platform: hostPlatform(), labels: {}, changesOnly: true }, () => base);
    return plan.stages[0]?.steps.at(-1)?.config ?? config;
  } catch (err) {
    // A change is a command-line argument: its mistakes are the user's flag, not an input file.
    if (err instanceof KilnError && err.code === 'INVALID_INPUT') {
      const located = /^--change:(\d+)(?::\d+)?: ([^\n]*)/.exec(err.message);
      const change = located ? changes[Number(located[1]) - 2] : undefined;
      throw new KilnError('INVALID_ARGUMENT', change !== undefined && located ? `change ${JSON.stringify(change)}: ${located[2] ?? ''}` : err.message);
    }
    throw err;
  }
}
