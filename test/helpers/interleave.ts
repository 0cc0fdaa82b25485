import { readFileSync } from 'node:fs';

/**
 * A container script whose stdout and stderr writes alternate, for tests of the order a log keeps across
 * the two streams.
 *
 * Two writes to two pipes in a row have no order a reader can see: the kernel keeps none between pipes,
 * and whichever reader (kiln's, Docker's) wakes first reads first, so back-to-back writes come out of
 * order some of the time, in Docker too (on a loaded 2-core machine, 1 2 3 one time in three or fewer).
 * Here each marker is followed, on its own stream, by dots before the next marker is written on the
 * other: that write can only end once the reader has taken all but what the pipe holds, more than one
 * read's worth beyond the marker, so the marker's read is done, and logged, before the next marker
 * exists. What a stream holds: a pipe 64 KiB; Node's stdio pipes are socket pairs, which hold up to the
 * socket send buffer and one more send (about 290 KiB with Linux's default net.core.wmem_default of
 * 208 KiB); the dots are four times the send buffer, and 1 MiB at least. The markers' order is then
 * certain with no waiting anywhere, and a log that loses it (one stream after the other, a reorder by
 * the wrong time) fails.
 */
export const INTERLEAVED_MARKERS = 'abcdef';

/** Linux's default socket send buffer, in bytes. */
function sendBuffer(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8').trim()) || 212_992;
  } catch {
    return 212_992;
  }
}

const FILL = `fill() { head -c ${Math.max(1 << 20, 4 * sendBuffer())} /dev/zero | tr "\\0" .; }`;

export const INTERLEAVED_SCRIPT = `${FILL}; ${[...INTERLEAVED_MARKERS]
  .map((marker, index) => {
    const stream = index % 2 === 0 ? '' : ' >&2';
    return index === INTERLEAVED_MARKERS.length - 1 ? `echo ${marker}${stream}` : `echo ${marker}${stream}; fill${stream}`;
  })
  .join('; ')}`;

/** The markers in a log's text (both streams in one), in the order they came. */
export function interleavedMarkers(log: string): string {
  return log.replace(/[.\n]/g, '');
}
