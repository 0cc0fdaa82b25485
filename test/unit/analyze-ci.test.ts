import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ciSettings, evaluateCi, parseBytes, readDiveCi } from '../../src/analyze/ci.js';
import type { DiveFigures } from '../../src/analyze/layers/dive.js';
import { isKilnError } from '../../src/errors.js';

const figures = (over: Partial<DiveFigures> = {}): DiveFigures => ({ sizeBytes: 1000, userSizeBytes: 400, layerSizes: [600, 400], inefficientBytes: 100, efficiencyScore: 0.95, userWastedRatio: 0.25, fileReference: [], ...over });

describe('analyze --ci: byte counts as dive reads them', () => {
  it('SI and IEC units, any case, with or without B, spaces and commas', () => {
    assert.equal(parseBytes('20MB'), 20_000_000);
    assert.equal(parseBytes('20MiB'), 20_971_520);
    assert.equal(parseBytes('20M'), 20_000_000);
    assert.equal(parseBytes('20mi'), 20_971_520);
    assert.equal(parseBytes('1.5 GB'), 1_500_000_000);
    assert.equal(parseBytes('1,024'), 1024);
    assert.equal(parseBytes('512'), 512);
    assert.equal(parseBytes('7kb'), 7000);
    for (const bad of ['', 'MB', '-1MB', '20 XB', '1e6', '20MBs']) assert.equal(parseBytes(bad), undefined, bad);
  });
});

describe('analyze --ci: the rules', () => {
  it("fails each rule with dive's words and passes what is within its threshold", () => {
    const results = evaluateCi(figures(), { lowestEfficiency: '0.96', highestWastedBytes: '99', highestUserWastedPercent: '0.2' });
    assert.deepEqual(results, [
      { rule: 'highestUserWastedPercent', status: 'FAIL', message: 'too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=0.25 > threshold=0.2)' },
      { rule: 'highestWastedBytes', status: 'FAIL', message: 'too many bytes wasted (wasted-bytes=100 > threshold=99)' },
      { rule: 'lowestEfficiency', status: 'FAIL', message: 'image efficiency is too low (efficiency=0.95 < threshold=0.96)' },
    ]);
    assert.deepEqual(
      evaluateCi(figures(), { lowestEfficiency: '0.95', highestWastedBytes: '100B', highestUserWastedPercent: '0.25' }).map((r) => r.status),
      ['PASS', 'PASS', 'PASS'],
    );
  });

  it('disabled, off, false and empty turn a rule off; the defaults are 0.9, disabled and 0.1', () => {
    for (const off of ['disabled', 'off', 'false', '', 'OFF']) {
      assert.deepEqual(evaluateCi(figures(), { lowestEfficiency: off, highestWastedBytes: off, highestUserWastedPercent: off }).map((r) => r.status), ['SKIP', 'SKIP', 'SKIP'], off);
    }
    assert.deepEqual(ciSettings(undefined, {}), { lowestEfficiency: '0.9', highestWastedBytes: 'disabled', highestUserWastedPercent: '0.1' });
  });

  it('a one-layer image has no user-wasted ratio: that rule is skipped with the reason, not failed on NaN', () => {
    const [percent] = evaluateCi(figures({ userWastedRatio: undefined }), { lowestEfficiency: '0.9', highestWastedBytes: 'disabled', highestUserWastedPercent: '0.1' });
    assert.deepEqual(percent, { rule: 'highestUserWastedPercent', status: 'SKIP', message: 'n/a: the image has no bytes beyond its first layer' });
  });

  it('flags override the file, the file the defaults; a bad value names the flag or the file and key', () => {
    const settings = ciSettings({ path: 'ci/.dive-ci', rules: { lowestEfficiency: '0.8', highestWastedBytes: '20MB' } }, { lowestEfficiency: '0.7' });
    assert.deepEqual(settings, { lowestEfficiency: '0.7', highestWastedBytes: '20MB', highestUserWastedPercent: '0.1' });
    assert.throws(() => ciSettings(undefined, { highestUserWastedPercent: '1.5' }), (err) => isKilnError(err, 'INVALID_ARGUMENT') && err.message === "--highest-user-wasted-percent: highestUserWastedPercent config value is outside allowed range (0-1), given '1.5'");
    assert.throws(() => ciSettings({ path: '.dive-ci', rules: { highestWastedBytes: 'lots' } }, {}), (err) => isKilnError(err) && err.message.startsWith(".dive-ci: rules.highestWastedBytes: invalid config value ('lots')"));
    assert.throws(() => ciSettings(undefined, { lowestEfficiency: 'high' }), /--lowest-efficiency: invalid config value \('high'\): not a number/);
  });
});

describe('analyze --ci: the .dive-ci file (a minimal reader of its YAML shape)', () => {
  it('reads the rules map: plain, quoted and commented values, other keys ignored', () => {
    const text = `# dive's CI settings
---
log:
  enabled: true
rules:
  # the image must keep most of what it writes
  lowestEfficiency: 0.95   # a ratio
  highestWastedBytes: "20MB"
  highestUserWastedPercent: 'disabled'
`;
    assert.deepEqual(readDiveCi(text, '.dive-ci'), { lowestEfficiency: '0.95', highestWastedBytes: '20MB', highestUserWastedPercent: 'disabled' });
    assert.deepEqual(readDiveCi('rules:\n  highestWastedBytes: ~\n', '.dive-ci'), { highestWastedBytes: '' });
    assert.deepEqual(readDiveCi('', '.dive-ci'), {});
  });

  it('refuses what it cannot read with the line', () => {
    const cases: [string, RegExp][] = [
      ['rules:\n  lowestEfficency: 0.9\n', /^\.dive-ci:2: unknown rule "lowestEfficency"/],
      ['rules:\n\tlowestEfficiency: 0.9\n', /^\.dive-ci:2: tabs do not indent YAML/],
      ['rules:\n  lowestEfficiency: 0.9\n    highestWastedBytes: 1\n', /^\.dive-ci:3: the settings under rules must be indented alike/],
      ['rules: [a, b]\n', /^\.dive-ci:1: rules must be a map/],
      ['rules:\n  - lowestEfficiency\n', /^\.dive-ci:2: expected "key: value"/],
      ['rules:\n  highestWastedBytes: "20MB\n', /^\.dive-ci:2: unterminated quoted value/],
      ['rules:\n  highestWastedBytes: &a 1\n', /^\.dive-ci:2: "&a 1" is YAML kiln does not read here/],
    ];
    for (const [text, error] of cases) assert.throws(() => readDiveCi(text, '.dive-ci'), (err) => isKilnError(err, 'INVALID_INPUT') && error.test(err.message), text);
  });
});
