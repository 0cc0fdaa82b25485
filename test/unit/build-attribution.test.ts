import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildRecord, historyLocations, historyMakers, sameBuildRecord, targetBase } from '../../src/builder/attribution.js';
import { planBuild } from '../../src/builder/plan.js';
import { parseInstructions } from '../../src/dockerfile/instructions.js';
import type { Digest } from '../../src/oci/digest.js';
import type { ImageConfig } from '../../src/oci/types.js';

const BASE: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:a' as Digest] }, history: [{ created_by: 'ADD x in /' }], config: { OnBuild: ['RUN echo trigger'] } };

function plan(text: string) {
  const dockerfile = parseInstructions(text, '/ctx/Dockerfile');
  return { dockerfile, plan: planBuild(dockerfile, { buildArgs: new Map(), platform: { os: 'linux', architecture: 'amd64' }, labels: {} }, () => BASE) };
}

describe('build: which Dockerfile line made each history entry', () => {
  it('pairs the steps of the target and the stages below it with the history, from the end', () => {
    const { dockerfile, plan: built } = plan('FROM busybox AS base\nRUN make\n\nFROM base\nENV A=1\nCOPY a \\\n  /a\nFROM scratch AS other\nCOPY b /b\n');
    assert.equal(targetBase(built), undefined, 'the last stage is from scratch');
    const { plan: target } = plan('FROM busybox AS base\nRUN make\n\nFROM base\nENV A=1\nCOPY a \\\n  /a\n');
    assert.equal(targetBase(target), 'busybox');
    // The base's ONBUILD trigger runs first, from no line of this Dockerfile; a squash adds a merge entry.
    const history = [...(BASE.history ?? []), ...historyMakers(target).map((s) => ({ created_by: s.createdBy })), { created_by: '', comment: 'merge' }];
    const lines = [...historyLocations(target, history)].sort(([a], [b]) => a - b).map(([index, location]) => [index, location.startLine, location.endLine]);
    assert.deepEqual(lines, [[1, 0, 0], [2, 2, 2], [3, 5, 5], [4, 6, 7]]);
    const record = buildRecord(target, { id: 'sha256:img' as Digest, config: { ...BASE, history } }, { id: 'sha256:base' as Digest, config: BASE }, { file: dockerfile.file, stages: 2 });
    assert.deepEqual(record, {
      imageId: 'sha256:img',
      dockerfile: '/ctx/Dockerfile',
      baseId: 'sha256:base',
      baseLayers: 1,
      stages: 2,
      lines: [
        { position: 2, line: 2, endLine: 2, instruction: 'RUN make' },
        { position: 3, line: 5, endLine: 5, instruction: 'ENV A=1' },
        { position: 4, line: 6, endLine: 7, instruction: 'COPY a   /a' },
      ],
    });
    // A rebuild writes the record again only when it says something else.
    assert.ok(sameBuildRecord(structuredClone(record), record));
    assert.ok(!sameBuildRecord(undefined, record));
    assert.ok(!sameBuildRecord({ ...record, stages: 3 }, record));
    assert.ok(!sameBuildRecord({ ...record, lines: record.lines.slice(1) }, record));
    assert.ok(!sameBuildRecord({ ...record, lines: record.lines.map((l, i) => (i === 2 ? { ...l, endLine: 8 } : l)) }, record));
  });
});
