import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot, tempDir } from '../helpers/paths.js';

/** native/sys's readfile, which bin/kiln reads the bundle and its code cache with (it is not in SysAddon: nothing in src/ calls it). */
type ReadFile = (path: string, latin1?: boolean) => Buffer | string;
const addon = join(repoRoot, 'native', 'sys', 'build', 'Release', 'sys.node');
const readfile = ((): ReadFile | undefined => {
  try {
    return (createRequire(import.meta.url)(addon) as { readfile?: ReadFile }).readfile;
  } catch {
    return undefined;
  }
})();

describe('native/sys readfile', { skip: !readfile && 'native/sys is not built (or built before readfile)' }, () => {
  const read = readfile as ReadFile;

  it('gives a file whole, as readFileSync does: bytes as a Buffer, latin1 as a string', async () => {
    const dir = await tempDir('readfile');
    const bytes = Buffer.from(Array.from({ length: 700_001 }, (_, i) => (i * 31) & 255));
    const file = join(dir, 'bundle');
    await writeFile(file, bytes);
    const buffer = read(file);
    assert.ok(Buffer.isBuffer(buffer));
    assert.ok(buffer.equals(readFileSync(file)));
    assert.equal(read(file, true), readFileSync(file, 'latin1'));
    await writeFile(join(dir, 'empty'), '');
    assert.equal(read(join(dir, 'empty'), true), '');
    assert.equal((read(join(dir, 'empty')) as Buffer).length, 0);
  });

  it('fails as a read does, with the errno\'s name as its code', async () => {
    const dir = await tempDir('readfile');
    assert.throws(() => read(join(dir, 'missing')), { code: 'ENOENT' });
    await mkdir(join(dir, 'sub'));
    assert.throws(() => read(join(dir, 'sub')), { code: 'EINVAL' });
    assert.throws(() => read(undefined as unknown as string), TypeError);
  });
});
