import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import type { Analysis } from '../../src/analyze/analysis.js';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot, tempDir } from '../helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = !isRoot ? 'kiln build needs root' : !existsSync(CHROMIUM) ? `Debian's chromium is not installed (${CHROMIUM}; scripts/setup.sh installs it)` : false;

/** Chromium with nothing of its own on the network: no QUIC, no background fetches, no updates, no sync. */
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('kiln analyze --html: one self-contained page, in a real browser', { skip }, () => {
  it('renders with no console error and no request, and shows the figures of the JSON', async () => {
    const { root } = await newKiln();
    // CI unset: CI=true would turn --ci on, as with dive.
    const kiln = (args: readonly string[]): Promise<RunResult> => runKiln(root, args, undefined, { CI: '' });
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox']));
    const context = await tempDir('kiln-ctx-');
    await writeFile(join(context, 'app.bin'), randomBytes(120_000));
    await writeFile(join(context, 'Dockerfile'), 'FROM busybox\nCOPY app.bin /app/app.bin\nRUN chmod 755 /app/app.bin\nRUN mkdir /cache && dd if=/dev/zero of=/cache/blob bs=1024 count=40 2>/dev/null\nRUN rm -r /cache\n');
    await ok(kiln(['build', '-q', '-t', 'page:1', context]));
    const dir = await tempDir();
    const page = join(dir, 'report.html');
    const analysis = JSON.parse((await ok(kiln(['analyze', '--format', 'json', '--html', page, '--json', join(dir, 'report.json'), 'page:1']))).stdout) as Analysis;
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')), analysis, '--json writes what --format json prints');
    const html = await readFile(page, 'utf8');
    assert.doesNotMatch(html, /\b(?:src|href)=["']?(?:https?:)?\/\//, 'nothing is loaded from elsewhere');

    const browser = await chromium.launchPersistentContext(await tempDir('kiln-chromium-'), { executablePath: CHROMIUM, args: ARGS, headless: true, offline: true });
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      tab.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') errors.push(message.text());
      });
      tab.on('pageerror', (error) => errors.push(error.message));
      tab.on('request', (request) => requests.push(request.url()));
      const url = pathToFileURL(page).href;
      await tab.goto(url, { waitUntil: 'load' });
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [url], 'the page fetches nothing but itself');

      // The page is read in the page: the test's own code has no DOM types.
      const read = <T>(expression: string): Promise<T> => tab.evaluate<T>(expression);
      // Every figure shown is the JSON's, by its field name.
      const figures = await read<[string, string, string][]>(`[...document.querySelectorAll('[data-figure]')].map((n) => [n.dataset.figure, n.dataset.value, (n.querySelector('b')?.textContent ?? '').trim()])`);
      const expected: Record<string, number | null> = {
        'kiln.sizeBytes': analysis.kiln.sizeBytes,
        'kiln.userSizeBytes': analysis.kiln.userSizeBytes,
        'kiln.reclaimableBytes': analysis.kiln.reclaimableBytes,
        'kiln.efficiencyScore': analysis.kiln.efficiencyScore,
        'image.sizeBytes': analysis.image.sizeBytes,
        'image.inefficientBytes': analysis.image.inefficientBytes,
        'image.efficiencyScore': analysis.image.efficiencyScore,
      };
      assert.deepEqual(Object.fromEntries(figures.map(([field, value]) => [field, value === 'null' ? null : Number(value)])), expected);
      for (const [field, , shown] of figures) assert.ok(shown !== '', `${field} shows nothing`);
      assert.equal(analysis.kiln.reclaimableBytes, 120_000 + 40 * 1024);
      const embedded = JSON.parse((await tab.textContent('#analysis')) ?? '{}') as Analysis;
      assert.deepEqual(embedded.image, { sizeBytes: analysis.image.sizeBytes, inefficientBytes: analysis.image.inefficientBytes, efficiencyScore: analysis.image.efficiencyScore });
      assert.deepEqual(embedded.kiln.findings, analysis.kiln.findings);

      // The layer bars, with their sizes and waste; the findings with their lines and bytes.
      const rows = await read<number[][]>(`[...document.querySelectorAll('tr.layer')].map((n) => [...n.querySelectorAll('td[data-value]')].map((td) => Number(td.dataset.value)))`);
      assert.deepEqual(rows, analysis.kiln.layers.map((l) => [l.sizeBytes, l.reclaimableBytes]));
      const findings = await read<[string, number, number][]>(`[...document.querySelectorAll('.finding')].map((n) => [n.dataset.rule, Number(n.dataset.bytes), Number(n.dataset.line)])`);
      assert.deepEqual(findings, analysis.kiln.findings.map((f) => [f.rule, f.bytes, f.line]));
      assert.deepEqual(findings.map(([, , line]) => line).sort(), [2, 4]);

      // The treemap is drawn: one rectangle per file of the final tree (as the page cut it), coloured by
      // layer, inside the drawing; the largest file's rectangle is the largest.
      const map = await read<{ width: number; height: number; rects: { layer: number; area: number; fill: string; title: string }[] }>(`(() => {
        const svg = document.querySelector('svg.treemap');
        const box = svg.getBoundingClientRect();
        const rects = [...svg.querySelectorAll('rect.file')].map((r) => ({ layer: Number(r.dataset.layer), area: Number(r.getAttribute('width')) * Number(r.getAttribute('height')), fill: getComputedStyle(r).fill, title: r.querySelector('title')?.textContent ?? '' }));
        return { width: box.width, height: box.height, rects };
      })()`);
      assert.ok(map.width > 300 && map.height > 150, `the treemap is ${map.width}x${map.height}`);
      assert.ok(map.rects.length >= 3);
      const biggest = map.rects.reduce((a, b) => (b.area > a.area ? b : a));
      assert.match(biggest.title, /^\/bin\/busybox/);
      const app = map.rects.find((r) => r.title.startsWith('/app/app.bin'));
      assert.equal(app?.layer, 2, 'the surviving copy of app.bin is layer 2’s');
      assert.notEqual(app?.fill, biggest.fill, 'layers have their own colours');

      // Hovering a layer's row picks out its rectangles.
      await tab.hover('tr.layer[data-layer="2"]');
      const lit = await read<string[]>(`[...document.querySelectorAll('svg.treemap rect.file.on')].map((n) => n.dataset.layer)`);
      assert.ok(lit.length > 0 && lit.every((layer) => layer === '2'));
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
