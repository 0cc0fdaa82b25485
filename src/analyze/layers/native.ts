/**
 * The index of paths, dive's figures, the stacked layers and most of kiln's figures, computed by
 * native/sys's figures (figures.c) where every layer came through its tarscan: the same numbers as
 * tree.ts, dive.ts, overlay.ts, waste.ts and findings.ts's contentNeeded give, in a fraction of the time
 * (in JavaScript each pass over a big image's entries ran before V8 had optimized it). Undefined where a
 * layer did not, or the addon lacks it: the caller computes them itself.
 */
import { sys } from '../../sys.js';
import { type DiveFigures, diveResult } from './dive.js';
import { Overlay } from './overlay.js';
import { PathIndex } from './tree.js';
import type { SortedWaste } from '../waste.js';
import type { LayerEntries } from './walk.js';

export interface LayerFigures {
  readonly index: PathIndex;
  readonly dive: DiveFigures;
  readonly overlay: Overlay;
  /** The wasted versions, summed and (when `sorted` is) sorted, and the largest files and directories (see kilnFigures). */
  readonly waste: Omit<SortedWaste, 'order'>;
  /** The wasted versions' order, and with `json` their list's text as json.ts writes it: made on the thread pool. */
  readonly sorted: Promise<{ readonly order: Int32Array; readonly json?: Buffer }>;
  /** The files whose content the findings compare (findings.ts's contentNeeded, with the base layers given). */
  readonly contentNeeded: Map<number, Set<number>>;
  /** The wasted versions the findings read (see FindingContext.findable). */
  readonly findable: Int32Array;
}

/** (layer, entry) pairs, by layer. */
function contentByLayer(pairs: Int32Array): Map<number, Set<number>> {
  const byLayer = new Map<number, Set<number>>();
  for (let k = 0; k < pairs.length; k += 2) {
    const layer = pairs[k] as number;
    const set = byLayer.get(layer) ?? new Set<number>();
    set.add(pairs[k + 1] as number);
    byLayer.set(layer, set);
  }
  return byLayer;
}

export async function nativeFigures(layers: readonly LayerEntries[], json: boolean, baseLayers = 0): Promise<LayerFigures | undefined> {
  const figures = sys()?.figures;
  const scanned = layers.map((entries) => entries.scanned);
  if (!figures || !scanned.every((triple) => triple !== undefined)) return undefined;
  const computing = figures(scanned, json, baseLayers);
  // The layers' strings are made while native/sys computes (the paths below are made of them).
  for (const entries of layers) entries.makeStrings();
  const made = await computing;
  if (!made) return undefined;
  // Each path is its source entry's name or target, or a directory above it: a prefix of that string.
  const { sources } = made;
  const paths = new Array<string>(made.parent.length);
  paths[0] = '';
  for (let id = 1; id < paths.length; id++) {
    const entries = layers[sources[3 * id] as number] as LayerEntries;
    const code = sources[3 * id + 1] as number;
    const whole = code & 1 ? (entries.targets.get(code >> 1) as string) : (entries.names[code >> 1] as string);
    const length = sources[3 * id + 2] as number;
    paths[id] = length < 0 ? whole : whole.slice(0, length);
  }
  const index = PathIndex.of(paths, made.parent, made.firstChild, made.nextSibling);
  const [sumMin = 0, sumCum = 0, wasted = 0] = made.dive;
  return {
    index,
    dive: diveResult(Array.from(made.layerSizes), sumMin, sumCum, wasted, made.references, paths),
    overlay: new Overlay(index, layers, made.versionLayer, made.versionIndex, made.versionNode, made.endLayer, made.endDeleted, made.endBy, made.dead, made.deadBytes, made.live, made.liveBytes, Array.from(made.layerBytes)),
    waste: { reclaimable: made.reclaimable, removed: made.removed, largestFiles: made.largestFiles, largestDirectories: made.largestDirectories, largestDirectoryBytes: made.largestDirectoryBytes },
    contentNeeded: contentByLayer(made.needed),
    findable: made.findable,
    sorted: made.wasted,
  };
}
