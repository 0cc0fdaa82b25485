/**
 * Which history entry, and which Dockerfile line, made each layer. History entries are paired with layers
 * as dive pairs them (the n-th entry that is not an empty layer made the n-th layer). Lines come from the
 * record kiln keeps of the images it builds, or, for any other image, from a Dockerfile given by the user,
 * matched to the history entries by their created_by text.
 */
import type { Dockerfile, Instruction, Location, Stage } from '../dockerfile/instructions.js';
import type { HistoryEntry } from '../oci/types.js';

/** Where a history entry's instruction is written. */
export interface SourceLine {
  readonly file: string;
  readonly line: number;
  readonly endLine: number;
  /** The instruction as written (continuations joined). */
  readonly instruction: string;
}

export interface LayerOrigin {
  /** The history entry that made the layer, when the history has one for it. */
  readonly historyIndex: number | undefined;
  readonly createdBy: string;
  /** The entry's comment (an import's `Imported from -`). */
  readonly comment: string;
}

/** Each layer's history entry: the n-th non-empty entry for the n-th layer, as dive pairs them. */
export function layerOrigins(history: readonly HistoryEntry[] | undefined, layerCount: number): LayerOrigin[] {
  const entries = history ?? [];
  const origins: LayerOrigin[] = [];
  let next = 0;
  for (let layer = 0; layer < layerCount; layer++) {
    while (next < entries.length && entries[next]?.empty_layer) next++;
    const entry = entries[next];
    origins.push(entry ? { historyIndex: next, createdBy: entry.created_by ?? '', comment: entry.comment ?? '' } : { historyIndex: undefined, createdBy: '', comment: '' });
    if (entry) next++;
  }
  return origins;
}

/** The command dive shows for a layer: its created_by without the shell prefix of the classic builder. */
export function diveCommand(createdBy: string): string {
  return createdBy.startsWith('/bin/sh -c ') ? createdBy.slice('/bin/sh -c '.length) : createdBy;
}

/**
 * The instruction keyword and text of a created_by, in the forms builders write it: BuildKit's and
 * kiln's (`RUN /bin/sh -c …`, `COPY a b # buildkit`), the classic builder's (`/bin/sh -c #(nop) COPY …`,
 * a bare `/bin/sh -c …` for RUN, `|2 A=1 B=2 /bin/sh -c …` with build args).
 */
export function instructionOf(createdBy: string): { keyword: string | undefined; text: string } {
  let text = createdBy.trim().replace(/\s+# buildkit$/, '');
  text = text.replace(/^\|\d+ (?:\S+=\S* )*/, '');
  const nop = /^\/bin\/sh -c #\(nop\)\s+/.exec(text);
  if (nop) text = text.slice(nop[0].length);
  else if (text.startsWith('/bin/sh -c ')) text = `RUN ${text}`;
  const keyword = /^([A-Z]+)\b/.exec(text)?.[1];
  return { keyword, text };
}

/** Lowercased words of an instruction, for a similarity that survives each builder's way of writing it. */
function words(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[\w./:=+@$-]+/g) ?? []);
}

function similarity(a: Set<string>, b: Set<string>): number {
  let common = 0;
  for (const word of a) if (b.has(word)) common++;
  const union = a.size + b.size - common;
  return union === 0 ? 1 : common / union;
}

/** The instructions that make the target stage's image, through the stages it is built on. */
function instructionsOf(dockerfile: Dockerfile, target: Stage | undefined): Instruction[] {
  if (!target) return [];
  const below = dockerfile.stages.find((s) => s.index < target.index && s.name !== undefined && s.name === target.base.toLowerCase());
  return [...instructionsOf(dockerfile, below), ...target.instructions];
}

/**
 * Matches history entries (from `first` on: those before are the base image's) to the instructions of
 * a Dockerfile's last stage, in order: an entry and an instruction pair only when their keywords agree,
 * and among such pairings the one with the most similar text wins (an alignment, as diff aligns lines).
 */
export function matchDockerfile(history: readonly HistoryEntry[], dockerfile: Dockerfile, first = 0): Map<number, SourceLine> {
  const instructions = instructionsOf(dockerfile, dockerfile.stages.at(-1));
  const entries = history.slice(first).map((entry) => instructionOf(entry.created_by ?? ''));
  const wanted = instructions.map((i) => ({ keyword: i.kind.toUpperCase(), words: words(i.original) }));
  const have = entries.map((e) => ({ keyword: e.keyword, words: words(e.text) }));
  const score = (h: number, d: number): number => {
    const a = have[h];
    const b = wanted[d];
    if (!a || !b || a.keyword !== b.keyword) return 0;
    return 0.5 + 0.5 * similarity(a.words, b.words);
  };
  // best[h][d]: the best total for entries h… and instructions d…
  const H = have.length;
  const D = wanted.length;
  const best = Array.from({ length: H + 1 }, () => new Float64Array(D + 1));
  for (let h = H - 1; h >= 0; h--) {
    const row = best[h] as Float64Array;
    const below = best[h + 1] as Float64Array;
    for (let d = D - 1; d >= 0; d--) {
      const pair = score(h, d);
      row[d] = Math.max(below[d] as number, row[d + 1] as number, pair > 0 ? pair + (below[d + 1] as number) : 0);
    }
  }
  const matched = new Map<number, SourceLine>();
  for (let h = 0, d = 0; h < H && d < D; ) {
    const pair = score(h, d);
    if (pair > 0 && (best[h] as Float64Array)[d] === pair + ((best[h + 1] as Float64Array)[d + 1] as number)) {
      matched.set(first + h, sourceLine(instructions[d] as Location));
      h++;
      d++;
    } else if ((best[h] as Float64Array)[d] === (best[h + 1] as Float64Array)[d]) h++;
    else d++;
  }
  return matched;
}

export function sourceLine(location: Location): SourceLine {
  return { file: location.file, line: location.startLine, endLine: location.endLine, instruction: location.original };
}
