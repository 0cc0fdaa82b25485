import { buffer } from 'node:stream/consumers';
import type { TarHeader } from '../../src/layer/tar/header.js';
import { type TarSource, readTar } from '../../src/layer/tar/reader.js';

/**
 * Every entry of an archive with its body, each header with only the fields it has: the reader gives
 * every header the same keys, the absent ones undefined, which a deep comparison would count.
 */
export async function readEntries(source: TarSource): Promise<{ header: TarHeader; body: Buffer }[]> {
  const out: { header: TarHeader; body: Buffer }[] = [];
  for await (const { header, body } of readTar(source)) {
    const present = Object.fromEntries(Object.entries(header).filter(([, value]) => value !== undefined)) as unknown as TarHeader;
    out.push({ header: present, body: await buffer(body) });
  }
  return out;
}

/** Rewrites the checksum of the header block at `at` after a test changed it, as a signed sum if asked. */
export function reseal(archive: Buffer, at = 0, signed = false): Buffer {
  const block = archive.subarray(at, at + 512);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += signed && byte > 127 ? byte - 256 : byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return archive;
}
