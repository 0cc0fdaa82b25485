/**
 * `kiln scan` output: a table for people, kiln's JSON, and SARIF 2.1.0 for code-scanning services (a
 * rule per advisory, a result per affected package, located at the Dockerfile line that brought the
 * package in, or at the file its record was found in when no line is known).
 */
import { tabwrite } from './table.js';
import type { Finding } from '../../analyze/vuln/match.js';
import { SEVERITIES, type SeverityName } from '../../analyze/vuln/policy.js';
import type { ScanReport } from '../../engine/scan.js';

export const SCAN_FORMATS = ['table', 'json', 'sarif'] as const;
export type ScanFormat = (typeof SCAN_FORMATS)[number];


const RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, i])) as Record<SeverityName, number>;

/** Most severe first, then by package and ID, so the output is stable. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  const text = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...findings].sort((a, b) => RANK[b.severity] - RANK[a.severity] || text(a.package.name, b.package.name) || text(a.id, b.id));
}

/** Where a finding came from: `layer 3, Dockerfile:7` or `layer 0 (base image)`. */
export function whereFrom(f: Finding): string {
  if (f.origin.line !== null) return `layer ${f.origin.layerIndex}, ${f.origin.file ?? 'Dockerfile'}:${f.origin.line}`;
  return `layer ${f.origin.layerIndex}${f.fromBase ? ' (base image)' : ''}`;
}

function counts(findings: readonly Finding[]): string {
  const parts = [...SEVERITIES].reverse().flatMap((s) => {
    const n = findings.filter((f) => f.severity === s).length;
    return n > 0 ? [`${s} ${n}`] : [];
  });
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

function table(report: ScanReport): string {
  const findings = sortFindings(report.findings);
  const { sbom } = report;
  const head = `${sbom.names[0] ?? sbom.source}${sbom.distro ? ` (${sbom.distro.prettyName ?? `${sbom.distro.id} ${sbom.distro.versionId}`})` : ''}: ${sbom.packages.length} packages, ${findings.length} vulnerabilit${findings.length === 1 ? 'y' : 'ies'}${counts(findings)}`;
  const omitted = [
    report.omitted.ignored > 0 ? `${report.omitted.ignored} ignored by the ignore file` : '',
    report.omitted.unfixed > 0 ? `${report.omitted.unfixed} without a fix` : '',
    report.omitted.otherSeverity > 0 ? `${report.omitted.otherSeverity} at other severities` : '',
  ].filter(Boolean);
  const lines = [head + (omitted.length > 0 ? `; not shown: ${omitted.join(', ')}` : '')];
  if (findings.length > 0) {
    const rows = ['ID\tSEVERITY\tPACKAGE\tINSTALLED\tFIXED\tFROM\tFIX'];
    for (const f of findings) {
      const severity = f.score !== null ? `${f.severity} ${f.score.toFixed(1)}` : f.severity;
      rows.push(`${f.id}\t${severity}\t${f.package.name}${f.source ? ` (${f.source.name})` : ''}\t${f.installedVersion}\t${f.fixedVersion ?? '-'}\t${whereFrom(f)}\t${f.fix}`);
    }
    lines.push('', tabwrite(rows.join('\n')).trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

function json(report: ScanReport): string {
  const { sbom } = report;
  return `${JSON.stringify(
    {
      source: sbom.source,
      imageId: sbom.imageId,
      names: sbom.names,
      distro: sbom.distro,
      database: report.database,
      packages: sbom.packages.length,
      unmatchedPackages: report.unmatched,
      omitted: report.omitted,
      findings: sortFindings(report.findings),
    },
    null,
    2,
  )}\n`;
}

const SARIF_LEVEL: Record<SeverityName, 'error' | 'warning' | 'note'> = { critical: 'error', high: 'error', medium: 'warning', low: 'note', none: 'note', unknown: 'warning' };

function sarif(report: ScanReport, version: string): string {
  const findings = sortFindings(report.findings);
  const ids = [...new Set(findings.map((f) => f.id))].sort();
  const byId = new Map(findings.map((f) => [f.id, f]));
  const rules = ids.map((id) => {
    const f = byId.get(id) as Finding;
    const text = f.summary !== '' ? f.summary : id;
    return {
      id,
      name: id,
      shortDescription: { text },
      fullDescription: { text },
      help: { text: `${text}${f.aliases.length > 0 ? ` (also ${f.aliases.join(', ')})` : ''}` },
      defaultConfiguration: { level: SARIF_LEVEL[f.severity] },
      // GitHub code scanning ranks security results by this number.
      properties: { tags: ['security', 'vulnerability'], ...(f.score !== null ? { 'security-severity': f.score.toFixed(1) } : {}), severity: f.severity },
    };
  });
  const document = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'kiln scan', version, informationUri: 'https://ossf.github.io/osv-schema/', rules } },
        results: findings.map((f) => ({
          ruleId: f.id,
          ruleIndex: ids.indexOf(f.id),
          level: SARIF_LEVEL[f.severity],
          message: { text: `${f.package.name} ${f.installedVersion} is affected by ${f.id}${f.summary ? `: ${f.summary}` : ''}. Brought in by ${whereFrom(f)}. Fix: ${f.fix}.` },
          locations: [
            f.origin.line !== null
              ? { physicalLocation: { artifactLocation: { uri: f.origin.file ?? 'Dockerfile' }, region: { startLine: f.origin.line } }, message: { text: f.origin.instruction ?? f.origin.createdBy } }
              : { physicalLocation: { artifactLocation: { uri: report.sbom.names[0] ?? report.sbom.imageId } }, message: { text: `layer ${f.origin.layerIndex}: ${f.origin.createdBy}` } },
          ],
          partialFingerprints: { packageAndAdvisory: `${f.package.purl}#${f.id}` },
          properties: { purl: f.package.purl, installedVersion: f.installedVersion, fixedVersion: f.fixedVersion, layer: f.origin.diffId },
        })),
      },
    ],
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

export function formatScan(report: ScanReport, format: ScanFormat, version: string): string {
  switch (format) {
    case 'table':
      return table(report);
    case 'json':
      return json(report);
    case 'sarif':
      return sarif(report, version);
  }
}
