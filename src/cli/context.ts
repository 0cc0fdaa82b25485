import type { Engine } from '../engine/engine.js';
import { defaultRoot } from '../engine/root.js';
import type { Io } from './io.js';

/** What every command needs: where the store is, the streams, and the exit code to return. */
export interface CommandContext {
  readonly io: Io;
  root(): string;
  exitCode: number;
}

export function createContext(io: Io, rootOption: () => string | undefined): CommandContext {
  return { io, root: () => rootOption() ?? defaultRoot(), exitCode: 0 };
}

/**
 * Opens the store for one command and closes it afterwards, whatever happens. The engine (the store,
 * SQLite) loads here, not with the CLI: a command that opens no store never loads it.
 */
export async function withEngine<T>(ctx: CommandContext, fn: (engine: Engine) => T | Promise<T>): Promise<T> {
  const { Engine } = await import('../engine/engine.js');
  const engine = await Engine.open(ctx.root());
  try {
    return await fn(engine);
  } finally {
    engine.close();
  }
}
