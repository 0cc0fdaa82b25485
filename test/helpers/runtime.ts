import { runtimeContainerIds } from '../../src/runtime/runtime.js';

/** The runtime containers of both runtimes a build may run its steps in (crun by default where it runs, else runc). */
export async function buildContainerIds(): Promise<string[]> {
  return [...(await runtimeContainerIds('runc')), ...(await runtimeContainerIds('crun'))];
}
