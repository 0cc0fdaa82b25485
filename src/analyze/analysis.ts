/**
 * An image's analysis from its layers' listings: dive's export, field for field (`layer[]`, `image`),
 * and kiln's own figures and findings under `kiln`.
 */
import type { Digest } from '../oci/digest.js';
import type { HistoryEntry } from '../oci/types.js';
import { type Finding, type LayerFacts, contentNeeded, findings } from './findings.js';
import { type SourceLine, diveCommand, instructionOf, layerOrigins } from './history.js';
import { type DiveFileReference, diveFigures } from './layers/dive.js';
import { nativeFigures } from './layers/native.js';
import { stackLayers } from './layers/overlay.js';
import { indexLayers } from './layers/tree.js';
import type { LayerEntries, LayerListing } from './layers/walk.js';
import { type SizedPath, type TreeNode, type WastedPath, kilnFigures, sizeTree } from './waste.js';

/** One entry of a layer as dive exports it (Go's tar header fields; fileMode is Go's os.FileMode). */
export interface DiveFileInfo {
  readonly path: string;
  readonly typeFlag: number;
  readonly linkName: string;
  readonly size: number;
  readonly fileMode: number;
  readonly uid: number;
  readonly gid: number;
  readonly isDir: boolean;
}

export interface DiveLayer {
  readonly index: number;
  readonly digestId: string;
  readonly sizeBytes: number;
  readonly command: string;
  readonly fileList: readonly DiveFileInfo[];
}

/** How the layers of the base image were told apart from the image's own. */
export type BaseSource = 'recorded' | 'flag' | 'store' | 'first-layer';

export interface KilnLayer {
  readonly index: number;
  readonly digestId: string;
  /** The blob's digest, where the source knows it. */
  readonly digest: string | null;
  /** Content bytes as Docker counts a layer's size. */
  readonly sizeBytes: number;
  readonly reclaimableBytes: number;
  readonly removedBytes: number;
  readonly base: boolean;
  readonly historyIndex: number | null;
  readonly createdBy: string;
  readonly comment: string;
  /** Where the instruction that made the layer is written, when known. */
  readonly file: string | null;
  readonly line: number | null;
  readonly endLine: number | null;
  readonly instruction: string | null;
}

export interface KilnSection {
  readonly source: string;
  readonly imageId: string;
  readonly names: readonly string[];
  /** Where the Dockerfile lines come from: kiln's record of its build, a --dockerfile, or nowhere. */
  readonly attribution: 'recorded' | 'dockerfile' | 'none';
  readonly dockerfile: string | null;
  readonly base: { readonly layers: number; readonly sizeBytes: number; readonly how: BaseSource; readonly image: string | null };
  readonly sizeBytes: number;
  readonly userSizeBytes: number;
  readonly reclaimableBytes: number;
  readonly userReclaimableBytes: number;
  /** The base-aware score; null when the image adds nothing to its base (n/a). */
  readonly efficiencyScore: number | null;
  /** dive's wasted bytes over its user bytes (all but layer 0); null where dive divides by zero. */
  readonly diveUserWastedRatio: number | null;
  readonly layers: readonly KilnLayer[];
  readonly largestFiles: readonly SizedPath[];
  readonly largestDirectories: readonly SizedPath[];
  readonly wasted: readonly WastedPath[];
  readonly findings: readonly Finding[];
}

/** A layer's figures as dive exports them, without its file list (written out from the listing: see analysisJson). */
export type DiveLayerFigures = Omit<DiveLayer, 'fileList'>;

/** The JSON document: dive's export, field for field, and kiln's own under `kiln`. */
export interface Analysis extends Omit<ImageAnalysis, 'layer'> {
  readonly layer: readonly DiveLayer[];
}

/** An analysis in memory: the JSON document without the layers' file lists, which the listings hold. */
export interface ImageAnalysis {
  readonly layer: readonly DiveLayerFigures[];
  readonly image: {
    readonly sizeBytes: number;
    readonly inefficientBytes: number;
    readonly efficiencyScore: number;
    readonly fileReference: readonly DiveFileReference[];
  };
  readonly kiln: KilnSection;
}

export interface AnalysisInput {
  readonly source: string;
  readonly imageId: Digest;
  readonly names: readonly string[];
  readonly history: readonly HistoryEntry[] | undefined;
  readonly layers: readonly { readonly diffId: Digest; readonly digest?: Digest | undefined; readonly listing: LayerListing }[];
  readonly base: { readonly layers: number; readonly how: BaseSource; readonly image?: string | undefined };
  /** Dockerfile lines by history index. */
  readonly lines: ReadonlyMap<number, SourceLine>;
  readonly attribution: KilnSection['attribution'];
  readonly dockerfile?: string | undefined;
  readonly singleStage: boolean | undefined;
  /** The JSON document will be written: its file lists and wasted list are made as text with the figures, where native/sys computes them. */
  readonly json?: boolean | undefined;
}

/**
 * Analyzes an image from its layers' listings. Reads, through the listings, the content of the few files
 * whose comparison the findings need; everything else is computed from the entries.
 */
export async function analyzeLayers(input: AnalysisInput): Promise<{ analysis: ImageAnalysis; fileLists: readonly LayerEntries[]; rendered: readonly (Buffer | undefined)[]; wastedJson: Buffer | undefined; tree: () => TreeNode }> {
  const entries = input.layers.map((l) => l.listing.entries);
  // native/sys computes them where it read every layer; else they are computed here.
  const baseLayers = Math.min(input.base.layers, input.layers.length);
  const native = await nativeFigures(entries, input.json === true, baseLayers);
  const indexed = native ? undefined : indexLayers(entries);
  const dive = native?.dive ?? diveFigures(entries, indexed);
  const overlay = native?.overlay ?? stackLayers(entries, indexed);
  // The contents the findings compare are read (on the thread pool, where native/sys can) meanwhile.
  const fingerprinting = Promise.all([...(native?.contentNeeded ?? contentNeeded(overlay, baseLayers))].map(([layer, indexes]) => (input.layers[layer] as (typeof input.layers)[number]).listing.fingerprint(indexes)));
  const origins = layerOrigins(input.history, input.layers.length);
  const facts: LayerFacts[] = origins.map((origin) => ({
    keyword: instructionOf(origin.createdBy).keyword,
    createdBy: origin.createdBy,
    source: origin.historyIndex === undefined ? undefined : input.lines.get(origin.historyIndex),
  }));
  await fingerprinting;
  // The layers' file lists for the JSON are made on the thread pool from here, while the findings are
  // computed (before, they would have held up the figures and the hashing).
  const rendering = input.json ? Promise.all(entries.map(async (layer) => layer.fileListJson())) : undefined;
  const found = findings(overlay, {
    layers: facts,
    baseLayers,
    fingerprint: (layer, index) => input.layers[layer]?.listing.fingerprints.get(index),
    singleStage: input.singleStage,
    findable: native?.findable,
  });
  // native/sys sorts the wasted versions on the thread pool meanwhile.
  const sorted = await native?.sorted;
  const kiln = kilnFigures(overlay, baseLayers, native && sorted && { ...native.waste, order: sorted.order });
  const analysis: ImageAnalysis = {
    layer: input.layers.map((layer, index) => ({
      index,
      digestId: layer.diffId,
      sizeBytes: dive.layerSizes[index] ?? 0,
      command: diveCommand(origins[index]?.createdBy ?? ''),
    })),
    image: { sizeBytes: dive.sizeBytes, inefficientBytes: dive.inefficientBytes, efficiencyScore: dive.efficiencyScore, fileReference: dive.fileReference },
    kiln: {
      source: input.source,
      imageId: input.imageId,
      names: input.names,
      attribution: input.attribution,
      dockerfile: input.dockerfile ?? null,
      base: { layers: baseLayers, sizeBytes: kiln.baseSizeBytes, how: input.base.how, image: input.base.image ?? null },
      sizeBytes: kiln.sizeBytes,
      userSizeBytes: kiln.userSizeBytes,
      reclaimableBytes: kiln.reclaimableBytes,
      userReclaimableBytes: kiln.userReclaimableBytes,
      efficiencyScore: kiln.efficiencyScore ?? null,
      diveUserWastedRatio: dive.userWastedRatio ?? null,
      layers: input.layers.map((layer, index): KilnLayer => {
        const origin = origins[index];
        const source = facts[index]?.source;
        const waste = kiln.layers[index];
        return {
          index,
          digestId: layer.diffId,
          digest: layer.digest ?? null,
          sizeBytes: waste?.contentBytes ?? 0,
          reclaimableBytes: waste?.reclaimableBytes ?? 0,
          removedBytes: waste?.removedBytes ?? 0,
          base: index < baseLayers,
          historyIndex: origin?.historyIndex ?? null,
          createdBy: origin?.createdBy ?? '',
          comment: origin?.comment ?? '',
          file: source?.file ?? null,
          line: source?.line ?? null,
          endLine: source?.endLine ?? null,
          instruction: source?.instruction ?? null,
        };
      }),
      largestFiles: kiln.largestFiles,
      largestDirectories: kiln.largestDirectories,
      get wasted() {
        return kiln.wasted;
      },
      findings: found,
    },
  };
  // The tree for a page is drawn only when a page is asked for.
  return { analysis, fileLists: entries, rendered: (await rendering) ?? [], wastedJson: sorted?.json, tree: () => sizeTree(overlay) };
}
