/**
 * The analysis as JSON text, in pieces: dive's export, field for field, with every layer's file list
 * written straight from the layer's listing, and kiln's wasted paths from their list. A big image lists
 * hundreds of thousands of entries; as objects, then one string, then one buffer, they cost more than
 * reading the layers did, and JSON.stringify with indentation is slower on them than text made here.
 * (Text written into bytes by hand was slower still: loops over bytes run interpreted for much of a
 * process this short.)
 */
import type { ImageAnalysis } from './analysis.js';
import { KIND, type LayerEntries } from './layers/walk.js';
import type { WastedPath } from './waste.js';

/** The tar typeflag dive lists for each KIND (a whiteout and an opaque marker are regular files). */
const TYPE_FLAGS: readonly number[] = [KIND.file, KIND.hardlink, KIND.symlink, KIND.char, KIND.block, KIND.directory, KIND.fifo, KIND.file, KIND.file].map((kind) => 0x30 + kind);
/** Go's os.FileMode type bits for each KIND. */
const GO_TYPE_BITS: readonly number[] = [0, 0, 1 << 27, (1 << 26) | (1 << 21), 1 << 26, 1 << 31, 1 << 25, 0, 0];

/** Go's os.FileMode of a tar entry's mode and KIND, as archive/tar's FileInfo().Mode() gives it. */
function goFileMode(entryMode: number, kind: number): number {
  let mode = entryMode & 0o777;
  if (entryMode & 0o4000) mode |= 1 << 23;
  if (entryMode & 0o2000) mode |= 1 << 22;
  if (entryMode & 0o1000) mode |= 1 << 20;
  return (mode | (GO_TYPE_BITS[kind] ?? 0)) >>> 0;
}

/** Where a long list goes in the rest of the document: a string no value can hold unescaped. */
const slotText = (list: string): string => `\u0000kiln-${list}`;
/** The slot as the document's text has it (its quotes are JSON's). */
const slot = (list: string): string => JSON.stringify(slotText(list));
const fileListSlot = (layer: number): string => `file-list-${layer}`;
const PIECE = 64 << 10;

/**
 * A list's text, as JSON.stringify(…, null, 2) writes it at its depth (the text of each of its `count`
 * items made by `item`, `close` ending the last), in pieces of about 64 KiB.
 */
function* listJson(count: number, item: (i: number) => string, close: string): Generator<string> {
  if (count === 0) {
    yield '[]';
    return;
  }
  let text = '[\n';
  for (let i = 0; i < count; i++) {
    text += `${item(i)}${i === count - 1 ? close : ',\n'}`;
    if (text.length >= PIECE) {
      yield text;
      text = '';
    }
  }
  if (text !== '') yield text;
}

/** A file list's entry at its depth in the document. */
function fileListItem(entries: LayerEntries, i: number): string {
  // dive's fields (DiveFileInfo), written from the columns without an object per entry.
  const kind = entries.kinds[i] as number;
  const link = entries.links.size === 0 ? undefined : entries.links.get(i);
  return `        {\n          "path": ${JSON.stringify(entries.names[i])},\n          "typeFlag": ${TYPE_FLAGS[kind]},\n          "linkName": ${link === undefined ? '""' : JSON.stringify(link)},\n          "size": ${entries.sizes[i]},\n          "fileMode": ${goFileMode(entries.modes[i] as number, kind)},\n          "uid": ${entries.uids[i]},\n          "gid": ${entries.gids[i]},\n          "isDir": ${kind === KIND.directory}\n        }`;
}

/** One of kiln's wasted paths at its depth in the document. */
function wastedItem(w: WastedPath): string {
  return `      {\n        "path": ${JSON.stringify(w.path)},\n        "bytes": ${w.bytes},\n        "layer": ${w.layer},\n        "endedBy": ${w.endedBy},\n        "how": ${JSON.stringify(w.how)}\n      }`;
}

/**
 * The document `JSON.stringify({ layer, image, kiln }, null, 2)` of the analysis with its file lists
 * (`document` may add fields to the analysis, such as kiln.ci), and a newline, in pieces. A layer's list
 * already `rendered` as its text (by native/sys) is written as it is, and so is the wasted list's
 * `wastedText` when given (it must be the text of document.kiln.wasted).
 */
export function* analysisJson<D extends ImageAnalysis>(document: D, fileLists: readonly LayerEntries[], rendered: readonly (Buffer | undefined)[] = [], wastedText?: Buffer): Generator<string | Buffer> {
  const text = JSON.stringify(
    {
      ...document,
      layer: document.layer.map((layer) => ({ ...layer, fileList: slotText(fileListSlot(layer.index)) })),
      // Its fields in their order, the wasted list's slot for the list (read only if written below: it is made when first read).
      kiln: Object.fromEntries(Object.keys(document.kiln).map((key) => [key, key === 'wasted' ? slotText('wasted') : document.kiln[key as keyof typeof document.kiln]])),
    },
    null,
    2,
  );
  // The lists in the document's order: the layers' file lists, then kiln's wasted paths.
  const lists: [string, () => Iterable<string | Buffer>][] = document.layer.map((layer) => {
    const entries = fileLists[layer.index];
    const text = rendered[layer.index];
    return [slot(fileListSlot(layer.index)), () => (text ? [text] : listJson(entries?.length ?? 0, (i) => fileListItem(entries as LayerEntries, i), '\n      ]'))];
  });
  lists.push([
    slot('wasted'),
    () => {
      if (wastedText) return [wastedText];
      const { wasted } = document.kiln;
      return listJson(wasted.length, (i) => wastedItem(wasted[i] as WastedPath), '\n    ]');
    },
  ]);
  let at = 0;
  for (const [marker, write] of lists) {
    const found = text.indexOf(marker, at);
    yield text.slice(at, found);
    yield* write();
    at = found + marker.length;
  }
  yield `${text.slice(at)}\n`;
}
