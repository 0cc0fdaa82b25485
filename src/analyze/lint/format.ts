/**
 * Lint output in the formats CI systems read: tty (file:line:col level code: message, coloured on a
 * terminal), json (hadolint's array), sarif (2.1.0 with rule metadata), checkstyle XML, gitlab (Code
 * Climate) and github (workflow commands).
 */
import { createHash } from 'node:crypto';
import { type Finding, type Level, RULES_BY_CODE, ruleUrl } from './rules.js';

export const FORMATS = ['tty', 'json', 'sarif', 'checkstyle', 'gitlab', 'github'] as const;
export type Format = (typeof FORMATS)[number];

const COLOURS: Record<Level, string> = { error: '\x1b[31m', warning: '\x1b[33m', info: '\x1b[32m', style: '\x1b[36m', ignore: '' };

function tty(findings: readonly Finding[], colour: boolean): string {
  return findings
    .map((f) => {
      const level = colour ? `${COLOURS[f.level]}${f.level}\x1b[0m` : f.level;
      const code = colour ? `\x1b[1m${f.code}\x1b[0m` : f.code;
      return `${f.file}:${f.line}:${f.column} ${level} ${code}: ${f.message}\n`;
    })
    .join('');
}

function json(findings: readonly Finding[]): string {
  return JSON.stringify(findings.map((f) => ({ code: f.code, column: f.column, file: f.file, level: f.level, line: f.line, message: f.message }))) + '\n';
}

const SARIF_LEVELS: Record<Level, string> = { error: 'error', warning: 'warning', info: 'note', style: 'note', ignore: 'none' };

function sarif(findings: readonly Finding[], version: string): string {
  const codes = [...new Set(findings.map((f) => f.code))].sort();
  const rules = codes.map((code) => {
    const rule = RULES_BY_CODE.get(code);
    const url = ruleUrl(code);
    const description = rule?.description ?? `ShellCheck ${code}`;
    return {
      id: code,
      ...(rule ? { name: code } : {}),
      shortDescription: { text: description },
      fullDescription: { text: description },
      ...(url ? { helpUri: url } : {}),
      help: { text: url ? `${description} See ${url}` : description },
      defaultConfiguration: { level: SARIF_LEVELS[rule?.level ?? 'warning'] === 'none' ? 'note' : SARIF_LEVELS[rule?.level ?? 'warning'], enabled: rule?.level !== 'ignore' },
      properties: { source: rule?.source ?? 'shellcheck' },
    };
  });
  const document = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'kiln lint', informationUri: 'https://github.com/hadolint/hadolint', version, rules } },
        results: findings.map((f) => ({
          ruleId: f.code,
          ruleIndex: codes.indexOf(f.code),
          level: SARIF_LEVELS[f.level],
          message: { text: f.message },
          locations: [{ physicalLocation: { artifactLocation: { uri: f.file }, region: { startLine: f.line, startColumn: f.column, endLine: f.endLine ?? f.line, sourceLanguage: 'dockerfile' } } }],
        })),
        defaultSourceLanguage: 'dockerfile',
      },
    ],
  };
  return JSON.stringify(document, null, 2) + '\n';
}

const xml = (text: string | number): string => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

function checkstyle(findings: readonly Finding[]): string {
  const files = [...new Set(findings.map((f) => f.file))];
  let out = "<?xml version='1.0' encoding='UTF-8'?>\n<checkstyle version='4.3'>\n";
  for (const file of files) {
    out += `  <file name='${xml(file)}'>\n`;
    for (const f of findings.filter((x) => x.file === file)) out += `    <error line='${f.line}' column='${f.column}' severity='${f.level === 'style' ? 'info' : f.level}' message='${xml(f.message)}' source='${xml(f.code)}'/>\n`;
    out += '  </file>\n';
  }
  return out + '</checkstyle>\n';
}

const GITLAB_SEVERITY: Record<Level, string> = { error: 'blocker', warning: 'major', info: 'info', style: 'minor', ignore: 'info' };

function gitlab(findings: readonly Finding[]): string {
  return (
    JSON.stringify(
      findings.map((f) => ({
        type: 'issue',
        check_name: f.code,
        description: f.message,
        categories: ['Style'],
        severity: GITLAB_SEVERITY[f.level],
        fingerprint: createHash('sha256').update(`${f.file}:${f.line}:${f.column}:${f.code}:${f.message}`).digest('hex'),
        location: { path: f.file, lines: { begin: f.line, end: f.endLine ?? f.line } },
      })),
    ) + '\n'
  );
}

/** GitHub workflow commands: `::warning file=…,line=…,col=…,title=CODE::message`, their data escaped. */
function github(findings: readonly Finding[]): string {
  const data = (text: string): string => text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const property = (text: string): string => data(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
  return findings.map((f) => `::${f.level === 'error' ? 'error' : f.level === 'warning' ? 'warning' : 'notice'} file=${property(f.file)},line=${f.line},col=${f.column},title=${property(f.code)}::${data(`${f.code} ${f.message}`)}\n`).join('');
}

/** Findings as text in a format; `version` is kiln's, for SARIF's tool record. */
export function formatFindings(findings: readonly Finding[], format: Format, options: { readonly colour?: boolean; readonly version: string }): string {
  switch (format) {
    case 'tty':
      return tty(findings, options.colour === true);
    case 'json':
      return json(findings);
    case 'sarif':
      return sarif(findings, options.version);
    case 'checkstyle':
      return checkstyle(findings);
    case 'gitlab':
      return gitlab(findings);
    case 'github':
      return github(findings);
  }
}
