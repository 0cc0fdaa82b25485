/**
 * Where a built image's history comes from: for each history entry a step made, the Dockerfile line of
 * the step's instruction; and the base image the target stage starts from. kiln analyze reads it back to
 * name the line that wrote each layer.
 */
import type { Location } from '../dockerfile/instructions.js';
import type { BuildRecord } from '../meta/db.js';
import type { Digest } from '../oci/digest.js';
import type { HistoryEntry, ImageConfig } from '../oci/types.js';
import type { BuildPlan, ConfigChange, StagePlan } from './plan.js';

/** The stages whose steps make the target's image, base stage first. */
function stageChain(plan: BuildPlan, index: number): StagePlan[] {
  const stage = plan.stages.find((s) => s.index === index);
  if (!stage) return [];
  return [...(stage.base.kind === 'stage' ? stageChain(plan, stage.base.index) : []), stage];
}

/** The external image (by reference) the target's chain of stages starts from; undefined for scratch. */
export function targetBase(plan: BuildPlan): string | undefined {
  const first = stageChain(plan, plan.target)[0];
  return first?.base.kind === 'image' ? first.base.ref : undefined;
}

/** What writes the target's history entries, in order: each step's config-only instructions, then the step. */
export function historyMakers(plan: BuildPlan): ConfigChange[] {
  return stageChain(plan, plan.target).flatMap((stage) => stage.steps.flatMap((step) => [...step.preceding, step]));
}

/**
 * The Dockerfile location of each history entry of the built image (by index) that a step of the target's
 * chain made. Entries and steps pair from the end by their created_by text: entries the builder adds
 * (a squash's merge) and the base image's own stay without a line.
 */
export function historyLocations(plan: BuildPlan, history: readonly HistoryEntry[]): Map<number, Location> {
  const steps = historyMakers(plan);
  const located = new Map<number, Location>();
  for (let h = history.length - 1, s = steps.length - 1; h >= 0 && s >= 0; h--) {
    const step = steps[s] as ConfigChange;
    if (history[h]?.created_by !== step.createdBy) continue;
    located.set(h, step.location);
    s--;
  }
  return located;
}

/**
 * What kiln records of an image it built: the Dockerfile, the base image and its layer count, the number
 * of stages, and the line of every history entry a step of the Dockerfile made (ONBUILD triggers of the
 * base, which no line of this Dockerfile wrote, have none).
 */
export function buildRecord(plan: BuildPlan, image: { readonly id: Digest; readonly config: ImageConfig }, base: { readonly id: Digest; readonly config: ImageConfig } | undefined, dockerfile: { readonly file: string; readonly stages: number }): BuildRecord {
  const lines = [...historyLocations(plan, image.config.history ?? [])]
    .filter(([, location]) => location.startLine > 0)
    .map(([position, location]) => ({ position, line: location.startLine, endLine: location.endLine, instruction: location.original }))
    .sort((a, b) => a.position - b.position);
  return { imageId: image.id, dockerfile: dockerfile.file, baseId: base?.id ?? '', baseLayers: base?.config.rootfs.diff_ids.length ?? 0, stages: dockerfile.stages, lines };
}

/** Whether two records say the same (a rebuild of an unchanged project makes the record it has). */
export function sameBuildRecord(a: BuildRecord | undefined, b: BuildRecord): boolean {
  if (a === undefined || a.imageId !== b.imageId || a.dockerfile !== b.dockerfile || a.baseId !== b.baseId || a.baseLayers !== b.baseLayers || a.stages !== b.stages || a.lines.length !== b.lines.length) return false;
  return a.lines.every((line, i) => {
    const other = b.lines[i];
    return other !== undefined && line.position === other.position && line.line === other.line && line.endLine === other.endLine && line.instruction === other.instruction;
  });
}
