// Times kiln's safe layer apply of one uncompressed layer tar into a new directory (bench/unpack.sh).
import { createReadStream } from 'node:fs';
import { applyLayer } from '../src/layer/apply.js';

const [layer, target, mode] = process.argv.slice(2);
if (!layer || !target) throw new Error('usage: apply-layer.js LAYER.tar TARGET [overlay|delete]');
const started = performance.now();
await applyLayer(target, createReadStream(layer, { highWaterMark: 1 << 20 }), { whiteouts: mode === 'overlay' ? 'overlay' : 'delete' });
console.log(((performance.now() - started) / 1000).toFixed(3));
