import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import type { SeekableSource } from './reader.js';

/** How long synchronous reads may hold the event loop before letting it turn. */
const SYNC_SLICE_MS = 20;
/** Reads grow from the first size (after a skip: the next header is near) to the largest while they follow on. */
const FIRST_READ = 16 << 10;
const LARGEST_READ = 256 << 10;
/** Reads are cut from slabs of this size: one allocation for many reads (what a reader keeps pins a slab). */
const SLAB = 1 << 20;

/**
 * A range of a file (a tar, or a tar inside an archive) read from a position, able to jump over what its
 * reader does not need, so that skipped bodies cost no I/O. The caller owns the handle. `sync` reads
 * with readSync, which costs a few microseconds where a read through the thread pool costs tens: for a
 * reader that takes headers only, and so reads once per entry; the event loop still turns every 20 ms.
 * `reuse` reads into two buffers in turn (no allocation, no fresh pages to fault in): only for a reader
 * that keeps no chunk past the next one, such as a tar reader whose bodies are all skipped.
 */
export class FileSource implements AsyncIterator<Uint8Array>, SeekableSource {
  private position: number;
  private sliceStart = Date.now();
  private readSize = FIRST_READ;
  private slab = Buffer.allocUnsafe(0);
  private slabUsed = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly end: number,
    private readonly options: { readonly start?: number; readonly sync?: boolean; readonly reuse?: boolean } = {},
  ) {
    this.position = options.start ?? 0;
    if (options.reuse) this.turns = [Buffer.allocUnsafe(LARGEST_READ), Buffer.allocUnsafe(LARGEST_READ)];
  }

  /** With `reuse`: the two buffers, used in turn. */
  private readonly turns: Buffer[] = [];
  private turn = 0;

  /** Where the next read of `length` bytes goes. */
  private bufferFor(length: number): Buffer {
    if (this.turns.length > 0) return (this.turns[this.turn++ % 2] as Buffer).subarray(0, length);
    if (this.slab.length - this.slabUsed < length) {
      this.slab = Buffer.allocUnsafe(Math.max(SLAB, length));
      this.slabUsed = 0;
    }
    const buffer = this.slab.subarray(this.slabUsed, this.slabUsed + length);
    this.slabUsed += length;
    return buffer;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.position >= this.end) return { done: true, value: undefined };
    const length = Math.min(this.readSize, this.end - this.position);
    this.readSize = Math.min(this.readSize * 2, LARGEST_READ);
    const buffer = this.bufferFor(length);
    let bytesRead: number;
    if (this.options.sync) {
      if (Date.now() - this.sliceStart > SYNC_SLICE_MS) {
        await yieldTurn();
        this.sliceStart = Date.now();
      }
      bytesRead = readSync(this.handle.fd, buffer, 0, length, this.position);
    } else {
      ({ bytesRead } = await this.handle.read(buffer, 0, length, this.position));
    }
    if (bytesRead === 0) return { done: true, value: undefined };
    this.position += bytesRead;
    return { done: false, value: buffer.subarray(0, bytesRead) };
  }

  skipAhead(n: number): Promise<number> {
    const skipped = Math.min(n, this.end - this.position);
    this.position += skipped;
    if (skipped > 0) this.readSize = FIRST_READ;
    return Promise.resolve(skipped);
  }
}
