import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import { autoDecompress, compressStream, decompressStream, detectCompression, igzipGunzip, zlibGunzip } from '../../src/layer/compression.js';
import { igzip } from '../../src/layer/igzip.js';
import { gzipMember, igzipMember, zlibGzipMember } from '../../src/layer/gzip-member.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function* chunked(data: Buffer, size = 100_000): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

// Compressible but not trivial: random words repeated.
const DATA = Buffer.concat(Array.from({ length: 3000 }, () => Buffer.from(`${randomBytes(8).toString('hex')} kiln layer data\n`.repeat(40))));

describe('compression', () => {
  for (const kind of ['gzip', 'zstd'] as const) {
    it(`${kind}: round-trips several MB and empty input, and is detected`, async () => {
      const packed = await collect(compressStream(chunked(DATA), kind));
      assert.equal(detectCompression(packed), kind);
      assert.ok(packed.length < DATA.length / 2);
      assert.deepEqual(await collect(decompressStream(chunked(packed, 4096), kind)), DATA);
      const { compression, stream } = await autoDecompress(chunked(packed, 3));
      assert.equal(compression, kind);
      assert.deepEqual(await collect(stream), DATA);
      assert.deepEqual(await collect(decompressStream(compressStream(chunked(Buffer.alloc(0)), kind), kind)), Buffer.alloc(0));
    });

    it(`${kind}: interoperates with the ${kind} command, including concatenated members/frames`, async () => {
      const dir = await tempDir();
      const packed = await collect(compressStream(chunked(DATA), kind));
      await writeFile(join(dir, 'k'), packed);
      assert.deepEqual(execFileSync(kind, ['-dc', join(dir, 'k')], { maxBuffer: 1 << 28 }), DATA);
      await writeFile(join(dir, 'a'), 'first part\n');
      await writeFile(join(dir, 'b'), 'second part\n');
      execFileSync(kind, ['-q', '-k', '-f', join(dir, 'a'), join(dir, 'b')]);
      const ext = kind === 'gzip' ? 'gz' : 'zst';
      const joined = Buffer.concat([await readFile(join(dir, `a.${ext}`)), await readFile(join(dir, `b.${ext}`))]);
      assert.equal((await collect((await autoDecompress(chunked(joined, 7))).stream)).toString(), 'first part\nsecond part\n');
    });

    it(`${kind}: corrupt data is an INVALID_INPUT error, not a crash`, async () => {
      const packed = Buffer.from(await collect(compressStream(chunked(DATA), kind)));
      for (let i = 20; i < 400; i++) packed[i] = (packed[i] as number) ^ 0x5a;
      await assert.rejects(collect(decompressStream(chunked(packed), kind)), (err) => isKilnError(err, 'INVALID_INPUT'));
    });
  }

  it('gzip: gives the same bytes for the same input however it is cut, takes over whole 1 MiB chunks, and fails with its source', async () => {
    const whole = await collect(compressStream(chunked(DATA), 'gzip'));
    const owned = new Uint8Array(DATA.subarray(0, 1 << 20)); // a chunk that is the whole of its ArrayBuffer
    const rest = DATA.subarray(1 << 20);
    assert.deepEqual(await collect(compressStream((async function* () { yield owned; yield* chunked(rest, 77_777); })(), 'gzip')), whole);
    assert.equal(owned.length, 0, 'moved to a compressing thread, not copied');
    const broken = (async function* () {
      yield Buffer.from(DATA.subarray(0, 3 << 20));
      throw new Error('the source broke');
    })();
    await assert.rejects(collect(compressStream(broken, 'gzip')), /the source broke/);
  });

  describe('gzip members', () => {
    const blocks = { empty: Buffer.alloc(0), incompressible: randomBytes(3 << 20), text: DATA };
    const members = { zlib: zlibGzipMember, 'ISA-L (native/)': igzipMember };
    for (const [name, member] of Object.entries(members)) {
      it(`${name}: each block comes back whole from gunzip, in an ArrayBuffer of the member's size`, { skip: member ? false : 'native/ is not built (npm run install, with Debian libisal-dev)' }, () => {
        for (const [kind, block] of Object.entries(blocks)) {
          const out = (member as NonNullable<typeof member>)(block);
          assert.ok(out instanceof ArrayBuffer);
          assert.deepEqual(gunzipSync(new Uint8Array(out)), block, kind);
        }
      });
    }

    it('push-time gzip uses ISA-L when built, and its output is within 5 % of zlib level 4\'s', { skip: igzipMember ? false : 'native/ is not built' }, () => {
      assert.equal(gzipMember, igzipMember);
      const ratio = (igzipMember as NonNullable<typeof igzipMember>)(DATA).byteLength / zlibGzipMember(DATA).byteLength;
      assert.ok(ratio < 1.05, `ISA-L/zlib size ${ratio}`);
    });
  });

  describe('gunzip', () => {
    const addon = igzip();
    const gunzips = { zlib: zlibGunzip, 'ISA-L (native/)': addon && ((source: AsyncIterable<Uint8Array>) => igzipGunzip(source, addon)) };
    const gzip = (data: Uint8Array): Buffer => execFileSync('gzip', ['-c', '-n'], { input: data, maxBuffer: 1 << 28 });
    it('ISA-L and zlib agree on 300 damaged streams (cut short, bits flipped, bytes after), however cut', { skip: addon ? false : 'native/ is not built' }, async () => {
      let seed = 20261128;
      const random = (below: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31; // a fixed sequence: the same cases every run
        return seed % below;
      };
      const blocks = [Buffer.alloc(0), Buffer.from('hello'), DATA.subarray(0, 200_000), randomBytes(50_000)];
      for (let n = 0; n < 300; n++) {
        let data = Buffer.concat(Array.from({ length: 1 + random(3) }, () => gzip(blocks[random(blocks.length)] as Buffer)));
        const damage = random(4);
        if (damage === 0) data = data.subarray(0, random(data.length));
        else if (damage === 1) {
          for (let i = 0, flips = 1 + random(4); i < flips; i++) {
            const at = random(data.length);
            data[at] = (data[at] as number) ^ (1 << random(8));
          }
        }
        else if (damage === 2) data = Buffer.concat([data, Buffer.from([1 + random(255)]), randomBytes(random(20))]);
        const cut = 1 + random(n % 2 === 0 ? 16 : 70_000);
        const outcome = (source: AsyncIterable<Uint8Array>): Promise<string> =>
          collect(source).then(
            (out) => `ok ${createHash('sha256').update(out).digest('hex')}`,
            (err: Error) => (isKilnError(err, 'INVALID_INPUT') ? 'refused' : `crashed: ${err.message}`),
          );
        const [ours, theirs] = [await outcome(igzipGunzip(chunked(data, cut), addon as NonNullable<typeof addon>)), await outcome(zlibGunzip(chunked(data, cut)))];
        assert.equal(ours, theirs, `case ${n}: damage ${damage}, cut every ${cut} bytes`);
      }
    });

    for (const [name, gunzip] of Object.entries(gunzips)) {
      const skip = gunzip ? false : 'native/ is not built (npm run install, with Debian libisal-dev)';
      const run = (data: Uint8Array, size: number): Promise<Buffer> => collect((gunzip as NonNullable<typeof gunzip>)(chunked(Buffer.from(data), size)));

      it(`${name}: reads one member or many, however the input is cut; a zero byte after a member ends the data, as in Node's zlib`, { skip }, async () => {
        const big = Buffer.concat([DATA, randomBytes(1 << 20)]); // output past several 1 MiB buffers
        const one = gzip(big);
        for (const size of [1 << 20, 65_536, 4099]) assert.deepEqual(await run(one, size), big, `cut every ${size} bytes`);
        const members = Buffer.concat([gzip(Buffer.from('first\n')), gzip(Buffer.alloc(0)), gzip(Buffer.from('second\n'))]);
        const padded = Buffer.concat([gzip(Buffer.from('first\n')), Buffer.alloc(3), gzip(Buffer.from('second\n')), Buffer.from('anything')]);
        for (const size of [1, 2, 7, 1000]) {
          assert.equal((await run(members, size)).toString(), 'first\nsecond\n', `cut every ${size} bytes`);
          assert.equal((await run(padded, size)).toString(), 'first\n', `padded, cut every ${size} bytes`);
        }
        assert.deepEqual(await run(await collect(compressStream(chunked(big), 'gzip')), 100_000), big, 'kiln\'s own members');
      });

      it(`${name}: refuses a stream that stops short, is empty, is corrupt, or has something else after it`, { skip }, async () => {
        const packed = gzip(DATA);
        const flipped = Buffer.from(packed);
        for (let i = 1000; i < 1100; i++) flipped[i] = (flipped[i] as number) ^ 0x5a;
        const badTrailer = Buffer.from(packed);
        badTrailer[badTrailer.length - 6] = (badTrailer[badTrailer.length - 6] as number) ^ 1; // the CRC-32
        const cases = {
          truncated: packed.subarray(0, packed.length - 100),
          'without its trailer': packed.subarray(0, packed.length - 8),
          empty: Buffer.alloc(0),
          corrupt: flipped,
          'a wrong checksum': badTrailer,
          'something else after it': Buffer.concat([packed, Buffer.from('not gzip at all')]),
        };
        for (const [what, data] of Object.entries(cases)) {
          await assert.rejects(run(data, 65_536), (err) => isKilnError(err, 'INVALID_INPUT') && /gzip data is corrupt/.test((err as Error).message), what);
        }
      });

      it(`${name}: passes the source's own failure through as it is`, { skip }, async () => {
        const packed = gzip(DATA);
        const broken = (async function* () {
          yield packed.subarray(0, 10_000);
          throw new Error('connection reset');
        })();
        await assert.rejects(collect((gunzip as NonNullable<typeof gunzip>)(broken)), /^Error: connection reset$/);
      });
    }
  });

  it('treats anything else as uncompressed, replaying the sniffed bytes', async () => {
    const { compression, stream } = await autoDecompress(chunked(Buffer.from('ab'), 1));
    assert.equal(compression, 'none');
    assert.equal((await collect(stream)).toString(), 'ab');
  });

  it('closes its source when the reader stops early (a file would stay open until garbage collection)', async () => {
    for (const data of [Buffer.alloc(300_000, 1), gzipSync(Buffer.alloc(300_000, 1))]) {
      let closed = false;
      async function* source(): AsyncGenerator<Buffer> {
        try {
          yield* chunked(data, 1000);
        } finally {
          closed = true;
        }
      }
      const { stream } = await autoDecompress(source());
      for await (const chunk of stream) if (chunk.length > 0) break;
      assert.equal(closed, true);
    }
  });

  it('does not keep the process alive after zstd work', async () => {
    const script = `import { compressStream } from ${JSON.stringify(join(repoRoot, 'dist/src/layer/compression.js'))};
      let n = 0; for await (const c of compressStream((async function* () { yield Buffer.from('x'.repeat(1000)); })(), 'zstd')) n += c.length;
      console.log(n > 0 ? 'done' : 'empty');`;
    const file = join(await tempDir(), 'zstd-exit.mjs');
    await writeFile(file, script);
    const result = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'done');
  });
});
