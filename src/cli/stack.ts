import { readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * An internal error's stack trace with each frame in kiln's compiled code (the bundle dist/kiln.cjs, or
 * tsc's dist/src) moved to its TypeScript source, through the source map beside the file. Node maps
 * traces itself only under --enable-source-maps, which parses every map as its module loads, a cost on
 * every start (and turning it on later does not reach the modules already loaded): this reads the maps
 * only when there is a trace to print. A frame in a file without a map (Node's, node_modules') stays.
 */
export function withTypeScriptSources(stack: string): string {
  const maps = new Map<string, SourceMap | undefined>();
  return stack.replace(/\b(file:\/\/\/[^\s()]+?):(\d+):(\d+)/g, (frame, url: string, line: string, column: string) => {
    if (!maps.has(url)) maps.set(url, sourceMapOf(url));
    const entry = maps.get(url)?.findEntry(Number(line) - 1, Number(column) - 1);
    if (entry === undefined || !('originalSource' in entry)) return frame;
    return `${fileURLToPath(new URL(entry.originalSource, `${url}.map`))}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}

function sourceMapOf(url: string): SourceMap | undefined {
  try {
    return new SourceMap(JSON.parse(readFileSync(new URL(`${url}.map`), 'utf8')) as SourceMapPayload);
  } catch {
    return undefined;
  }
}
