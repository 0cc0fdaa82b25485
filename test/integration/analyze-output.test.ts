import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TarInput } from '../../src/layer/tar/writer.js';
import { dir, file, hardlink, opaque, symlink, whiteout } from '../helpers/analyze-layers.js';
import { imageArchive } from '../helpers/hostile-layers.js';
import { newKiln, ok } from '../helpers/kiln.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

/**
 * The report and the JSON of one image, byte for byte, against the files under test/golden: the reading
 * of layers and the output are tuned for speed, and must not change what users see. The image has what
 * the figures care about: overwrites, chmods, whiteouts of files and directories, an opaque directory,
 * hardlinks, symlinks, names long and not ASCII, duplicate content, a package cache and a toolchain.
 * `KILN_UPDATE_GOLDEN=1` rewrites the files (after a change meant to alter the output).
 */
const GOLDEN = join(repoRoot, 'test', 'golden');
const LONG = `usr/share/${'long-directory-name/'.repeat(8)}file-with-a-long-name.txt`;
const SAME = 'the same content '.repeat(200);

const LAYERS: readonly (readonly TarInput[])[] = [
  [
    dir('etc'),
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n'),
    file('etc/conf', 3000),
    dir('usr'),
    dir('usr/bin'),
    file('usr/bin/tool', 40_000, { mode: 0o755 }),
    hardlink('usr/bin/tool-alias', 'usr/bin/tool'),
    symlink('usr/bin/sh', 'tool'),
    dir('usr/share'),
    dir('usr/share/doc'),
    file('usr/share/doc/readme', 9000),
    file('usr/share/doc/changelog', 12_000),
    file('usr/share/café-naïve.txt', 1500),
    file(LONG, 2500),
    file('usr/share/same-a', SAME),
    dir('var/cache/thing'),
    file('var/cache/thing/data', 5000),
    dir('empty'),
  ],
  [whiteout('usr/share/doc'), file('etc/conf', 3000, { mode: 0o600 }), opaque('var/cache/thing'), file('var/cache/thing/new', 700), whiteout('etc/passwd')],
  [dir('app'), file('app/blob', 50_000), file('app/same-b', SAME), dir('app/node_modules/x'), file('app/node_modules/x/index.js', 4000), file('usr/bin/tool', 41_000, { mode: 0o755 })],
  [
    dir('var/lib/apt/lists'),
    file('var/lib/apt/lists/deb_Packages', 30_000),
    dir('var/lib/dpkg/info'),
    file('var/lib/dpkg/info/gcc-12.list', '/usr/bin/gcc-12\n'),
    file('usr/bin/gcc-12', 20_000, { mode: 0o755 }),
    file('app/blob', 50_000, { uid: 1000, gid: 1000 }),
  ],
  [whiteout('var/lib/apt/lists/deb_Packages'), whiteout('app/node_modules')],
];
const HISTORY = [
  { created_by: '/bin/sh -c #(nop) ADD file:base in / ' },
  { created_by: '/bin/sh -c #(nop)  CMD ["sh"]', empty_layer: true },
  { created_by: 'RUN /bin/sh -c rm -rf /usr/share/doc /etc/passwd && chmod 600 /etc/conf # buildkit' },
  { created_by: 'COPY app /app # buildkit' },
  { created_by: 'RUN /bin/sh -c apt-get update && apt-get install -y gcc-12 && chown -R 1000:1000 /app # buildkit' },
  { created_by: 'RUN /bin/sh -c rm -rf /var/lib/apt/lists/* /app/node_modules # buildkit' },
];

async function golden(name: string, actual: string): Promise<void> {
  const path = join(GOLDEN, name);
  if (process.env.KILN_UPDATE_GOLDEN === '1') await writeFile(path, actual);
  assert.equal(actual, await readFile(path, 'utf8'), `kiln analyze's output differs from ${path}`);
}

describe('kiln analyze: the report and the JSON of a fixed image stay the same', () => {
  it('prints the report and the JSON of test/golden', async () => {
    const { kiln } = await newKiln();
    const archive = await imageArchive(join(await tempDir(), 'image.tar'), 'golden:1', LAYERS, HISTORY);
    const source = `docker-archive:${archive}`;
    // The archive's path changes from run to run: the outputs name it SOURCE.
    const named = (text: string): string => text.replaceAll(source, 'SOURCE');
    const env = { CI: '' };
    await golden('analyze-report.txt', named((await ok(kiln(['analyze', source], undefined, env))).stdout));
    await golden('analyze.json', named((await ok(kiln(['analyze', '--format', 'json', source], undefined, env))).stdout));
  });
});
