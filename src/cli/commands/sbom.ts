import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { Sbom } from '../../analyze/sbom/model.js';
import { toSpdx } from '../../analyze/sbom/spdx.js';
import { sbomOf } from '../../engine/sbom.js';
import { KILN_VERSION } from '../../engine/version.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { tabwrite } from '../format/table.js';
import { truncateDisplay } from '../format/units.js';
import { INSECURE_HELP, collect, writeFileAtomically } from '../io.js';

interface SbomFlags {
  format: string;
  output?: string;
  dockerfile?: string;
  platform?: string;
  insecureRegistry?: string[];
}

const FORMATS = ['table', 'json', 'spdx-json', 'cyclonedx-json'];

/** The table: one package a row, with the layer and the Dockerfile line that brought it in. */
function renderTable(sbom: Sbom): string {
  const rows = ['NAME\tVERSION\tTYPE\tLAYER\tLINE'];
  for (const pkg of sbom.packages) {
    const { origin } = pkg;
    const line = origin.line !== null ? `${origin.line}: ${truncateDisplay(origin.instruction ?? '', 50)}` : '-';
    rows.push(`${pkg.name}\t${pkg.version}\t${pkg.type}\t${origin.diffId === '' ? '-' : origin.layerIndex}\t${line}`);
  }
  const distro = sbom.distro ? (sbom.distro.prettyName ?? `${sbom.distro.id} ${sbom.distro.versionId}`) : 'unknown';
  return `${tabwrite(rows.join('\n'))}\n${sbom.packages.length} package${sbom.packages.length === 1 ? '' : 's'}, distribution ${distro}\n`;
}

async function render(sbom: Sbom, format: string): Promise<string> {
  const info = { toolVersion: KILN_VERSION, created: new Date() };
  if (format === 'json') return `${JSON.stringify(sbom, null, 2)}\n`;
  if (format === 'spdx-json') return `${JSON.stringify(toSpdx(sbom, info), null, 2)}\n`;
  // The CycloneDX library is large: loaded only for its format.
  if (format === 'cyclonedx-json') return `${(await import('../../analyze/sbom/cyclonedx.js')).toCycloneDx(sbom, info)}\n`;
  return renderTable(sbom);
}

export function registerSbom(parent: Command, ctx: CommandContext): Command {
  return parent
    .command('sbom')
    .description('List the packages inside an image, with the layer and the Dockerfile line that brought each in')
    .argument('<SOURCE>', 'an image in the store (NAME or ID), docker-archive:PATH, oci-archive:PATH, oci:DIR[:REF], docker://REF or dir:PATH')
    .option('--format <format>', `${FORMATS.join(', ')} (json is kiln's own, which kiln scan reads as sbom:FILE)`, 'table')
    .option('-o, --output <file>', 'write to FILE instead of the standard output')
    .option('--dockerfile <file>', "the image's Dockerfile, to name its lines (for an image kiln did not build)")
    .option('--platform <os/arch[/variant]>', "the platform's image of a multi-platform index (default: this machine's)")
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((source: string, flags: SbomFlags) =>
      withEngine(ctx, async (engine) => {
        if (!FORMATS.includes(flags.format)) throw new KilnError('INVALID_ARGUMENT', `--format ${flags.format}: kiln sbom writes ${FORMATS.join(', ')}`);
        const sbom = await sbomOf(engine, source, {
          ...(flags.dockerfile !== undefined ? { dockerfile: flags.dockerfile } : {}),
          ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
          ...(flags.insecureRegistry ? { insecureRegistries: flags.insecureRegistry } : {}),
        });
        const text = await render(sbom, flags.format);
        if (flags.output !== undefined) await writeFileAtomically(flags.output, Readable.from([Buffer.from(text)]));
        else ctx.io.stdout.write(text);
      }),
    );
}
