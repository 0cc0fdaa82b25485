import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { type Platform, formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../../src/oci/platform.js';

describe('platforms: parse, format, match', () => {
  it('parses os/arch[/variant] into canonical names, as Docker does', () => {
    const cases: [string, Platform][] = [
      ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
      ['Linux/X86_64', { os: 'linux', architecture: 'amd64' }],
      ['linux/x86-64', { os: 'linux', architecture: 'amd64' }],
      ['linux/amd64/v1', { os: 'linux', architecture: 'amd64' }],
      ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
      ['linux/aarch64', { os: 'linux', architecture: 'arm64' }],
      // A variant given for arm64 is kept, the default one as v8 (what import records).
      ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
      ['linux/aarch64/8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
      ['linux/arm64/v9', { os: 'linux', architecture: 'arm64', variant: 'v9' }],
      ['linux/arm', { os: 'linux', architecture: 'arm' }],
      ['linux/arm/7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
      ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
      ['linux/armhf', { os: 'linux', architecture: 'arm' }],
      ['linux/armel', { os: 'linux', architecture: 'arm', variant: 'v6' }],
      ['linux/i386', { os: 'linux', architecture: '386' }],
      ['macos/arm64', { os: 'darwin', architecture: 'arm64' }],
      ['linux/s390x', { os: 'linux', architecture: 's390x' }],
    ];
    for (const [text, platform] of cases) assert.deepEqual(parsePlatform(text), platform, text);
  });

  it('is the host platform when none is given', () => {
    assert.deepEqual(parsePlatform(undefined), hostPlatform());
    assert.deepEqual(parsePlatform(''), hostPlatform());
    assert.equal(hostPlatform().os, 'linux');
    if (process.arch === 'x64') assert.deepEqual(hostPlatform(), { os: 'linux', architecture: 'amd64' });
  });

  it('refuses what is not os/arch[/variant] with an error that shows the form', () => {
    for (const text of ['linux', 'linux/', '/amd64', 'linux/amd64/', 'linux/arm64/v8/extra']) {
      assert.throws(
        () => parsePlatform(text),
        (err: unknown) => isKilnError(err, 'INVALID_ARGUMENT') && err.message.includes(JSON.stringify(text)) && err.message.includes('os/arch[/variant]'),
        text,
      );
    }
  });

  it('formats as Docker prints a platform', () => {
    assert.equal(formatPlatform({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
    assert.equal(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), 'linux/arm64/v8');
    for (const text of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v6', 'windows/amd64']) assert.equal(formatPlatform(parsePlatform(text)), text);
  });

  it("matches with the architectures' default variants (arm64 ≡ arm64/v8, amd64 ≡ amd64/v1, arm ≡ arm/v7)", () => {
    const p = (os: string, architecture: string, variant?: string): Platform => ({ os, architecture, ...(variant !== undefined ? { variant } : {}) });
    const matches: [Platform, Platform][] = [
      [p('linux', 'arm64', 'v8'), p('linux', 'arm64')],
      [p('linux', 'arm64'), p('linux', 'arm64', 'v8')],
      [p('linux', 'aarch64'), p('linux', 'arm64', 'v8')],
      [p('linux', 'amd64'), p('linux', 'amd64', 'v1')],
      [p('linux', 'x86_64'), p('linux', 'amd64')],
      [p('linux', 'arm'), p('linux', 'arm', 'v7')],
      [p('linux', 'arm', '7'), p('linux', 'arm', 'v7')],
      [p('Linux', 'AMD64'), p('linux', 'amd64')],
      // A wanted platform without a variant of its own takes any of its architecture.
      [p('linux', 'amd64', 'v3'), p('linux', 'amd64')],
      [p('linux', 'arm64', 'v9'), p('linux', 'arm64')],
      [p('linux', 'arm', 'v6'), p('linux', 'arm')],
    ];
    for (const [candidate, wanted] of matches) assert.ok(platformMatches(candidate, wanted), `${JSON.stringify(candidate)} serves ${JSON.stringify(wanted)}`);
    const misses: [Platform, Platform][] = [
      [p('linux', 'arm64'), p('linux', 'amd64')],
      [p('windows', 'amd64'), p('linux', 'amd64')],
      [p('linux', 'arm', 'v6'), p('linux', 'arm', 'v7')],
      [p('linux', 'arm'), p('linux', 'arm', 'v6')],
      [p('linux', 'amd64'), p('linux', 'amd64', 'v3')],
      [p('linux', 'arm64', 'v9'), p('linux', 'arm64', 'v8')],
      [p('linux', 'arm64'), p('linux', 'arm64', 'v9')],
    ];
    for (const [candidate, wanted] of misses) assert.ok(!platformMatches(candidate, wanted), `${JSON.stringify(candidate)} does not serve ${JSON.stringify(wanted)}`);
  });
});
