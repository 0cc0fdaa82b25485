/** `docker run` (the storage driver and unpacking are snapshots.ts's). */
import type { Engine } from './engine.js';
import { type ContainerRequest, type CreateOptions, createContainer } from './containers/create.js';
import { runContainerHere, startContainer } from './containers/start.js';

/**
 * `docker run`: a container created from the image as `create` makes it, then started: in the
 * foreground (its stdio passed through, its exit code returned; with `remove` it goes once it has
 * exited), or with `detach` under a kiln supervisor (run returns at once, exit code 0).
 */
export async function runContainer(engine: Engine, request: ContainerRequest, options: CreateOptions & { readonly detach: boolean; readonly interactive: boolean; readonly created?: (id: string) => Promise<void> }): Promise<{ id: string; exitCode: number }> {
  const { id } = await createContainer(engine, request, options);
  await options.created?.(id);
  if (options.detach) {
    await startContainer(engine, id);
    return { id, exitCode: 0 };
  }
  return { id, exitCode: await runContainerHere(engine, id, { interactive: options.interactive, notice: options.notice }) };
}
