/**
 * Runs `jobs` with at most `limit` at a time; results in order. After a failure no job starts, and the
 * first failure is thrown once those running have ended, so that none writes on after the caller is done.
 */
export async function limited<T>(limit: number, jobs: readonly (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  let failure: { reason: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && !failure) {
      const index = next++;
      try {
        results[index] = await (jobs[index] as () => Promise<T>)();
      } catch (reason) {
        failure ??= { reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  if (failure) throw failure.reason;
  return results;
}
