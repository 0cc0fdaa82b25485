import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BuildPlan, type PlanOptions, planBuild } from '../../src/builder/plan.js';
import { parseInstructions } from '../../src/dockerfile/instructions.js';
import { isKilnError } from '../../src/errors.js';
import type { ImageConfig } from '../../src/oci/types.js';
import { MAX_CONFIG_BYTES } from '../../src/oci/limits.js';

const options: PlanOptions = { buildArgs: new Map(), platform: { os: 'linux', architecture: 'amd64' }, labels: {} };
const base: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH=/bin'], Cmd: ['sh'] } };

function plan(text: string, planOptions: PlanOptions = options): BuildPlan {
  return planBuild(parseInstructions(text), planOptions, () => base);
}

/** The error a plan of `text` fails with: its message, which must name the Dockerfile and a line. */
function planError(text: string, planOptions: PlanOptions = options): string {
  try {
    plan(text, planOptions);
  } catch (err) {
    assert.ok(isKilnError(err, 'INVALID_INPUT'), String(err));
    return err.message;
  }
  assert.fail('the plan was made');
}

describe('build plan: config-only instructions', () => {
  it('commit with the next instruction that changes files, or at the end of the stage, each keeping its history line', () => {
    const { stages } = plan('FROM base\nLABEL a=1\nENV X=2\nRUN true\nLABEL b=3\nUSER nobody\n');
    const steps = stages[0]?.steps ?? [];
    assert.deepEqual(
      steps.map((s) => [s.createdBy, s.preceding.map((p) => p.createdBy)]),
      [
        ['RUN /bin/sh -c true', ['LABEL a=1', 'ENV X=2']],
        ['USER nobody', ['LABEL b=3']],
      ],
    );
    assert.deepEqual(steps[0]?.preceding.map((p) => p.name), ['[stage-0 1/5] LABEL a=1', '[stage-0 2/5] ENV X=2']);
    assert.deepEqual(steps[0]?.config, { Env: ['PATH=/bin', 'X=2'], Cmd: ['sh'], Labels: { a: '1' } });
    assert.deepEqual(steps[1]?.config, { Env: ['PATH=/bin', 'X=2'], Cmd: ['sh'], Labels: { a: '1', b: '3' }, User: 'nobody' });
    // A changed config-only instruction changes the key of the step it is committed with.
    const other = plan('FROM base\nLABEL a=other\nENV X=2\nRUN true\nLABEL b=3\nUSER nobody\n').stages[0]?.steps ?? [];
    assert.notEqual(other[0]?.cacheDescriptor, steps[0]?.cacheDescriptor);
  });

  it('copies a source named again once, at its last naming (which decides the result), and keeps every naming in the history line', () => {
    const [step] = plan(`FROM base\nCOPY dir a.txt dir${' /'.repeat(20_000)} /out/\n`).stages[0]?.steps ?? [];
    const operation = step?.operation;
    assert.deepEqual(operation?.kind === 'copy' ? operation.sources : undefined, ['a.txt', 'dir', '/']);
    assert.equal(step?.createdBy, `COPY dir a.txt dir${' /'.repeat(20_000)} /out/`);
  });

  it('keeps the config as the instructions leave it: order of fields, replaced values, ENTRYPOINT clearing CMD, --label last', () => {
    const text = 'FROM base\nENV X=1 Y=2\nEXPOSE 80 81/udp\nENV X=3\nLABEL k=v\nVOLUME /data\nENTRYPOINT ["run"]\nONBUILD RUN true\nWORKDIR /app\nLABEL k=w\n';
    const steps = plan(text, { ...options, labels: { extra: 'yes' } }).stages[0]?.steps ?? [];
    // --label goes into the config with no history line of its own, as BuildKit does.
    assert.deepEqual(steps.map((s) => s.createdBy), ['WORKDIR /app', 'LABEL k=w']);
    const config = steps.at(-1)?.config;
    assert.deepEqual(Object.keys(config ?? {}), ['Env', 'Cmd', 'ExposedPorts', 'Labels', 'Volumes', 'Entrypoint', 'OnBuild', 'WorkingDir']);
    assert.deepEqual(config, {
      Env: ['PATH=/bin', 'X=3', 'Y=2'],
      Cmd: null,
      ExposedPorts: { '80/tcp': {}, '81/udp': {} },
      Labels: { k: 'w', extra: 'yes' },
      Volumes: { '/data': {} },
      Entrypoint: ['run'],
      OnBuild: ['RUN true'],
      WorkingDir: '/app',
    });
  });

  it('plans 20,000 LABELs and 20,000 ENVs in time linear in their number (20,000 LABELs once took minutes)', () => {
    const lines = ['FROM base'];
    for (let i = 0; i < 20_000; i++) lines.push(`LABEL label${i}=value${i}`, `ENV VAR${i}=value${i}`);
    lines.push('RUN true');
    const started = Date.now();
    const steps = plan(lines.join('\n')).stages[0]?.steps ?? [];
    const seconds = (Date.now() - started) / 1000;
    assert.equal(steps.length, 1);
    assert.equal(steps[0]?.preceding.length, 40_000);
    assert.equal(Object.keys(steps[0]?.config.Labels ?? {}).length, 20_000);
    assert.equal(steps[0]?.config.Env?.length, 20_001);
    assert.ok(seconds < 10, `planning took ${seconds} s`);
  });
});

describe('build plan: what the store would refuse, or the OS could not take', () => {
  it('refuses an instruction that makes the image config bigger than the store reads, naming its line', () => {
    const value = 'x'.repeat(1_000_000);
    // Each ENV adds its value twice: to the environment and to the history.
    const lines = ['FROM base', ...Array.from({ length: 6 }, (_v, i) => `ENV BIG${i}=${value}`), 'RUN true'];
    const message = planError(lines.join('\n'));
    assert.match(message, /^Dockerfile:6:1: the image config would be more than 8388608 bytes \(8 MiB\), the most kiln's store reads/);
    assert.ok(message.length < 1200, `a message of ${message.length} characters`);
    assert.equal(MAX_CONFIG_BYTES, 8 << 20);
    // Labels and build arguments count too (RUN's history line holds its arguments).
    assert.match(planError(['FROM base', ...Array.from({ length: 9 }, (_v, i) => `LABEL l${i}=${value}`)].join('\n')), /^Dockerfile:6:1: the image config would be more/);
    const args = Array.from({ length: 5 }, (_v, i) => `ARG A${i}=${value}`);
    assert.match(planError(['FROM base', ...args, 'RUN true'].join('\n')), /^Dockerfile:7:1: the image config would be more/);
  });

  it('refuses an ENV name that quotes or variables make empty, naming the line (an image config cannot carry it)', () => {
    for (const instruction of ['ENV ""=x', 'ENV "" x', 'ENV $UNSET=1', 'ENV a=1 ${UNSET}=2']) {
      assert.match(planError(`FROM base\n${instruction}\n`), /^Dockerfile:2:1: ENV name .* is empty once its quotes and variables are expanded/, instruction);
    }
    assert.deepEqual(plan('FROM base\nENV "a"=1\n').stages[0]?.steps[0]?.config.Env?.includes('a=1'), true);
  });

  it('refuses a NUL byte in whatever reaches the OS as a path, user, argument or environment variable, naming the line', () => {
    const cases: [string, RegExp][] = [
      ['WORKDIR /a\0b', /the WORKDIR path contains a NUL byte/],
      ['USER a\0b', /the USER name contains a NUL byte/],
      ['ENV A=b\0c', /an ENV name or value contains a NUL byte/],
      ['ENV A\0=b', /an ENV name or value contains a NUL byte/],
      ['ARG A=\0\nRUN true', /the environment of RUN \(its ENV and ARG values\) contains a NUL byte/],
      ['RUN ["/bin/sh", "-c", "echo\\u0000hi"]', /the RUN command contains a NUL byte/],
      ['RUN echo \0', /the RUN command contains a NUL byte/],
      ['RUN --mount=type=cache,target=/a\0 true', /a --mount target contains a NUL byte/],
      ['COPY a /b\0/', /the COPY destination contains a NUL byte/],
      ['ADD a /b\0', /the ADD destination contains a NUL byte/],
      ['COPY a\0 /b', /a COPY source contains a NUL byte/],
      ['COPY --chown=a\0 a /b', /the COPY --chown contains a NUL byte/],
      ['CMD ["a\\u0000"]', /the CMD command contains a NUL byte/],
      ['ENTRYPOINT a\0', /the ENTRYPOINT command contains a NUL byte/],
      ['HEALTHCHECK CMD a\0', /the HEALTHCHECK command contains a NUL byte/],
      ['VOLUME /a\0', /a VOLUME path contains a NUL byte/],
    ];
    for (const [instruction, expected] of cases) {
      const message = planError(`FROM base\n${instruction}\n`);
      assert.match(message, /^Dockerfile:[23]:\d+: /, instruction);
      assert.match(message, expected, instruction);
      // The line is shown with the NUL made visible, never raw.
      assert.equal(message.includes('\0'), false, instruction);
    }
    const fromBuildArg = planError('FROM base\nARG A\nRUN true\n', { ...options, buildArgs: new Map([['A', 'a\0']]) });
    assert.match(fromBuildArg, /^Dockerfile:3:1: the environment of RUN/);
    // A label never reaches the OS.
    assert.equal(plan('FROM base\nLABEL a=b\0c\n').stages[0]?.steps[0]?.config.Labels?.a, 'b\0c');
  });

  it('refuses a path no filesystem takes: a name over 255 bytes or a path over 4095, naming the line', () => {
    const cases: [string, RegExp][] = [
      [`WORKDIR /${'a'.repeat(256)}`, /^Dockerfile:2:1: the WORKDIR path has a name of 256 bytes, more than the 255 a file name can have/],
      [`COPY a /${'ab/'.repeat(1400)}`, /^Dockerfile:2:1: the COPY destination is 4200 bytes long, more than the 4095 a path can have/],
      [`RUN --mount=type=tmpfs,target=/${'é'.repeat(128)} true`, /^Dockerfile:2:\d+: a --mount target has a name of 256 bytes/],
      [`VOLUME /${'v'.repeat(300)}`, /a VOLUME path has a name of 300 bytes/],
      [`COPY <<${'N'.repeat(256)} /dir/\nbody\n${'N'.repeat(256)}`, /a COPY heredoc's file name has a name of 256 bytes/],
    ];
    for (const [instruction, expected] of cases) assert.match(planError(`FROM base\n${instruction}\n`), expected, instruction.slice(0, 40));
    assert.equal(plan(`FROM base\nWORKDIR /${'a'.repeat(255)}\n`).stages[0]?.steps[0]?.config.WorkingDir, `/${'a'.repeat(255)}`);
  });

  it('refuses --mount IDs no uid_t holds and modes of more than 12 bits (they were internal errors, found by the build fuzz)', () => {
    const cases: [string, RegExp][] = [
      ['uid=99999999999', /^Dockerfile:2:38: invalid uid "99999999999" in --mount: it is at most 4294967294/],
      ['gid=4294967295', /invalid gid "4294967295" in --mount: it is at most 4294967294/],
      ['mode=77777777777', /invalid mode "77777777777" in --mount: it is at most 7777/],
    ];
    for (const [option, expected] of cases) assert.match(planError(`FROM base\nRUN --mount=type=cache,target=/c,${option} true\n`), expected, option);
    const mount = plan('FROM base\nRUN --mount=type=cache,target=/c,mode=7777,uid=4294967294,gid=0 true\n').stages[0]?.steps[0]?.operation;
    assert.deepEqual(mount?.kind === 'exec' ? mount.mounts.map((m) => [m.mode, m.uid, m.gid]) : [], [[0o7777, 4294967294, 0]]);
  });

  it('shows a long or hostile line cut short and with its control characters visible', () => {
    const message = planError(`FROM base\nENV A=\${B:?${'y'.repeat(5000)}\x1b[2J}\n`);
    assert.ok(message.length < 1200, `a message of ${message.length} characters`);
    assert.equal(message.includes('\x1b'), false);
    assert.match(message, /␛\[2J/);
  });
});
