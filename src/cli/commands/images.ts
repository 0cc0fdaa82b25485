import type { Command } from 'commander';
import { parseFilterFlags } from '../../engine/filters.js';
import type { ImageSummary } from '../../engine/types.js';
import { splitWrittenReference } from '../../reference/reference.js';
import { type CommandContext, withEngine } from '../context.js';
import { renderRows } from '../format/table.js';
import { goTimeString, humanSize, sinceNow } from '../format/units.js';
import { collect, printRows } from '../io.js';

/** The columns `docker images` knows, and their titles. */
const HEADERS = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
  VirtualSize: 'SIZE',
};

/** One printed row of `docker images`: what `--format` templates see. */
export interface ImageRowContext {
  readonly ID: string;
  readonly Repository: string;
  readonly Tag: string;
  readonly Digest: string;
  readonly CreatedSince: string;
  readonly CreatedAt: string;
  readonly Size: string;
  readonly Containers: string;
  readonly SharedSize: string;
  readonly UniqueSize: string;
  readonly VirtualSize: string;
}

export function shortImageId(id: string, noTrunc: boolean): string {
  return noTrunc ? id : id.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * Rows for an image as the docker CLI derives them: one per tag (times its repo digests with --digests),
 * one per repository that only has digests, one `<none>` row for a dangling image. Repositories are
 * sorted (Docker's order is a Go map's).
 */
export function imageRows(image: ImageSummary, options: { digests: boolean; noTrunc: boolean }): ImageRowContext[] {
  const id = shortImageId(image.Id, options.noTrunc);
  const containers = image.Containers < 0 ? 'N/A' : String(image.Containers);
  // The columns that take formatting are getters (own and enumerable, so json and `{{.}}` still show
  // them): a table prints a few of them, and humanising every size and time of every row was a tenth
  // of `kiln images` on a large store.
  const row = (Repository: string, Tag: string, Digest: string): ImageRowContext => ({
    ID: id,
    get CreatedSince() {
      return image.Created ? sinceNow(image.Created * 1000) : 'N/A';
    },
    get CreatedAt() {
      return goTimeString(image.Created * 1000);
    },
    get Size() {
      return humanSize(image.Size);
    },
    Containers: containers,
    get SharedSize() {
      return image.SharedSize < 0 ? 'N/A' : humanSize(image.SharedSize);
    },
    get UniqueSize() {
      return image.SharedSize < 0 ? 'N/A' : humanSize(image.Size - image.SharedSize);
    },
    get VirtualSize() {
      return humanSize(image.Size);
    },
    Repository,
    Tag,
    Digest,
  });
  if (image.RepoTags.length === 0 && image.RepoDigests.length === 0) return [row('<none>', '<none>', '<none>')];
  const tags = new Map<string, string[]>();
  // The engine's familiar names (familiarString): split, not parsed again.
  for (const text of image.RepoTags) {
    const ref = splitWrittenReference(text);
    if (ref.tag) tags.set(ref.name, [...(tags.get(ref.name) ?? []), ref.tag]);
  }
  const digests = new Map<string, string[]>();
  for (const text of image.RepoDigests) {
    const ref = splitWrittenReference(text);
    if (ref.digest) digests.set(ref.name, [...(digests.get(ref.name) ?? []), ref.digest]);
  }
  const rows: ImageRowContext[] = [];
  for (const repo of [...tags.keys()].sort()) {
    const repoDigests = options.digests ? (digests.get(repo) ?? []) : [];
    digests.delete(repo);
    for (const tag of tags.get(repo) ?? []) {
      if (repoDigests.length === 0) rows.push(row(repo, tag, '<none>'));
      for (const digest of repoDigests) rows.push(row(repo, tag, digest));
    }
  }
  for (const repo of [...digests.keys()].sort()) {
    if (options.digests) for (const digest of digests.get(repo) ?? []) rows.push(row(repo, '<none>', digest));
    else rows.push(row(repo, '<none>', ''));
  }
  return rows;
}

interface ImagesOptions {
  all?: boolean;
  quiet?: boolean;
  digests?: boolean;
  trunc: boolean;
  filter?: string[];
  format?: string;
}

export function registerImages(parent: Command, ctx: CommandContext, name = 'images'): Command {
  return parent
    .command(name)
    .description('List images')
    .argument('[REPOSITORY[:TAG]]', 'show only images with this name')
    .option('-a, --all', 'show all images (default hides intermediate images)')
    .option('--digests', 'show digests')
    .option('-f, --filter <filter>', 'filter output based on conditions provided (dangling, label, before, since, reference)', collect)
    .option('--format <format>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template")
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .action((reference: string | undefined, options: ImagesOptions) =>
      withEngine(ctx, (engine) => {
        const flags = [...(options.filter ?? []), ...(reference ? [`reference=${reference}`] : [])];
        const filters = parseFilterFlags(flags, ['dangling', 'label', 'before', 'since', 'reference']);
        const summaries = engine.listImages({ all: options.all ?? false, filters });
        const rows = summaries.flatMap((s) => imageRows(s, { digests: options.digests ?? false, noTrunc: !options.trunc }));
        const columns = options.digests ? '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' : '{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
        const format = options.quiet ? '{{.ID}}' : (options.format ?? `table ${columns}`);
        printRows(ctx.io, renderRows(format === 'table' ? `table ${columns}` : format, HEADERS, rows));
      }),
    );
}
