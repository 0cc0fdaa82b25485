/**
 * A container script whose stdout and stderr writes alternate, for tests of the order a log keeps across
 * the two streams.
 *
 * Two writes to two pipes in a row have no order a reader can see: the kernel keeps none between pipes,
 * and whichever reader (kiln's, Docker's) wakes first reads first, so back-to-back writes come out of
 * order some of the time, in Docker too (on a loaded 2-core machine, 1 2 3 about one time in three).
 * Here each marker is followed, on its own stream, by 256 KiB of dots before the next marker is written
 * on the other: that write can only end once the reader has taken more than the pipe holds (64 KiB)
 * plus one read (64 KiB), so the marker's read is done, and logged, before the next marker exists. The
 * order of the markers is then certain with no waiting anywhere, and a log that loses it (one stream
 * after the other, a reorder by the wrong time) fails.
 */
export const INTERLEAVED_MARKERS = 'abcdef';

const FILL = 'fill() { head -c 262144 /dev/zero | tr "\\0" .; }';

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
