/** The kiln command line: parses argv and calls the engine. Returns the process exit code. */
export function main(_argv: readonly string[]): Promise<number> {
  return Promise.resolve(0);
}
