import type { Command } from 'commander';
import { parseSeverities } from '../../analyze/vuln/policy.js';
import { KILN_VERSION } from '../../engine/version.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { INSECURE_HELP, collect } from '../io.js';
import { SCAN_FORMATS, type ScanFormat, formatScan } from '../format/scan.js';

interface ScanFlags {
  db?: string;
  format: string;
  severity?: string;
  ignoreUnfixed?: boolean;
  ignoreFile?: string;
  exitCode?: string;
  dockerfile?: string;
  platform?: string;
  insecureRegistry?: string[];
}

export function registerScan(program: Command, ctx: CommandContext): Command {
  return program
    .command('scan')
    .description("Find an image's packages with known vulnerabilities in an OSV database, and the Dockerfile line that brought each in")
    .argument('<SOURCE>', 'sbom:FILE (the JSON of kiln sbom), or an image as for kiln sbom')
    .requiredOption('--db <path>', 'a directory or zip of OSV JSON records (an osv.dev export, or your own); indexed once into the store')
    .option('--format <format>', `output format: ${SCAN_FORMATS.join(', ')}`, 'table')
    .option('--severity <list>', 'report only these severities (comma-separated: unknown, none, low, medium, high, critical)')
    .option('--ignore-unfixed', 'leave out vulnerabilities that have no fixed version')
    .option('--ignore-file <file>', 'advisory IDs to leave out, one a line, each optionally followed by the date it expires (YYYY-MM-DD)')
    .option('--exit-code <code>', 'exit with this code when any vulnerability is reported (default 0)')
    .option('--dockerfile <file>', "an image's Dockerfile, to name its lines (for an image kiln did not build)")
    .option('--platform <os/arch[/variant]>', "the platform's image of a multi-platform index (default: this machine's)")
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action(async (source: string, flags: ScanFlags) => {
      if (!(SCAN_FORMATS as readonly string[]).includes(flags.format)) throw new KilnError('INVALID_ARGUMENT', `invalid --format ${JSON.stringify(flags.format)}: use ${SCAN_FORMATS.join(', ')}`);
      const exitCode = flags.exitCode !== undefined ? Number(flags.exitCode) : 0;
      if (flags.exitCode !== undefined && !(/^\d+$/.test(flags.exitCode) && exitCode <= 255)) throw new KilnError('INVALID_ARGUMENT', `invalid --exit-code ${JSON.stringify(flags.exitCode)}: use a number from 0 to 255`);
      const severities = flags.severity !== undefined ? parseSeverities(flags.severity) : undefined;
      const options = { db: flags.db as string, severities, ignoreUnfixed: flags.ignoreUnfixed === true, ignoreFile: flags.ignoreFile };
      const { readSbomFile, scanSbom, scanSource } = await import('../../engine/scan.js');
      // A saved SBOM needs only the store's cache, not the store opened: the scan starts sooner.
      const imageSource = {
        ...(flags.dockerfile !== undefined ? { dockerfile: flags.dockerfile } : {}),
        ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
        ...(flags.insecureRegistry ? { insecureRegistries: flags.insecureRegistry } : {}),
      };
      const report = source.startsWith('sbom:') ? await scanSbom(await readSbomFile(source.slice('sbom:'.length)), ctx.root(), options) : await withEngine(ctx, (engine) => scanSource(engine, source, { ...options, source: imageSource }));
      if (report.database.indexBuilt) ctx.io.stderr.write(`kiln scan: indexed ${report.database.records} OSV records from ${report.database.path}; later scans of it reuse the index\n`);
      ctx.io.stdout.write(formatScan(report, flags.format as ScanFormat, KILN_VERSION));
      if (report.findings.length > 0 && exitCode !== 0) ctx.exitCode = exitCode;
    });
}
