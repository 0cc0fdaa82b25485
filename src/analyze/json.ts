/**
 * The analysis as JSON text, in pieces: dive's export, field for field, with every layer's file list
 * written straight from the layer's listing, and kiln's wasted paths from their list. A big image lists
 * hundreds of thousands of entries; as objects, then one string, then one buffer, they cost more than
 * reading the layers did, and JSON.stringify with indentation is slower on them than text made here.
 * (Text written into bytes by hand was slower still: loops over bytes run interpreted for much of a
 * process this short.)
 */
import type { DiveFileInfo, ImageAnalysis } from './analysis.js';
import type { LayerEntry } from './layers/walk.js';
import type { WastedPath } from './waste.js';

const TYPE_FLAGS: Readonly<Record<string, string>> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6', whiteout: '0', opaque: '0' };
const GO_TYPE_BITS: Readonly<Record<string, number>> = { directory: 1 << 31, symlink: 1 << 27, block: 1 << 26, char: (1 << 26) | (1 << 21), fifo: 1 << 25 };

/** Go's os.FileMode of a tar entry, as archive/tar's FileInfo().Mode() gives it. */
function goFileMode(entry: LayerEntry): number {
  let mode = entry.mode & 0o777;
  if (entry.mode & 0o4000) mode |= 1 << 23;
  if (entry.mode & 0o2000) mode |= 1 << 22;
  if (entry.mode & 0o1000) mode |= 1 << 20;
  return (mode | (GO_TYPE_BITS[entry.kind] ?? 0)) >>> 0;
}

/** An entry as dive lists it. */
export function fileInfo(entry: LayerEntry): DiveFileInfo {
  return {
    path: entry.name,
    typeFlag: (TYPE_FLAGS[entry.kind] ?? '0').charCodeAt(0),
    linkName: entry.link ?? '',
    size: entry.size,
    fileMode: goFileMode(entry),
    uid: entry.uid,
    gid: entry.gid,
    isDir: entry.kind === 'directory',
  };
}

/** Where a long list goes in the rest of the document: a string no value can hold unescaped. */
const slotText = (list: string): string => `\u0000kiln-${list}`;
/** The slot as the document's text has it (its quotes are JSON's). */
const slot = (list: string): string => JSON.stringify(slotText(list));
const fileListSlot = (layer: number): string => `file-list-${layer}`;
const PIECE = 64 << 10;

/**
 * A list's text, as JSON.stringify(…, null, 2) writes it at its depth (each item's text made by `item`,
 * `close` ending the last), in pieces of about 64 KiB.
 */
function* listJson<T>(items: readonly T[], item: (value: T) => string, close: string): Generator<string> {
  if (items.length === 0) {
    yield '[]';
    return;
  }
  let text = '[\n';
  for (let i = 0; i < items.length; i++) {
    text += `${item(items[i] as T)}${i === items.length - 1 ? close : ',\n'}`;
    if (text.length >= PIECE) {
      yield text;
      text = '';
    }
  }
  if (text !== '') yield text;
}

/** A file list's entry at its depth in the document. */
function fileListItem(entry: LayerEntry): string {
  const f = fileInfo(entry);
  return `        {\n          "path": ${JSON.stringify(f.path)},\n          "typeFlag": ${f.typeFlag},\n          "linkName": ${JSON.stringify(f.linkName)},\n          "size": ${f.size},\n          "fileMode": ${f.fileMode},\n          "uid": ${f.uid},\n          "gid": ${f.gid},\n          "isDir": ${f.isDir}\n        }`;
}

/** One of kiln's wasted paths at its depth in the document. */
function wastedItem(w: WastedPath): string {
  return `      {\n        "path": ${JSON.stringify(w.path)},\n        "bytes": ${w.bytes},\n        "layer": ${w.layer},\n        "endedBy": ${w.endedBy},\n        "how": ${JSON.stringify(w.how)}\n      }`;
}

/**
 * The document `JSON.stringify({ layer, image, kiln }, null, 2)` of the analysis with its file lists
 * (`document` may add fields to the analysis, such as kiln.ci), and a newline, in pieces.
 */
export function* analysisJson<D extends ImageAnalysis>(document: D, fileLists: readonly (readonly LayerEntry[])[]): Generator<string> {
  const text = JSON.stringify(
    {
      ...document,
      layer: document.layer.map((layer) => ({ ...layer, fileList: slotText(fileListSlot(layer.index)) })),
      kiln: { ...document.kiln, wasted: slotText('wasted') },
    },
    null,
    2,
  );
  // The lists in the document's order: the layers' file lists, then kiln's wasted paths.
  const lists: [string, () => Iterable<string>][] = document.layer.map((layer) => [slot(fileListSlot(layer.index)), () => listJson(fileLists[layer.index] ?? [], fileListItem, '\n      ]')]);
  lists.push([slot('wasted'), () => listJson(document.kiln.wasted, wastedItem, '\n    ]')]);
  let at = 0;
  for (const [marker, write] of lists) {
    const found = text.indexOf(marker, at);
    yield text.slice(at, found);
    yield* write();
    at = found + marker.length;
  }
  yield `${text.slice(at)}\n`;
}
