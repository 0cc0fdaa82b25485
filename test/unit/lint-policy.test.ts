import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { EMPTY_CONFIG, type LintConfig, parseLintConfig } from '../../src/analyze/lint/config.js';
import { formatFindings } from '../../src/analyze/lint/format.js';
import { applyPolicy, failsThreshold, lintDockerfile } from '../../src/analyze/lint/lint.js';
import type { Finding } from '../../src/analyze/lint/rules.js';
import { KilnError } from '../../src/errors.js';
import { sarifSchema } from '../helpers/schemas.js';

function lint(source: string, config: LintConfig = EMPTY_CONFIG, ignore: string[] = []): Finding[] {
  const run = lintDockerfile(source, { file: 'Dockerfile', buildArgs: new Map(), platform: { os: 'linux', architecture: 'amd64' }, images: new Map(), trustedRegistries: config.trustedRegistries, labelSchema: config.labelSchema, strictLabels: config.strictLabels });
  return applyPolicy(run.findings, run.dockerfile, { config, ignore });
}
const codes = (findings: readonly Finding[]): string[] => findings.map((f) => `${f.line}:${f.code}`);

describe('.hadolint.yaml, read as hadolint reads it', () => {
  it('reads every documented key: block and flow lists, a string for a list, override levels, label-schema, booleans, comments and quotes', () => {
    const config = parseLintConfig(
      [
        '# project settings',
        'failure-threshold: warning   # fail on warnings',
        'ignored:',
        '  - DL3008',
        '  - "SC2086"',
        'trustedRegistries: docker.io',
        'override:',
        '  error:',
        '  - DL3015',
        '  info: [DL3059, DL3003]',
        'label-schema:',
        '  version: semver',
        "  'org.example.url': url",
        'strict-labels: true',
        'disable-ignore-pragma: false',
        'no-fail: no',
      ].join('\n'),
      '.hadolint.yaml',
    );
    assert.deepEqual(config.ignored, ['DL3008', 'SC2086']);
    assert.deepEqual(config.trustedRegistries, ['docker.io']);
    assert.equal(config.failureThreshold, 'warning');
    assert.deepEqual([...config.override], [['DL3015', 'error'], ['DL3059', 'info'], ['DL3003', 'info']]);
    assert.deepEqual([...config.labelSchema], [['version', 'semver'], ['org.example.url', 'url']]);
    assert.equal(config.strictLabels, true);
    assert.equal(config.disableIgnorePragma, false);
    assert.equal(config.noFail, false);
  });

  it('says which line is wrong, never crashes', () => {
    assert.throws(() => parseLintConfig('ignored:\n  - DL3008\n    - nested\n', 'x.yaml'), (err: unknown) => err instanceof KilnError && /x\.yaml:3: unexpected indentation/.test(err.message));
    assert.throws(() => parseLintConfig('just text\n', 'x.yaml'), (err: unknown) => err instanceof KilnError && /x\.yaml:1: expected "key: value"/.test(err.message));
    assert.throws(() => parseLintConfig('override:\n  severe: [DL3008]\n', 'x.yaml'), /unknown level "severe"/);
    assert.throws(() => parseLintConfig('failure-threshold: fatal\n', 'x.yaml'), /failure-threshold must be one of/);
    assert.throws(() => parseLintConfig('ignored: [DL3008\n', 'x.yaml'), /unclosed \[ list/);
    assert.deepEqual(parseLintConfig('', 'empty.yaml').ignored, []);
  });

  it('applies: ignored rules go, overridden levels change, the threshold decides failure', () => {
    const source = 'FROM debian:12\nRUN apt-get install -y curl\n';
    assert.deepEqual(codes(lint(source)), ['2:DL3008', '2:DL3015']);
    const config = parseLintConfig('ignored: [DL3008]\noverride:\n  error: [DL3015]\n', 'c.yaml');
    const found = lint(source, config);
    assert.deepEqual(found.map((f) => `${f.code}:${f.level}`), ['DL3015:error']);
    assert.equal(failsThreshold(lint(source), 'warning'), true);
    assert.equal(failsThreshold([{ code: 'DL3015', level: 'info', message: '', file: 'D', line: 1, column: 1 }], 'warning'), false);
    assert.equal(failsThreshold(found, 'none'), false);
    assert.deepEqual(codes(lint(source, EMPTY_CONFIG, ['DL3015'])), ['2:DL3008']);
  });
});

describe('suppression: pragmas and BuildKit directives', () => {
  it('# hadolint ignore= on the lines before an instruction silences those rules there only', () => {
    const source = 'FROM debian:12\n# hadolint ignore=DL3008,DL3015\nRUN apt-get install -y curl\nRUN apt-get install -y wget\n';
    assert.deepEqual(codes(lint(source)).filter((c) => !c.endsWith('DL3059')), ['4:DL3008', '4:DL3015']);
  });

  it('# hadolint global ignore= silences them in the whole file; disable-ignore-pragma turns pragmas off', () => {
    const source = '# hadolint global ignore=DL3008\nFROM debian:12\nRUN apt-get install -y --no-install-recommends curl\n';
    assert.deepEqual(codes(lint(source)), []);
    assert.deepEqual(codes(lint(source, { ...EMPTY_CONFIG, disableIgnorePragma: true })), ['3:DL3008']);
  });

  it("# check=skip= skips BuildKit's checks; error=true makes them errors", () => {
    const source = 'FROM a:1 as b\nWORKDIR app\n';
    assert.deepEqual(codes(lint(source)), ['1:FromAsCasing', '2:DL3000', '2:WorkdirRelativePath']);
    assert.deepEqual(codes(lint(`# check=skip=FromAsCasing\n${source}`)), ['3:DL3000', '3:WorkdirRelativePath']);
    assert.deepEqual(codes(lint(`# check=skip=all\n${source}`)), ['3:DL3000']);
    const levels = lint(`# check=error=true\n${source}`).map((f) => `${f.code}:${f.level}`);
    assert.deepEqual(levels, ['FromAsCasing:error', 'DL3000:error', 'WorkdirRelativePath:error']);
  });

  it('shows one finding where a BuildKit check and its hadolint twin report the same fault', () => {
    assert.deepEqual(codes(lint('FROM a:1\nMAINTAINER me\nCMD run\n')), ['2:DL4000', '3:DL3025']);
    assert.deepEqual(codes(lint('FROM a:1\nMAINTAINER me\nCMD run\n', EMPTY_CONFIG, ['DL4000', 'DL3025'])), ['2:MaintainerDeprecated', '3:JSONArgsRecommended']);
  });
});

const SAMPLE: readonly Finding[] = [
  { code: 'DL3008', level: 'warning', message: 'Pin versions in apt-get install. Instead of `apt-get install curl` use `apt-get install curl=<version>`', file: 'app/Dockerfile', line: 2, column: 1 },
  { code: 'SC2086', level: 'info', message: 'Double quote to prevent globbing and word splitting.', file: 'app/Dockerfile', line: 5, column: 12 },
  { code: 'KL004', level: 'error', message: "The value of A looks like a password in a URL: it's <kept>, & \"quoted\"", file: 'app/Dockerfile', line: 7, column: 1 },
  { code: 'FromAsCasing', level: 'warning', message: "'as' and 'FROM' keywords' casing do not match", file: 'app/Dockerfile', line: 1, column: 1 },
];

describe('output formats', () => {
  it("json: hadolint's array of {code, column, file, level, line, message}", () => {
    const parsed = JSON.parse(formatFindings(SAMPLE, 'json', { version: '0.1.0' })) as Record<string, unknown>[];
    assert.deepEqual(Object.keys(parsed[0] ?? {}), ['code', 'column', 'file', 'level', 'line', 'message']);
    assert.deepEqual(parsed[1], { code: 'SC2086', column: 12, file: 'app/Dockerfile', level: 'info', line: 5, message: 'Double quote to prevent globbing and word splitting.' });
    assert.equal(formatFindings([], 'json', { version: '0.1.0' }), '[]\n');
  });

  it('tty: file:line:col level code: message, coloured only when asked', () => {
    const plain = formatFindings(SAMPLE, 'tty', { version: '0.1.0' });
    assert.equal(plain.split('\n')[0], 'app/Dockerfile:2:1 warning DL3008: Pin versions in apt-get install. Instead of `apt-get install curl` use `apt-get install curl=<version>`');
    assert.equal(plain.includes('\x1b['), false);
    assert.ok(formatFindings(SAMPLE, 'tty', { version: '0.1.0', colour: true }).includes('\x1b[33mwarning\x1b[0m \x1b[1mDL3008'));
  });

  it('checkstyle: one <file> with an <error> per finding, attributes escaped', () => {
    const xml = formatFindings(SAMPLE, 'checkstyle', { version: '0.1.0' });
    assert.match(xml, /^<\?xml version='1\.0' encoding='UTF-8'\?>\n<checkstyle version='4\.3'>\n {2}<file name='app\/Dockerfile'>\n/);
    assert.equal(xml.match(/<error /g)?.length, 4);
    assert.match(xml, /<error line='7' column='1' severity='error' message='The value of A looks like a password in a URL: it&apos;s &lt;kept&gt;, &amp; &quot;quoted&quot;' source='KL004'\/>/);
    assert.match(xml, /<\/checkstyle>\n$/);
  });

  it('gitlab: Code Climate issues with a stable fingerprint, severity and location', () => {
    const issues = JSON.parse(formatFindings(SAMPLE, 'gitlab', { version: '0.1.0' })) as { check_name: string; severity: string; fingerprint: string; location: { path: string; lines: { begin: number } } }[];
    assert.deepEqual(issues.map((i) => [i.check_name, i.severity, i.location.lines.begin]), [['DL3008', 'major', 2], ['SC2086', 'info', 5], ['KL004', 'blocker', 7], ['FromAsCasing', 'major', 1]]);
    assert.equal(new Set(issues.map((i) => i.fingerprint)).size, 4);
    assert.deepEqual(JSON.parse(formatFindings(SAMPLE, 'gitlab', { version: '0.1.0' })), issues);
  });

  it('github: workflow commands, one a line, data escaped', () => {
    const lines = formatFindings(SAMPLE, 'github', { version: '0.1.0' }).trimEnd().split('\n');
    assert.equal(lines[0], '::warning file=app/Dockerfile,line=2,col=1,title=DL3008::DL3008 Pin versions in apt-get install. Instead of `apt-get install curl` use `apt-get install curl=<version>`');
    assert.match(lines[1] ?? '', /^::notice file=app\/Dockerfile,line=5,col=12,title=SC2086::/);
    assert.match(lines[2] ?? '', /^::error /);
    assert.equal(formatFindings([{ ...SAMPLE[0], message: 'two\nlines 100%' } as Finding], 'github', { version: '0.1.0' }), '::warning file=app/Dockerfile,line=2,col=1,title=DL3008::DL3008 two%0Alines 100%25\n');
  });

  const schema = sarifSchema();
  it('sarif: 2.1.0 with the rules that fired, their help links and levels, results pointing at them', () => {
    const log = JSON.parse(formatFindings(SAMPLE, 'sarif', { version: '0.1.0' })) as {
      version: string;
      runs: { tool: { driver: { name: string; version: string; rules: { id: string; helpUri?: string; shortDescription: { text: string }; defaultConfiguration: { level: string } }[] } }; results: { ruleId: string; ruleIndex: number; level: string; message: { text: string }; locations: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }[] }[] }[];
    };
    assert.equal(log.version, '2.1.0');
    const [run] = log.runs;
    assert.ok(run);
    assert.equal(run.tool.driver.version, '0.1.0');
    assert.deepEqual(run.tool.driver.rules.map((r) => r.id), ['DL3008', 'FromAsCasing', 'KL004', 'SC2086']);
    assert.equal(run.tool.driver.rules[0]?.helpUri, 'https://github.com/hadolint/hadolint/wiki/DL3008');
    assert.equal(run.tool.driver.rules[1]?.helpUri, 'https://docs.docker.com/go/dockerfile/rule/from-as-casing/');
    assert.equal(run.tool.driver.rules[3]?.helpUri, 'https://www.shellcheck.net/wiki/SC2086');
    assert.equal(run.tool.driver.rules[2]?.defaultConfiguration.level, 'error');
    assert.deepEqual(run.results.map((r) => [r.ruleId, r.level, run.tool.driver.rules[r.ruleIndex]?.id]), [['DL3008', 'warning', 'DL3008'], ['SC2086', 'note', 'SC2086'], ['KL004', 'error', 'KL004'], ['FromAsCasing', 'warning', 'FromAsCasing']]);
    assert.deepEqual(run.results[1]?.locations[0]?.physicalLocation, { artifactLocation: { uri: 'app/Dockerfile' }, region: { startLine: 5, startColumn: 12, endLine: 5, sourceLanguage: 'dockerfile' } });
  });

  it('sarif: valid against the SARIF 2.1.0 JSON schema', 'skip' in schema ? { skip: schema.skip } : {}, () => {
    if ('skip' in schema) return;
    const validate = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(schema.schema);
    for (const findings of [SAMPLE, []]) {
      const document: unknown = JSON.parse(formatFindings(findings, 'sarif', { version: '0.1.0' }));
      assert.equal(validate(document), true, JSON.stringify(validate.errors, null, 1));
    }
    // The check can fail: a result without its message is not SARIF.
    const broken = JSON.parse(formatFindings(SAMPLE, 'sarif', { version: '0.1.0' })) as { runs: { results: { message?: unknown }[] }[] };
    delete broken.runs[0]?.results[0]?.message;
    assert.equal(validate(broken), false);
  });
});
