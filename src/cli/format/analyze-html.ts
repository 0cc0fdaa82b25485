/**
 * The analysis as one self-contained HTML page (no network: styles, script, data and drawings inline, and
 * a Content-Security-Policy that forbids any fetch): a treemap of the final tree by size coloured by the
 * layer that wrote each file, a bar per layer with its waste, the findings with their Dockerfile lines.
 * The treemap is laid out here (squarified) and drawn as SVG, so the page shows it without its script;
 * the script only links layers and rectangles on hover.
 */
import type { ImageAnalysis } from '../../analyze/analysis.js';
import type { TreeNode } from '../../analyze/waste.js';
import { humanSize as size } from './units.js';

const WIDTH = 1200;
const HEIGHT = 700;
/** Room for a directory's name above its content. */
const LABEL = 14;

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A colour per layer: hues far apart; the base image's layers greyed. */
export function layerColour(layer: number, base: boolean): string {
  const hue = Math.round((layer * 137.508) % 360);
  return base ? `hsl(${hue} 12% 62%)` : `hsl(${hue} 65% 55%)`;
}

interface Rect {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** The worst aspect ratio of a row of areas laid along a side of length `side`. */
function worst(row: readonly number[], side: number): number {
  const sum = row.reduce((a, b) => a + b, 0);
  const max = Math.max(...row);
  const min = Math.min(...row);
  return Math.max((side * side * max) / (sum * sum), (sum * sum) / (side * side * min));
}

/** Squarified treemap (Bruls, Huizing, van Wijk): areas laid in rows that keep rectangles near square. */
function squarify(values: readonly number[], box: Rect): Rect[] {
  const total = values.reduce((a, b) => a + b, 0);
  const rects: Rect[] = [];
  if (total <= 0 || box.w <= 0 || box.h <= 0) return values.map(() => ({ x: box.x, y: box.y, w: 0, h: 0 }));
  const scale = (box.w * box.h) / total;
  const areas = values.map((v) => v * scale);
  let { x, y, w, h } = box;
  let row: number[] = [];
  const place = (): void => {
    const sum = row.reduce((a, b) => a + b, 0);
    if (w >= h) {
      const width = sum / h;
      let at = y;
      for (const area of row) {
        rects.push({ x, y: at, w: width, h: area / width });
        at += area / width;
      }
      x += width;
      w -= width;
    } else {
      const height = sum / w;
      let at = x;
      for (const area of row) {
        rects.push({ x: at, y, w: area / height, h: height });
        at += area / height;
      }
      y += height;
      h -= height;
    }
    row = [];
  };
  for (const area of areas) {
    const side = Math.min(w, h);
    if (row.length > 0 && worst([...row, area], side) > worst(row, side)) place();
    row.push(area);
  }
  if (row.length > 0) place();
  return rects;
}

/** The treemap's SVG elements: a frame and a name per directory, a coloured rectangle per file. */
function treemap(tree: TreeNode, baseLayers: number): string {
  const out: string[] = [];
  const draw = (node: TreeNode, box: Rect, path: string, depth: number): void => {
    if (box.w < 1 || box.h < 1) return;
    const title = `${escape(path || '/')} — ${size(node.bytes)}`;
    if (!node.children || node.children.length === 0) {
      const layer = node.layer ?? 0;
      out.push(`<rect class="file" data-layer="${layer}" x="${box.x.toFixed(1)}" y="${box.y.toFixed(1)}" width="${box.w.toFixed(1)}" height="${box.h.toFixed(1)}" fill="${layerColour(layer, layer < baseLayers)}"><title>${title} (layer ${layer})</title></rect>`);
      return;
    }
    out.push(`<g class="dir" data-depth="${depth}"><rect class="frame" x="${box.x.toFixed(1)}" y="${box.y.toFixed(1)}" width="${box.w.toFixed(1)}" height="${box.h.toFixed(1)}"><title>${title}</title></rect>`);
    const label = box.h > LABEL * 2 && box.w > 30;
    if (label) out.push(`<text x="${(box.x + 3).toFixed(1)}" y="${(box.y + LABEL - 3).toFixed(1)}">${escape(node.name)} ${size(node.bytes)}</text>`);
    const inner = label ? { x: box.x + 1, y: box.y + LABEL, w: box.w - 2, h: box.h - LABEL - 1 } : box;
    const children = node.children.filter((c) => c.bytes > 0);
    squarify(
      children.map((c) => c.bytes),
      inner,
    ).forEach((rect, i) => {
      const child = children[i] as TreeNode;
      draw(child, rect, `${path}/${child.name}`, depth + 1);
    });
    out.push('</g>');
  };
  draw(tree, { x: 0, y: 0, w: WIDTH, h: HEIGHT }, '', 0);
  return out.join('\n');
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.figures { display: flex; flex-wrap: wrap; gap: .6em; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: .4em .8em; min-width: 9em; }
.figure b { display: block; font-size: 1.3em; }
svg.treemap { width: 100%; height: auto; border: 1px solid #ccc; background: #fafafa; }
svg.treemap rect.frame { fill: none; stroke: #999; stroke-width: .5; }
svg.treemap text { font-size: 10px; fill: #333; pointer-events: none; }
svg.treemap rect.file { stroke: #fff; stroke-width: .3; }
svg.treemap.hovering rect.file { opacity: .25; } svg.treemap.hovering rect.file.on { opacity: 1; }
table { border-collapse: collapse; } td, th { padding: .15em .6em; text-align: left; vertical-align: top; }
th { border-bottom: 1px solid #ccc; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: flex; height: 1em; min-width: 2px; } .bar span { display: block; height: 100%; }
.bar .waste { background: repeating-linear-gradient(45deg, #c33, #c33 3px, #e99 3px, #e99 6px); }
tr.layer:hover { background: #eef; } code { font-size: .95em; }
.finding { margin: .5em 0; } .rule { font-weight: 600; }
`;

/** Links a layer's row to its rectangles in the treemap. */
const SCRIPT = `
const map = document.querySelector('svg.treemap');
for (const row of document.querySelectorAll('tr.layer')) {
  const layer = row.dataset.layer;
  row.addEventListener('mouseenter', () => {
    map.classList.add('hovering');
    for (const rect of map.querySelectorAll('rect.file[data-layer="' + layer + '"]')) rect.classList.add('on');
  });
  row.addEventListener('mouseleave', () => {
    map.classList.remove('hovering');
    for (const rect of map.querySelectorAll('rect.file.on')) rect.classList.remove('on');
  });
}
`;

/** The page. Every figure shown carries its JSON value in `data-value`, under the name of its JSON field. */
export function renderHtml(analysis: ImageAnalysis, tree: TreeNode): string {
  const { kiln, image } = analysis;
  const figure = (field: string, label: string, value: number | null, shown: string): string =>
    `<div class="figure" data-figure="${field}" data-value="${value === null ? 'null' : String(value)}">${escape(label)}<b>${escape(shown)}</b></div>`;
  const ratio = (value: number | null): string => (value === null ? 'n/a' : value.toFixed(4));
  const largest = Math.max(1, ...kiln.layers.map((l) => l.sizeBytes));
  const layerRows = kiln.layers
    .map((l) => {
      const kept = Math.max(0, l.sizeBytes - l.reclaimableBytes);
      const bar = `<div class="bar"><span style="width:${((kept / largest) * 300).toFixed(1)}px;background:${layerColour(l.index, l.base)}"></span><span class="waste" style="width:${((l.reclaimableBytes / largest) * 300).toFixed(1)}px"></span></div>`;
      const where = l.line !== null ? `line ${l.line}` : l.base ? 'base' : '';
      const what = l.instruction ?? (l.createdBy || l.comment);
      return `<tr class="layer" data-layer="${l.index}"><td class="n">${l.index}</td><td>${bar}</td><td class="n" data-value="${l.sizeBytes}">${size(l.sizeBytes)}</td><td class="n" data-value="${l.reclaimableBytes}">${l.reclaimableBytes > 0 ? size(l.reclaimableBytes) : '-'}</td><td>${escape(where)}</td><td><code>${escape(what.length > 120 ? `${what.slice(0, 120)}…` : what)}</code></td></tr>`;
    })
    .join('\n');
  const findings =
    kiln.findings.length === 0
      ? '<p>No findings: nothing the image itself writes is wasted.</p>'
      : kiln.findings
          .map(
            (f) =>
              `<div class="finding" data-rule="${f.rule}" data-bytes="${f.bytes}" data-line="${f.line ?? ''}"><span class="rule">${escape(f.rule)}</span> · ${size(f.bytes)}${f.line !== null ? ` · line ${f.line}` : ''}${f.fixLine !== undefined ? ` (and line ${f.fixLine})` : ''}<br>${escape(f.message)}</div>`,
          )
          .join('\n');
  const files = kiln.largestFiles.map((f) => `<tr><td class="n">${size(f.bytes)}</td><td><code>${escape(f.path)}</code></td><td>layer ${f.layer ?? ''}</td></tr>`).join('\n');
  const wasted = kiln.wasted
    .slice(0, 20)
    .map((w) => `<tr><td class="n">${size(w.bytes)}</td><td><code>${escape(w.path)}</code></td><td>layer ${w.layer}, ${w.how} by layer ${w.endedBy}</td></tr>`)
    .join('\n');
  const name = kiln.names[0] ?? kiln.imageId;
  // The figures the page shows, in the JSON's own shape, for a reader (or a test) to check against.
  const data = JSON.stringify({ image: { sizeBytes: image.sizeBytes, inefficientBytes: image.inefficientBytes, efficiencyScore: image.efficiencyScore }, kiln: { ...kiln, wasted: kiln.wasted.slice(0, 20) } }).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kiln analyze: ${escape(name)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escape(name)}</h1>
<p><code>${escape(kiln.imageId)}</code> from <code>${escape(kiln.source)}</code>${kiln.dockerfile ? `, built from <code>${escape(kiln.dockerfile)}</code>` : ''}</p>
<div class="figures">
${figure('kiln.sizeBytes', 'Size', kiln.sizeBytes, size(kiln.sizeBytes))}
${figure('kiln.userSizeBytes', "The image's own", kiln.userSizeBytes, size(kiln.userSizeBytes))}
${figure('kiln.reclaimableBytes', 'Reclaimable', kiln.reclaimableBytes, size(kiln.reclaimableBytes))}
${figure('kiln.efficiencyScore', 'Efficiency (base-aware)', kiln.efficiencyScore, ratio(kiln.efficiencyScore))}
${figure('image.sizeBytes', "dive's size", image.sizeBytes, size(image.sizeBytes))}
${figure('image.inefficientBytes', "dive's wasted bytes", image.inefficientBytes, size(image.inefficientBytes))}
${figure('image.efficiencyScore', "dive's efficiency", image.efficiencyScore, ratio(image.efficiencyScore))}
</div>
<p>Base: ${kiln.base.layers} layer${kiln.base.layers === 1 ? '' : 's'}, ${size(kiln.base.sizeBytes)}${kiln.base.image ? ` (${escape(kiln.base.image)})` : ''}.</p>
<h2>The final tree by size, coloured by layer</h2>
<svg class="treemap" viewBox="0 0 ${WIDTH} ${HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="treemap of the final tree">
${treemap(tree, kiln.base.layers)}
</svg>
<h2>Layers</h2>
<table class="layers"><tr><th>#</th><th>size (waste hatched)</th><th>size</th><th>wasted</th><th>line</th><th>instruction</th></tr>
${layerRows}
</table>
<h2>Findings</h2>
${findings}
<h2>Largest files</h2>
<table>${files}</table>
<h2>Wasted paths</h2>
${wasted ? `<table>${wasted}</table>` : '<p>None.</p>'}
<script type="application/json" id="analysis">${data}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
