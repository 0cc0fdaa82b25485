import type { Command } from 'commander';
import { KilnError } from '../errors.js';
import type { RuntimeName } from '../runtime/runtime.js';
import type { Driver } from '../snapshot/snapshotter.js';

/** The flags of every command that runs something in an OCI runtime over snapshots (run, build). */
export interface RuntimeFlags {
  runtime: string;
  storageDriver?: string;
}

/** `defaultRuntime` null (builds): the engine picks (see buildRuntime), and the help says how; see {@link checkPickedRuntimeFlags}. */
export function addRuntimeFlags(command: Command, what: string, defaultRuntime: RuntimeName | null = 'runc'): Command {
  const runtime = defaultRuntime === null ? command.option('--runtime <name>', `OCI runtime for ${what}: runc or crun (default: crun where it runs on this host as it is, else runc)`) : command.option('--runtime <name>', `OCI runtime for ${what}: runc or crun`, defaultRuntime);
  return runtime
    .option('--storage-driver <driver>', 'overlay or vfs (default: overlay where it works; $KILN_STORAGE_DRIVER)', process.env.KILN_STORAGE_DRIVER);
}

export function checkRuntimeFlags(flags: RuntimeFlags): { runtime: RuntimeName; storageDriver?: Driver } {
  if (flags.runtime !== 'runc' && flags.runtime !== 'crun') throw new KilnError('INVALID_ARGUMENT', `unknown runtime ${JSON.stringify(flags.runtime)}: use runc or crun`);
  if (flags.storageDriver !== undefined && flags.storageDriver !== 'overlay' && flags.storageDriver !== 'vfs') {
    throw new KilnError('INVALID_ARGUMENT', `unknown storage driver ${JSON.stringify(flags.storageDriver)}: use overlay or vfs`);
  }
  return { runtime: flags.runtime, ...(flags.storageDriver !== undefined ? { storageDriver: flags.storageDriver } : {}) };
}

/** The flags of a command whose runtime has no default (a build): without --runtime, the engine picks. */
export function checkPickedRuntimeFlags(flags: Omit<RuntimeFlags, 'runtime'> & { runtime?: string }): { runtime?: RuntimeName; storageDriver?: Driver } {
  if (flags.runtime !== undefined) return checkRuntimeFlags({ ...flags, runtime: flags.runtime });
  const { storageDriver } = checkRuntimeFlags({ ...flags, runtime: 'runc' });
  return storageDriver !== undefined ? { storageDriver } : {};
}
