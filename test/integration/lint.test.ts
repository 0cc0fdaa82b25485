import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RULES } from '../../src/analyze/lint/rules.js';
import { Engine } from '../../src/engine/engine.js';
import { lintImage } from '../../src/engine/lint.js';
import { BUILD_CASES, writeContext } from '../helpers/build-cases.js';
import { fixture } from '../helpers/fixtures.js';
import { type RunResult, newKiln, ok, runKiln } from '../helpers/kiln.js';
import { isRoot, repoRoot, tempDir } from '../helpers/paths.js';
import { type Registry, registryUnavailable, startRegistry } from '../helpers/registry.js';

const noShellcheck = ((): string | false => {
  try {
    execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'shellcheck is not installed (scripts/setup.sh installs Debian shellcheck)';
  }
})();
const needsRoot = isRoot ? false : 'the image-aware rules are tested on images kiln builds, which needs root';

interface Store {
  readonly root: string;
  readonly kiln: (args: readonly string[], input?: string, env?: NodeJS.ProcessEnv) => Promise<RunResult>;
  readonly remove: () => Promise<void>;
}

/** A store for a whole suite, made in its hook (tempDir's cleanup belongs to a test, not to a hook). */
async function suiteStore(): Promise<Store> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-root-'));
  return { root, kiln: (args, input, env) => runKiln(root, args, input, env), remove: () => rm(root, { recursive: true, force: true }) };
}

/** `line:code` of `kiln lint --format json` output. */
function codes(stdout: string): string[] {
  return (JSON.parse(stdout) as { line: number; code: string }[]).map((f) => `${f.line}:${f.code}`);
}

describe('kiln lint: the command', () => {
  it('--list prints every rule with its level and description, and the ShellCheck line', async () => {
    const { kiln } = await newKiln();
    const listed = (await ok(kiln(['lint', '--list']))).stdout.trimEnd().split('\n');
    assert.deepEqual(listed.slice(0, RULES.length).map((line) => line.split(/\s+/, 2).join(' ')), RULES.map((r) => `${r.code} ${r.level}`));
    assert.match(listed.at(-1) ?? '', /^SCxxxx .*ShellCheck/);
  });

  it('reads the Dockerfile from stdin, prints json, exits 1 at the threshold and 0 below it', async () => {
    const { kiln } = await newKiln();
    const source = 'FROM debian\nRUN apt-get install -y --no-install-recommends curl=7.88.1\n';
    const found = await kiln(['lint', '--format', 'json', '-'], source);
    assert.equal(found.code, 1);
    assert.deepEqual(codes(found.stdout), ['1:DL3006']);
    assert.equal((await kiln(['lint', '--failure-threshold', 'error', '-'], source)).code, 0);
    assert.equal((await kiln(['lint', '--ignore', 'DL3006', '-'], source)).stdout, '');
    assert.deepEqual(codes((await kiln(['lint', '--trusted-registry', 'my.registry:5000', '--format', 'json', '-'], source)).stdout), ['1:DL3006', '1:DL3026']);
    // Without a store, lint runs without the image-aware rules and makes none.
    const nowhere = join(await tempDir(), 'no-store');
    assert.deepEqual(codes((await runKiln(nowhere, ['lint', '--format', 'json', '-'], source)).stdout), ['1:DL3006']);
    assert.equal(existsSync(nowhere), false);
  });

  it('reports a Dockerfile that does not parse as DL1000, and says what is wrong with the command line', async () => {
    const { kiln } = await newKiln();
    const broken = await kiln(['lint', '--format', 'json', '-'], 'FROM a:1\nRUN <<EOF\necho\n');
    assert.equal(broken.code, 1);
    assert.deepEqual(codes(broken.stdout), ['2:DL1000']);
    const missing = await kiln(['lint', join(await tempDir(), 'nothing')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: .*no such file or directory\n$/);
    const format = await kiln(['lint', '--format', 'yaml', '-'], 'FROM a:1\n');
    assert.equal(format.code, 125);
    assert.match(format.stderr, /invalid --format "yaml": use tty, json, sarif, checkstyle, gitlab, github/);
  });

  it("finds .hadolint.yaml as hadolint does ($HOME's here) or takes -c, and says which line of it is wrong", async () => {
    const { kiln } = await newKiln();
    const home = await tempDir();
    await writeFile(join(home, '.hadolint.yaml'), 'ignored:\n  - DL3006\nfailure-threshold: error\n');
    const source = 'FROM debian\nWORKDIR app\n';
    const withHome = await kiln(['lint', '--format', 'json', '-'], source, { HOME: home, XDG_CONFIG_HOME: join(home, 'none') });
    assert.deepEqual(codes(withHome.stdout), ['2:DL3000', '2:WorkdirRelativePath']);
    assert.equal(withHome.code, 1);
    const config = join(home, 'strict.yaml');
    await writeFile(config, 'override:\n  info:\n    - DL3000\nfailure-threshold: warning\nignored: [WorkdirRelativePath, DL3006]\n');
    const explicit = await kiln(['lint', '-c', config, '--format', 'json', '-'], source, { HOME: home });
    assert.deepEqual((JSON.parse(explicit.stdout) as { code: string; level: string }[]).map((f) => `${f.code}:${f.level}`), ['DL3000:info']);
    assert.equal(explicit.code, 0);
    await writeFile(config, 'ignored:\n  - DL3006\n   - DL3000\n');
    const bad = await kiln(['lint', '-c', config, '-'], source);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /strict\.yaml:3: unexpected indentation/);
  });
});

describe('kiln lint: ShellCheck on RUN scripts, as hadolint runs it', { skip: noShellcheck }, () => {
  it('checks heredoc bodies, on their own lines', async () => {
    const { kiln } = await newKiln();
    const source = 'FROM busybox:1.36\nRUN <<EOF\nset -e\nfor f in $(ls); do echo "$f"; done\nEOF\n';
    assert.deepEqual(codes((await kiln(['lint', '--format', 'json', '-'], source)).stdout), ['4:SC2045']);
  });

  it('gives ShellCheck the ARG and ENV names in scope, and leaves out SC2187 and SC1090', async () => {
    const { kiln } = await newKiln();
    const lint = async (source: string) => codes((await kiln(['lint', '--format', 'json', '-'], source)).stdout);
    assert.deepEqual(await lint('FROM busybox:1.36\nRUN echo "$name"\n'), ['2:SC2154']);
    assert.deepEqual(await lint('FROM busybox:1.36\nARG name\nRUN echo "$name"\n'), []);
    assert.deepEqual(await lint('FROM busybox:1.36\nENV name=x\nRUN echo "$name"\n'), []);
    const excluded = await lint('FROM busybox:1.36\nSHELL ["/bin/ash", "-c"]\nARG FILE\nRUN . "$FILE" && echo "$HOME"\n');
    assert.deepEqual(excluded.filter((c) => /SC(2187|1090)$/.test(c)), []);
  });
});

// Needs no shellcheck: it hides it.
describe('kiln lint without shellcheck', () => {
  it('says once that the SC rules were skipped, and still lints', async () => {
    const { kiln } = await newKiln();
    // A PATH with node alone on it (bin/kiln runs the node on the PATH).
    const path = await tempDir();
    await symlink(process.execPath, join(path, 'node'));
    const result = await kiln(['lint', '--format', 'json', '-'], 'FROM debian\nRUN echo $a\nRUN echo $b\n', { PATH: path });
    assert.deepEqual(codes(result.stdout), ['1:DL3006', '3:DL3059']);
    assert.equal(result.stderr.match(/shellcheck is not installed, so the ShellCheck \(SC\) rules were skipped/g)?.length, 1);
  });
});

describe('kiln lint: the rules that read the base image in the store', { skip: needsRoot }, () => {
  let store: Store;
  const lint = async (source: string, args: readonly string[] = []) => (await store.kiln(['lint', '--format', 'json', ...args, '-'], source)).stdout;
  const build = async (tag: string, dockerfile: string) => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Dockerfile'), dockerfile);
    await ok(store.kiln(['build', '-q', '--network', 'none', '-t', tag, dir]));
  };
  before(async () => {
    store = await suiteStore();
    await ok(store.kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:1.36']));
  });
  after(() => store?.remove());

  it('KL001: the final stage runs as root while the image has a non-root user', async () => {
    await build('appbase:1', 'FROM busybox:1.36\nRUN echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd\n');
    const found = JSON.parse(await lint('FROM appbase:1\nCMD ["sh"]\n')) as { line: number; code: string; message: string }[];
    assert.deepEqual(found.map((f) => `${f.line}:${f.code}`), ['1:KL001']);
    assert.match(found[0]?.message ?? '', /its base image has the user app: add `USER 1000`/);
    assert.deepEqual(codes(await lint('FROM appbase:1\nUSER 1000\nCMD ["sh"]\n')), []);
    assert.deepEqual(codes(await lint('FROM busybox:1.36\nCMD ["sh"]\n')), []);
  });

  it('KL002: a base far bigger than its slim variant in the store', async () => {
    await build('fat:1', 'FROM busybox:1.36\nRUN head -c 4000000 /dev/urandom > /blob\n');
    await ok(store.kiln(['tag', 'busybox:1.36', 'fat:1-slim']));
    const found = JSON.parse(await lint('FROM fat:1\nCMD ["sh"]\n')) as { line: number; code: string; message: string }[];
    assert.deepEqual(found.map((f) => `${f.line}:${f.code}`), ['1:KL002']);
    assert.match(found[0]?.message ?? '', /^fat:1 is [\d.]+MB; fat:1-slim, in the store, is [\d.]+MB/);
    assert.deepEqual(codes(await lint('FROM fat:1-slim\nCMD ["sh"]\n')), []);
  });

  it('KL007: a single-stage build on an image that holds a compiler', async () => {
    await build('toolbox:1', "FROM busybox:1.36\nRUN mkdir -p /var/lib/dpkg && printf 'Package: gcc-12\\nStatus: install ok installed\\n\\nPackage: libc6\\nStatus: install ok installed\\n' > /var/lib/dpkg/status\n");
    const found = JSON.parse(await lint('FROM toolbox:1\nCMD ["sh"]\n')) as { line: number; code: string; message: string }[];
    assert.deepEqual(found.map((f) => `${f.line}:${f.code}`), ['1:KL007']);
    assert.match(found[0]?.message ?? '', /toolbox:1 holds gcc-12/);
    assert.deepEqual(codes(await lint('FROM toolbox:1 AS build\nRUN true\nFROM busybox:1.36\nCOPY --from=build /etc/hostname /x\nCMD ["sh"]\n')), []);
  });

  it("BuildKit's checks with the build's view: the base's ENV is defined, its platform compared", async () => {
    const undefinedVar = JSON.parse(await lint('FROM busybox:1.36\nENV P=$PATH:/x Q=$NOPE\nCMD ["sh"]\n')) as { line: number; code: string; message: string }[];
    assert.deepEqual(undefinedVar.map((f) => `${f.line}:${f.code}:${f.message}`), ["2:UndefinedVar:Usage of undefined variable '$NOPE'"]);
    await ok(store.kiln(['import', '--platform', 'linux/arm64', await fixture('busybox-rootfs.tar'), 'armbox:1']));
    assert.deepEqual(codes(await lint('FROM armbox:1\nCMD ["sh"]\n')), ['1:InvalidBaseImagePlatform']);
  });

  describe('KL003: a mutable tag where the registry digest is known', { skip: registryUnavailable() ?? false }, () => {
    let registry: Registry;
    before(async () => {
      registry = await startRegistry();
    });
    after(() => registry?.stop());

    it('after a push, and after lint --pull in a store that lacked the image', async () => {
      const name = `${registry.host}/lint/busybox:1.36`;
      await ok(store.kiln(['tag', 'busybox:1.36', name]));
      await ok(store.kiln(['push', '-q', name]));
      const found = JSON.parse(await lint(`FROM ${name}\nCMD ["sh"]\n`)) as { line: number; code: string; message: string }[];
      assert.deepEqual(found.map((f) => `${f.line}:${f.code}`), ['1:KL003']);
      const pinned = /pin it as FROM (\S+@sha256:[a-f0-9]{64})$/.exec(found[0]?.message ?? '')?.[1];
      assert.ok(pinned?.startsWith(`${name}@`), found[0]?.message);
      assert.deepEqual(codes(await lint(`FROM ${pinned ?? ''}\nCMD ["sh"]\n`)), []);

      const fresh = await newKiln();
      assert.deepEqual(codes((await fresh.kiln(['lint', '--format', 'json', '-'], `FROM ${name}\nCMD ["sh"]\n`)).stdout), []);
      const pulled = await fresh.kiln(['lint', '--pull', '--format', 'json', '-'], `FROM ${name}\nCMD ["sh"]\n`);
      assert.deepEqual(codes(pulled.stdout), ['1:KL003']);
    });
  });
});

describe('kiln build --check and the build checks of kiln build', { skip: needsRoot }, () => {
  let store: Store;
  before(async () => {
    store = await suiteStore();
    await ok(store.kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox:latest']));
    await ok(store.kiln(['tag', 'busybox:latest', 'busybox:base']));
  });
  after(() => store?.remove());

  it('finds nothing in the example project, and builds nothing', async () => {
    const before = (await ok(store.kiln(['images', '-aq']))).stdout;
    const checked = await store.kiln(['build', '--check', '-t', 'example:1', join(repoRoot, 'example/hello')]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(checked.stdout, '');
    assert.equal((await ok(store.kiln(['images', '-aq']))).stdout, before);
  });

  it('exits 1 with the findings of a Dockerfile that breaks the rules, with its build args resolved', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Dockerfile'), 'ARG BASE\nFROM $BASE\nRUN cd /tmp\n');
    const checked = await store.kiln(['build', '--check', '--build-arg', 'BASE=busybox:latest', dir]);
    assert.equal(checked.code, 1);
    const expected = ['2:1 warning InvalidDefaultArgInFrom: Default value for ARG $BASE results in empty or invalid base image name', '3:1 warning DL3003: Use WORKDIR to switch to a directory.', "3:5 warning SC2164: Use 'cd ... || exit' or 'cd ... || return' in case cd fails."];
    // Without shellcheck (the suite runs on; its own tests skip) the SC finding is not there to see.
    assert.deepEqual(checked.stdout.trimEnd().split('\n').map((l) => l.replace(/^.*Dockerfile:/, '')), noShellcheck ? expected.filter((l) => !l.includes(' SC')) : expected);
  });

  it("prints BuildKit's check warnings at the start of a build, and # check=error=true stops it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Dockerfile'), 'FROM busybox:latest as b\nCMD echo hi\n');
    const built = await ok(store.kiln(['build', '--progress', 'plain', '-t', 'warned:1', dir]));
    const warnings = built.stderr.slice(0, built.stderr.indexOf('#1 '));
    assert.equal(warnings, " 2 warnings found:\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)\n");
    await writeFile(join(dir, 'Dockerfile'), '# check=error=true\nFROM busybox:latest as b\nCMD echo hi\n');
    const stopped = await store.kiln(['build', '-q', '-t', 'stopped:1', dir]);
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, / - FromAsCasing: .*\(line 2\)\n/);
    assert.match(stopped.stderr, /Error: the build checks failed \(the Dockerfile says # check=error=true\)/);
    assert.equal((await store.kiln(['inspect', 'stopped:1'])).code, 1);
  });

  // What `kiln build --check` reports for each Dockerfile of the differential build corpus (test/helpers/
  // build-cases.ts), run in this process for speed: an untagged FROM is DL3006 wherever it is written.
  // Every finding here was read and is right; a Dockerfile not in the table has only its `FROM busybox`'s.
  const EXPECTED: Readonly<Record<string, readonly string[]>> = {
    'env-and-workdir': ['1:DL3006', '4:DL3000', '6:DL3025'],
    'copy-chown-names': ['1:DL3006', '1:KL001'],
    'add-plain-file': ['1:DL3006', '2:DL3020', '3:DL3020'],
    'multi-stage-by-name': ['1:DL3006', '3:DL3006'],
    'multi-stage-by-index': ['1:DL3006', '3:DL3006'],
    'copy-from-image': ['1:DL3006', '2:DL3006', '3:DL3022'],
    'user-by-name': ['1:DL3006', '3:DL3066'],
    'arg-before-from': [],
    labels: ['1:DL3006', '2:DL3048'],
    'cmd-and-entrypoint-shell-form': ['1:DL3006', '2:DL3025'],
    'shell-instruction': ['1:DL3006', '4:DL3025', '5:DL3025'],
    maintainer: ['1:DL3006', '2:DL4000'],
    'escape-directive': ['2:DL3006'],
    'comments-and-continuations': ['1:DL3006', '3:NoEmptyContinuation'],
    'from-scratch': [],
    'copy-from-stage-owners-and-modes': ['1:DL3006', '3:DL3006'],
    'heredoc-run': ['1:DL3006', '6:DL3059'],
    'run-mount-bind': ['1:DL3006', '3:DL3006'],
    'workdir-owned-by-user': ['1:DL3006', '3:DL3066'],
    'workdir-owned-by-user-and-group': ['1:DL3006', '3:DL3066'],
    'workdir-relative-chain': ['1:DL3006', '2:DL3000', '2:WorkdirRelativePath', '3:DL3000', '3:WorkdirRelativePath'],
    'copy-chown-user-name-only': ['1:DL3006', '1:KL001'],
    'copy-chown-uid-and-group-name': ['1:DL3006', '1:KL001'],
    'copy-chown-name-and-gid': ['1:DL3006', '1:KL001'],
    'useradd-user-workdir-copy': ['1:DL3006', '3:DL3066'],
    'env-legacy-form': ['1:DL3006', '2:LegacyKeyValueFormat'],
    'arg-global-redeclared': ['2:DL3006'],
    'arg-global-not-redeclared': ['2:DL3006'],
    'arg-global-overridden': ['2:DL3006'],
    'arg-in-from-tag': [],
    'target-arch-global': ['2:DL3006'],
    'copy-from-image-directory': ['1:DL3006', '2:DL3022'],
    'copy-from-stage-with-chown': ['1:DL3006', '3:DL3006'],
    'copy-from-stage-after-run-etc': ['1:DL3006', '3:DL3006'],
    'multi-stage-three': ['1:DL3006', '3:DL3006', '5:DL3006'],
    'stage-name-any-case': ['1:DL3006', '1:StageNameCasing'],
    'add-gzip-not-tar': ['1:DL3006', '2:DL3020'],
    'shell-with-flags': ['1:DL3006', '5:DL3025'],
    'volume-then-run-writes-there': ['1:DL3006', '4:DL3022'],
    'label-override-and-env': ['1:DL3006', '4:DL3048'],
    'escape-backtick-paths': ['2:DL3006', '5:SC1001'],
    'user-back-to-root': ['1:DL3006', '3:DL3002', '3:DL3066'],
    'scratch-workdir-copy': [],
    'run-symlink-replaces-dir': ['1:DL3006', '2:SC2114'],
    'copy-to-workdir-relative': ['1:DL3006', '5:DL3020'],
    'onbuild-base-from-suite': [],
  };

  it('finds on the differential build corpus exactly the findings listed, no others', async () => {
    const engine = await Engine.open(store.root);
    try {
      const differences: string[] = [];
      for (const buildCase of BUILD_CASES) {
        const context = await writeContext(buildCase);
        const args = buildCase.args ?? [];
        const buildArgs = new Map(args.flatMap((arg, i) => (args[i - 1] === '--build-arg' ? [arg.split('=') as [string, string]] : [])));
        const target = args[args.indexOf('--target') + 1];
        const result = await lintImage(engine, { dockerfile: { path: join(context, 'Dockerfile') }, contextDir: context, buildArgs, ...(args.includes('--target') && target ? { target } : {}), notice: () => undefined });
        const found = result.findings.map((f) => `${f.line}:${f.code}`);
        const expected = (EXPECTED[buildCase.name] ?? ['1:DL3006']).filter((f) => !(noShellcheck && /:SC\d+$/.test(f)));
        if (JSON.stringify(found) !== JSON.stringify(expected)) differences.push(`${buildCase.name}: ${found.join(' ')} (expected ${expected.join(' ')})`);
      }
      assert.deepEqual(differences, []);
    } finally {
      engine.close();
    }
  });
});
