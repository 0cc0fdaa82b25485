import type { ProgressEvent } from '../engine/registry.js';
import { humanSizeWithPrecision } from './format/units.js';

/**
 * Docker's jsonmessage display. On a terminal: one line per layer ID, redrawn in place, with a progress
 * bar while bytes move. Otherwise: a line per status change (no progress lines), as `docker pull | cat`
 * prints.
 */
export function progressPrinter(out: NodeJS.WritableStream & { isTTY?: boolean }): (event: ProgressEvent) => void {
  if (out.isTTY !== true) {
    const last = new Map<string, string>();
    return (event) => {
      if (event.id === undefined) {
        out.write(`${event.status}\n`);
        return;
      }
      if (event.progressDetail || last.get(event.id) === event.status) return;
      last.set(event.id, event.status);
      out.write(`${event.id}: ${event.status}\n`);
    };
  }
  const lines: string[] = [];
  return (event) => {
    if (event.id === undefined) {
      out.write(`${event.status}\n`);
      lines.length = 0; // lines above a plain message are not redrawn any more
      return;
    }
    let text = `${event.id}: ${event.status}`;
    const { current = 0, total = 0 } = event.progressDetail ?? {};
    if (total > 0) {
      const filled = Math.min(50, Math.floor((current / total) * 50));
      const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(50 - filled)}]`;
      text += ` ${bar} ${humanSizeWithPrecision(current, 4)}/${humanSizeWithPrecision(total, 4)}`;
    } else if (current > 0) text += ` ${humanSizeWithPrecision(current, 4)}`; // a size not known in advance, as Docker shows it
    const at = lines.indexOf(event.id);
    if (at < 0) {
      lines.push(event.id);
      out.write(`${text}\n`);
      return;
    }
    const up = lines.length - at;
    out.write(`\x1b[${up}A\x1b[2K\r${text}\x1b[${up}B\r`);
  };
}
