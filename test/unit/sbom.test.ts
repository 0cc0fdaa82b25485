import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { allOf, spdxExpression } from '../../src/analyze/sbom/licenses.js';
import { type Capture, type LayerWalk, type TreeEntry, canonicalPath, readFinalTree } from '../../src/analyze/sbom/tree.js';

describe('sbom licenses: names as packages write them, as SPDX expressions', () => {
  it("maps Debian's DEP-5 short names and rpm's old ones to SPDX ids", () => {
    const cases: [string, string | null][] = [
      ['GPL-2+', 'GPL-2.0-or-later'],
      ['GPL-2', 'GPL-2.0-only'],
      ['LGPL-2.1+', 'LGPL-2.1-or-later'],
      ['GPLv3+', 'GPL-3.0-or-later'],
      ['Expat', 'MIT'],
      ['BSD-3-clause', 'BSD-3-Clause'],
      ['apache-2.0', 'Apache-2.0'],
      ['GPL-2+ or Artistic', 'GPL-2.0-or-later OR Artistic-1.0-Perl'],
      ['MIT and BSD-2-clause', 'MIT AND BSD-2-Clause'],
      ['(MIT OR Apache-2.0)', '(MIT OR Apache-2.0)'],
      ['GPL-2.0-only WITH Classpath-exception-2.0', 'GPL-2.0-only WITH Classpath-exception-2.0'],
      ['GPLv2+ | MIT', 'GPL-2.0-or-later OR MIT'],
      ['public-domain', null],
      ['GPL-2+ or SomethingElse', null],
      ['OR MIT', null],
      ['', null],
    ];
    for (const [text, expected] of cases) assert.equal(spdxExpression(text), expected, text);
  });

  it('joins the licenses of a package by AND, each with an OR in parentheses, once each', () => {
    assert.equal(allOf(['MIT', null, 'GPL-2.0-or-later OR MIT', 'MIT']), 'MIT AND (GPL-2.0-or-later OR MIT)');
    assert.equal(allOf([null]), null);
  });
});

describe('sbom tree: paths through symlinked directories', () => {
  it("resolves merged /usr's directories, relative and absolute, but not the last component", () => {
    const symlinks = new Map([
      ['/lib', 'usr/lib'],
      ['/bin', '/usr/bin'],
      ['/usr/lib/x', '../share/y'],
      ['/usr/bin/sh', 'dash'],
    ]);
    assert.equal(canonicalPath('/lib/x86_64-linux-gnu/libc.so.6', symlinks), '/usr/lib/x86_64-linux-gnu/libc.so.6');
    assert.equal(canonicalPath('/bin/sh', symlinks), '/usr/bin/sh');
    assert.equal(canonicalPath('/lib/x/z', symlinks), '/usr/share/y/z');
    assert.equal(canonicalPath('/etc/passwd', symlinks), '/etc/passwd');
    const loop = new Map([
      ['/a', '/b'],
      ['/b', '/a'],
    ]);
    assert.equal(typeof canonicalPath('/a/file', loop), 'string');
  });
});

/** A layer from entries: [path, kind, content]. */
function layer(entries: readonly [string, TreeEntry['kind'], string?][]): LayerWalk {
  return async (visit) => {
    for (const [path, kind, content = ''] of entries) {
      const bytes = Buffer.from(content);
      await visit({ path, kind, mode: 0o644, size: bytes.length, body: async function* () { yield bytes; } });
    }
  };
}

describe('sbom tree: the final tree of layers', () => {
  const text: Capture<string> = { maxBytes: 1 << 20, read: (bytes) => bytes.toString() };
  const withHistory: Capture<string> = { ...text, history: true };
  const select = (path: string) => (path.endsWith('.db') ? { asker: 0, capture: withHistory as Capture<unknown> } : path.endsWith('.json') ? { asker: 1, capture: text as Capture<unknown> } : undefined);

  it('applies whiteouts, opaque directories and files replacing directories; keeps the versions of a record file until one is removed', async () => {
    const tree = await readFinalTree(
      [
        layer([['var', 'directory'], ['var/x.db', 'file', 'v0'], ['app', 'directory'], ['app/a.json', 'file', 'a'], ['app/b.json', 'file', 'b'], ['opt', 'directory'], ['opt/c.json', 'file', 'c'], ['lib', 'directory'], ['lib/d.json', 'file', 'd']]),
        layer([['var/x.db', 'file', 'v1'], ['app/a.json', 'whiteout'], ['opt', 'opaque'], ['opt/e.json', 'file', 'e'], ['lib', 'symlink']]),
        layer([['var/x.db', 'whiteout']]),
        layer([['var/x.db', 'file', 'v3'], ['app/b2.json', 'hardlink']]),
        layer([['var/x.db', 'file', 'v4']]),
      ],
      select,
    );
    const db = tree.found[0]?.[0];
    assert.deepEqual(db && { layer: db.layer, value: db.value, versions: db.versions.map((v) => [v.layer, v.value]) }, { layer: 4, value: 'v4', versions: [[3, 'v3']] });
    assert.deepEqual((tree.found[1] ?? []).map((f) => `${f.path} ${f.layer} ${String(f.value)}`).sort(), ['/app/b.json 0 b', '/opt/e.json 1 e']);
  });
});

describe('sbom tree: malformed files', () => {
  it('passes over ELF files cut short or full of noise, and a Go binary read whole (no random access) still gives its build info', async () => {
    const { golang } = await import('../../src/analyze/sbom/golang.js');
    const goBinary = await readFile('/usr/bin/umoci').catch(() => undefined);
    const noise = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096, 0xff)]);
    const files: [string, Buffer][] = [['usr/bin/noise', noise], ['usr/bin/short', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1])]];
    if (goBinary) files.push(['usr/bin/cut', goBinary.subarray(0, goBinary.length >> 1)], ['usr/bin/whole', goBinary]);
    const walk: LayerWalk = async (visit) => {
      for (const [path, bytes] of files) await visit({ path, kind: 'file', mode: 0o755, size: bytes.length, body: async function* () { yield bytes; } });
    };
    const tree = await readFinalTree([walk], (path, mode) => {
      const capture = golang.select(path, mode);
      return capture && { asker: 0, capture };
    });
    const found = (tree.found[0] ?? []).map((f) => f.path);
    assert.ok(!found.includes('/usr/bin/noise') && !found.includes('/usr/bin/short'));
    if (goBinary) assert.ok(found.includes('/usr/bin/whole'), 'the whole Go binary has build info');
  });
});
