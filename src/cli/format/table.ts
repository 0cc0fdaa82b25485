import { goJsonSorted } from './gojson.js';
import { parseTemplate } from './template.js';

export { renderTemplate } from './template.js';

/** Docker's tabwriter settings (docker/cli formatter): minwidth 10, tabwidth 1, padding 3, spaces. */
const MIN_WIDTH = 10;
const PADDING = 3;

/**
 * Go's text/tabwriter: tab-terminated cells align in column blocks (runs of consecutive lines that
 * have the column); a line's last cell is never padded.
 */
export function tabwrite(text: string, minWidth = MIN_WIDTH, padding = PADDING): string {
  return tabwriteLines(text.split('\n'), minWidth, padding);
}

/** tabwrite of lines already apart (a table's rows: not joined only to be split again). */
function tabwriteLines(textLines: readonly string[], minWidth: number, padding: number): string {
  const lines = textLines.map((line) => line.split('\t'));
  // In characters (code points): a string without surrogates has as many as its length. Most tables have
  // none: one look at each line then, not one at each cell.
  const surrogates = textLines.some((line) => /[\ud800-\udfff]/.test(line));
  const widthOf = surrogates ? (cell: string): number => [...cell].length : (cell: string): number => cell.length;
  const out: string[] = [];
  const widths: number[] = [];
  const writeLines = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const cells = lines[i] as string[];
      let line = '';
      for (let j = 0; j < cells.length; j++) {
        const cell = cells[j] as string;
        line += j < widths.length && j < cells.length - 1 ? cell + ' '.repeat(Math.max(0, (widths[j] as number) - widthOf(cell))) : cell;
      }
      out.push(line);
    }
  };
  const format = (start: number, end: number): void => {
    const column = widths.length;
    let line0 = start;
    for (let i = start; i < end; i++) {
      if (column >= (lines[i] as string[]).length - 1) continue;
      writeLines(line0, i);
      line0 = i;
      let width = minWidth;
      for (; i < end && column < (lines[i] as string[]).length - 1; i++) width = Math.max(width, widthOf((lines[i] as string[])[column] as string) + padding);
      widths.push(width);
      format(line0, i);
      widths.pop();
      line0 = i;
      i--;
    }
    writeLines(line0, end);
  };
  format(0, lines.length);
  return out.join('\n');
}

/** docker/cli turns the two characters `\t` and `\n` in a --format string into a tab and a newline. */
function unescape(format: string): string {
  return format.replaceAll('\\t', '\t').replaceAll('\\n', '\n');
}

/**
 * Prints rows the way docker's --format does: `json` gives one JSON object per row (keys sorted, as Go
 * marshals a map), `table TEMPLATE` a header from `headers` and aligned columns, anything else the
 * template once per row.
 */
export function renderRows(format: string, headers: Readonly<Record<string, string>>, rows: readonly object[]): string {
  if (format.trim() === 'json') return rows.map((row) => `${goJsonSorted(row)}\n`).join('');
  const isTable = format.startsWith('table');
  const template = parseTemplate(unescape(isTable ? format.slice('table'.length).trimStart() : format));
  const lines = rows.map((row) => template.execute(row));
  if (!isTable) return lines.map((line) => `${line}\n`).join('');
  const headerData = new Proxy(headers, { get: (target, key) => (typeof key === 'string' ? (target[key] ?? '') : undefined) });
  const all = [template.execute(headerData), ...lines];
  // A row's template may print several lines: each is a line of the table.
  return `${tabwriteLines(all.some((line) => line.includes('\n')) ? all.join('\n').split('\n') : all, MIN_WIDTH, PADDING)}\n`;
}
