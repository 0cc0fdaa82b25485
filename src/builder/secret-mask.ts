import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/** Secret values (or lines of them) shorter than this are not masked: they would hide ordinary words. */
const SHORTEST_MASKED = 4;
/** Output with no line end yet waits at most this long before it is masked and passed on. */
const LONGEST_WAIT = 64 << 10;
const MASK = '****';

/**
 * Hides the values of a RUN step's secrets in what the step prints, before it is shown or kept in a log
 * file: secrets never reach a layer or the history, and not a log either. Output is masked a line at a
 * time, so that a value split between two writes is still found; a secret of several lines is masked
 * whole and line by line. Lifecycle: `of` reads the secret files; `write` for each chunk; `flush` once
 * the step's process has ended.
 */
export class SecretMask {
  private readonly pending = { stdout: '', stderr: '' };
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

  private constructor(private readonly values: readonly string[]) {}

  /** The mask for these secret files, or undefined when there is nothing to hide. */
  static async of(files: readonly string[]): Promise<SecretMask | undefined> {
    const values = new Set<string>();
    for (const file of files) {
      const text = await readFile(file, 'utf8').catch(() => '');
      for (const value of [text.replace(/\r?\n$/, ''), ...text.split(/\r?\n/)]) {
        if (value.trim().length >= SHORTEST_MASKED) values.add(value);
      }
    }
    // Longest first: a whole value before the lines it is made of.
    return values.size > 0 ? new SecretMask([...values].sort((a, b) => b.length - a.length)) : undefined;
  }

  /** Passes on the complete lines of `chunk` (with what waited before it), masked. */
  write(stream: 'stdout' | 'stderr', chunk: Buffer, emit: (stream: 'stdout' | 'stderr', chunk: Buffer) => void): void {
    const text = this.pending[stream] + this.decoders[stream].write(chunk);
    const end = text.length > LONGEST_WAIT ? text.length : text.lastIndexOf('\n') + 1;
    this.pending[stream] = text.slice(end);
    if (end > 0) emit(stream, Buffer.from(this.mask(text.slice(0, end))));
  }

  /** Passes on what is still waiting, masked. */
  flush(emit: (stream: 'stdout' | 'stderr', chunk: Buffer) => void): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.pending[stream] + this.decoders[stream].end();
      this.pending[stream] = '';
      if (rest !== '') emit(stream, Buffer.from(this.mask(rest)));
    }
  }

  private mask(text: string): string {
    return this.values.reduce((masked, value) => masked.split(value).join(MASK), text);
  }
}
