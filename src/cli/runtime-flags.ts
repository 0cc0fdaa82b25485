import type { Command } from 'commander';
import { KilnError } from '../errors.js';
import type { RuntimeName } from '../runtime/runtime.js';
import type { Driver } from '../snapshot/snapshotter.js';

/** The flags of every command that runs something in an OCI runtime over snapshots (run, build). */
export interface RuntimeFlags {
  runtime: string;
  storageDriver?: string;
}

export function addRuntimeFlags(command: Command, what: string): Command {
  return command
    .option('--runtime <name>', `OCI runtime for ${what}: runc or crun`, 'runc')
    .option('--storage-driver <driver>', 'overlay or vfs (default: overlay where it works; $KILN_STORAGE_DRIVER)', process.env.KILN_STORAGE_DRIVER);
}

export function checkRuntimeFlags(flags: RuntimeFlags): { runtime: RuntimeName; storageDriver?: Driver } {
  if (flags.runtime !== 'runc' && flags.runtime !== 'crun') throw new KilnError('INVALID_ARGUMENT', `unknown runtime ${JSON.stringify(flags.runtime)}: use runc or crun`);
  if (flags.storageDriver !== undefined && flags.storageDriver !== 'overlay' && flags.storageDriver !== 'vfs') {
    throw new KilnError('INVALID_ARGUMENT', `unknown storage driver ${JSON.stringify(flags.storageDriver)}: use overlay or vfs`);
  }
  return { runtime: flags.runtime, ...(flags.storageDriver !== undefined ? { storageDriver: flags.storageDriver } : {}) };
}
