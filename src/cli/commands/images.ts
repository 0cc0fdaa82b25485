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

function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** An image's columns, formatted once for all of its rows. */
class ImageColumns {
  readonly id: string;
  readonly createdSince: string;
  readonly size: string;
  readonly containers: string;
  readonly sharedSize: string;
  readonly uniqueSize: string;

  constructor(readonly image: ImageSummary, noTrunc: boolean) {
    this.id = shortImageId(image.Id, noTrunc);
    this.createdSince = image.Created ? sinceNow(image.Created * 1000) : 'N/A';
    this.size = humanSize(image.Size);
    this.containers = image.Containers < 0 ? 'N/A' : String(image.Containers);
    this.sharedSize = image.SharedSize < 0 ? 'N/A' : humanSize(image.SharedSize);
    this.uniqueSize = image.SharedSize < 0 ? 'N/A' : humanSize(image.Size - image.SharedSize);
  }
}

/**
 * One printed row. CreatedAt, a local time with its zone's name (some µs each through Intl), is a
 * getter, made when a template reads it: own and enumerable as an object literal's would be (json and
 * `{{.}}` still show it), but one function for every row, where a literal's getter is a new function
 * for each object, which gave each row a hidden class of its own (a kB each on a large store).
 */
class ImageRowView implements ImageRowContext {
  declare readonly ID: string;
  declare readonly CreatedSince: string;
  declare readonly CreatedAt: string;
  declare readonly Size: string;
  declare readonly Containers: string;
  declare readonly SharedSize: string;
  declare readonly UniqueSize: string;
  declare readonly VirtualSize: string;
  declare readonly Repository: string;
  declare readonly Tag: string;
  declare readonly Digest: string;
  readonly #created: number;

  static readonly #CREATED_AT: PropertyDescriptor = {
    get(this: ImageRowView) {
      return goTimeString(this.#created * 1000);
    },
    enumerable: true,
    configurable: true,
  };

  constructor(columns: ImageColumns, repository: string, tag: string, digest: string) {
    this.#created = columns.image.Created;
    // In the docker CLI's order (json and `{{.}}` show them so).
    this.ID = columns.id;
    this.CreatedSince = columns.createdSince;
    Object.defineProperty(this, 'CreatedAt', ImageRowView.#CREATED_AT);
    this.Size = columns.size;
    this.Containers = columns.containers;
    this.SharedSize = columns.sharedSize;
    this.UniqueSize = columns.uniqueSize;
    this.VirtualSize = columns.size;
    this.Repository = repository;
    this.Tag = tag;
    this.Digest = digest;
  }
}

/**
 * Rows for an image as the docker CLI derives them: one per tag (times its repo digests with --digests),
 * one per repository that only has digests, one `<none>` row for a dangling image. Repositories are
 * sorted (Docker's order is a Go map's).
 */
export function imageRows(image: ImageSummary, options: { digests: boolean; noTrunc: boolean }): ImageRowContext[] {
  const columns = new ImageColumns(image, options.noTrunc);
  const row = (Repository: string, Tag: string, Digest: string): ImageRowContext => new ImageRowView(columns, Repository, Tag, Digest);
  if (image.RepoTags.length === 0 && image.RepoDigests.length === 0) return [row('<none>', '<none>', '<none>')];
  // The engine's familiar names (familiarString): split, not parsed again. A stable sort by repository
  // keeps each repository's tags (and digests) in the engine's order.
  const tagged = image.RepoTags.map(splitWrittenReference).filter((ref) => ref.tag).sort(byName);
  const digested = image.RepoDigests.map(splitWrittenReference).filter((ref) => ref.digest).sort(byName);
  const rows: ImageRowContext[] = [];
  // Indexed loops: run once per image, a for-of makes an iterator result at each step until optimized.
  for (let i = 0; i < tagged.length; i++) {
    const { name, tag } = tagged[i] as (typeof tagged)[number];
    const repoDigests = options.digests ? digested.filter((ref) => ref.name === name) : [];
    if (repoDigests.length === 0) rows.push(row(name, tag as string, '<none>'));
    for (const { digest } of repoDigests) rows.push(row(name, tag as string, digest as string));
  }
  let previous: string | undefined;
  for (let i = 0; i < digested.length; i++) {
    const { name, digest } = digested[i] as (typeof digested)[number];
    if (tagged.some((ref) => ref.name === name)) continue;
    if (options.digests) rows.push(row(name, '<none>', digest as string));
    else if (name !== previous) rows.push(row(name, '<none>', ''));
    previous = name;
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
