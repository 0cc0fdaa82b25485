import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { ImageAnalysis } from '../../analyze/analysis.js';
import type { CiResult } from '../../analyze/ci.js';
import { analyzeImage } from '../../engine/analyze.js';
import { KilnError } from '../../errors.js';
import { type CommandContext, withEngine } from '../context.js';
import { tabwrite } from '../format/table.js';
import { humanSize, truncateDisplay } from '../format/units.js';
import { INSECURE_HELP, collect, writeFileAtomically } from '../io.js';

interface AnalyzeFlags {
  format?: string;
  json?: string;
  html?: string;
  ci?: boolean;
  ciConfig?: string;
  lowestEfficiency?: string;
  highestWastedBytes?: string;
  highestUserWastedPercent?: string;
  base?: string;
  dockerfile?: string;
  platform?: string;
  insecureRegistry?: string[];
}

const ratio = (value: number | null | undefined): string => (value === null || value === undefined ? 'n/a' : value.toFixed(4));
const TOP = 10;

/** The terminal report: sizes, layers, the largest files and directories, waste, scores, findings. */
export function renderReport(analysis: ImageAnalysis): string {
  const { kiln, image } = analysis;
  const out: string[] = [];
  const name = kiln.names[0] ?? kiln.imageId.slice(7, 19);
  out.push(`Image        ${name} (${kiln.imageId.slice(0, 19)}), from ${kiln.source}`);
  const base = kiln.base.layers === 0 ? 'no base image' : `base ${humanSize(kiln.base.sizeBytes)} in ${kiln.base.layers} layer${kiln.base.layers === 1 ? '' : 's'}${kiln.base.image ? ` (${kiln.base.image})` : kiln.base.how === 'first-layer' ? ' (layer 0, as dive assumes: name it with --base)' : ''}`;
  out.push(`Size         ${humanSize(kiln.sizeBytes)} in ${kiln.layers.length} layer${kiln.layers.length === 1 ? '' : 's'}: ${base}, the image's own ${humanSize(kiln.userSizeBytes)}`);
  out.push(`Lines        ${kiln.attribution === 'recorded' ? `from kiln's build of ${kiln.dockerfile}` : kiln.attribution === 'dockerfile' ? `matched in ${kiln.dockerfile}` : 'unknown (kiln did not build the image here: give its Dockerfile with --dockerfile)'}`);
  out.push('');
  const rows = ['LAYER\tSIZE\tWASTED\tLINE\tINSTRUCTION'];
  for (const layer of kiln.layers) {
    const line = layer.line !== null ? String(layer.line) : layer.base ? 'base' : '-';
    const text = (layer.instruction ?? (layer.createdBy || layer.comment)).replace(/\s+/g, ' ');
    rows.push(`${layer.index}\t${humanSize(layer.sizeBytes)}\t${layer.reclaimableBytes > 0 ? humanSize(layer.reclaimableBytes) : '-'}\t${line}\t${truncateDisplay(text, 70)}`);
  }
  out.push(tabwrite(rows.join('\n')));
  const list = (title: string, items: readonly string[], more = 0): void => {
    out.push('', `${title}${more > 0 ? ` (the largest ${items.length} of ${items.length + more})` : ''}`);
    out.push(...(items.length > 0 ? items.map((item) => `  ${item}`) : ['  none']));
  };
  list('Largest files', kiln.largestFiles.slice(0, TOP).map((f) => `${humanSize(f.bytes).padStart(8)}  ${f.path}  (layer ${f.layer ?? '?'})`));
  list('Largest directories', kiln.largestDirectories.slice(0, TOP).map((d) => `${humanSize(d.bytes).padStart(8)}  ${d.path}`));
  list(
    'Wasted paths',
    kiln.wasted.slice(0, TOP).map((w) => `${humanSize(w.bytes).padStart(8)}  ${w.path}  (layer ${w.layer}, ${w.how} by layer ${w.endedBy})`),
    Math.max(0, kiln.wasted.length - TOP),
  );
  out.push('', 'Score');
  out.push(`  dive   efficiency ${ratio(image.efficiencyScore)}, wasted ${humanSize(image.inefficientBytes)}, user wasted ${ratio(kiln.diveUserWastedRatio)} (layer 0 taken for the base)`);
  out.push(`  kiln   efficiency ${ratio(kiln.efficiencyScore)} (the base image counted as base), reclaimable ${humanSize(kiln.reclaimableBytes)}, the image's own ${humanSize(kiln.userReclaimableBytes)}`);
  out.push('', 'Findings');
  if (kiln.findings.length === 0) out.push('  none: nothing the image itself writes is wasted');
  for (const finding of kiln.findings) {
    const where = finding.line !== null ? `${kiln.dockerfile ?? 'Dockerfile'}:${finding.line}${finding.fixLine !== undefined ? ` and :${finding.fixLine}` : ''}` : `layer ${finding.layer}`;
    out.push(`  ${humanSize(finding.bytes).padStart(8)}  ${finding.rule}  ${where}`);
    out.push(`            ${finding.message}`);
    const shown = finding.paths.slice(0, 3).join(', ');
    out.push(`            ${shown}${finding.paths.length > 3 ? `, and ${finding.paths.length - 3} more` : ''}`);
  }
  return `${out.join('\n')}\n`;
}

/** dive's CI report: one line per rule, then the tally. */
function renderCi(results: readonly CiResult[]): string {
  const lines = ['', 'CI rules'];
  for (const r of results) lines.push(`  ${r.status}: ${r.rule}${r.message ? `: ${r.message}` : ''}`);
  const count = (status: CiResult['status']): number => results.filter((r) => r.status === status).length;
  lines.push(`Result:${count('FAIL') > 0 ? 'FAIL' : 'PASS'} [Total:${results.length}] [Passed:${count('PASS')}] [Failed:${count('FAIL')}] [Warn:0] [Skipped:${count('SKIP')}]`);
  return `${lines.join('\n')}\n`;
}

export function registerAnalyze(parent: Command, ctx: CommandContext): Command {
  return parent
    .command('analyze')
    .description("Show where an image's bytes go, what is wasted, which Dockerfile line wasted it, and how to fix it")
    .argument('<SOURCE>', 'an image in the store (NAME or ID), docker-archive:PATH, oci-archive:PATH, oci:DIR[:REF] or docker://REF')
    .option('--format <format>', "'json': dive's export, field for field, and kiln's figures under \"kiln\" (default: a report)")
    .option('--json <file>', 'also write the JSON to FILE')
    .option('--html <file>', 'also write a self-contained HTML report to FILE')
    .option('--ci', "check dive's CI rules and exit 1 when one fails (also when CI=true)")
    .option('--ci-config <file>', 'the CI rules file (default: .dive-ci here, when there is one)')
    .option('--lowest-efficiency <ratio>', "fail below this efficiency (0-1; dive's default 0.9)")
    .option('--highest-wasted-bytes <bytes>', "fail above this many wasted bytes (20MB, 20MiB…; dive's default disabled)")
    .option('--highest-user-wasted-percent <ratio>', "fail above this ratio of wasted to user bytes (0-1; dive's default 0.1)")
    .option('--base <image>', "the image's base image, a store image (default: the one the build recorded, or found in the store)")
    .option('--dockerfile <file>', "the image's Dockerfile, to name its lines (for an image kiln did not build)")
    .option('--platform <os/arch[/variant]>', "the platform's image of a multi-platform index (default: this machine's)")
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((source: string, flags: AnalyzeFlags) =>
      withEngine(ctx, async (engine) => {
        if (flags.format !== undefined && flags.format !== 'json') throw new KilnError('INVALID_ARGUMENT', `--format ${flags.format}: kiln analyze prints a report, or 'json'`);
        const ci = flags.ci === true || process.env.CI === 'true';
        const result = await analyzeImage(engine, source, {
          ...(flags.base !== undefined ? { base: flags.base } : {}),
          ...(flags.dockerfile !== undefined ? { dockerfile: flags.dockerfile } : {}),
          ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
          ...(flags.insecureRegistry ? { insecureRegistries: flags.insecureRegistry } : {}),
          json: flags.format === 'json' || flags.json !== undefined,
          ...(ci
            ? {
                ci: {
                  ...(flags.ciConfig !== undefined ? { configFile: flags.ciConfig } : {}),
                  dir: process.cwd(),
                  rules: {
                    ...(flags.lowestEfficiency !== undefined ? { lowestEfficiency: flags.lowestEfficiency } : {}),
                    ...(flags.highestWastedBytes !== undefined ? { highestWastedBytes: flags.highestWastedBytes } : {}),
                    ...(flags.highestUserWastedPercent !== undefined ? { highestUserWastedPercent: flags.highestUserWastedPercent } : {}),
                  },
                },
              }
            : {}),
        });
        const { analysis } = result;
        const results = result.ci?.rules;
        if (flags.json !== undefined) await writeFileAtomically(flags.json, Readable.from(result.json(), { objectMode: false }));
        if (flags.html !== undefined) {
          const { renderHtml } = await import('../format/analyze-html.js');
          await writeFileAtomically(flags.html, Readable.from([Buffer.from(renderHtml(analysis, result.tree()))]));
        }
        if (flags.format === 'json') {
          // A pipe takes the pieces as fast as its reader: waiting for it keeps them from piling up in memory.
          for (const piece of result.json()) if (!ctx.io.stdout.write(piece)) await once(ctx.io.stdout, 'drain');
        }
        else ctx.io.stdout.write(renderReport(analysis) + (results ? renderCi(results) : ''));
        const failed = results?.filter((r) => r.status === 'FAIL') ?? [];
        for (const r of failed) ctx.io.stderr.write(`kiln analyze: FAIL: ${r.rule}: ${r.message}\n`);
        if (failed.length > 0) ctx.exitCode = 1;
      }),
    );
}
