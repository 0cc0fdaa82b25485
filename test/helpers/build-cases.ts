/**
 * The Dockerfiles of the build suite. `buildkit: true` cases use only what BuildKit 0.8's built-in
 * Dockerfile frontend (Docker 20.10's, which the tests run) parses, and their results are compared with
 * BuildKit's; the others use syntax that frontend lacks (heredocs, --chmod, --link, RUN --mount,
 * COPY --exclude) and are checked by their own assertions.
 */
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tempDir } from './paths.js';

/** A context file: its content, with a mode, a symlink's target, or another name of a file (a hardlink). */
export type ContextFile = string | Buffer | { readonly content: string; readonly mode: number } | { readonly symlink: string } | { readonly hardlink: string };

export interface BuildCase {
  readonly name: string;
  readonly dockerfile: string;
  readonly files?: Readonly<Record<string, ContextFile>>;
  readonly args?: readonly string[];
  /** Compare with BuildKit (false: syntax BuildKit 0.8's frontend cannot parse; assertion tests cover it). */
  readonly buildkit: boolean;
  /** Paths (exact) whose difference from BuildKit 0.8 is expected, with the reason. */
  readonly knownDifferences?: Readonly<Record<string, string>>;
  /** Config fields (as the differential suite names them) whose difference from BuildKit 0.8 is expected, with the reason. */
  readonly knownConfigDifferences?: Readonly<Record<string, string>>;
}

/** A tiny ustar archive built by hand, so ADD's extraction is tested on bytes the test controls. */
function tarArchive(files: Readonly<Record<string, string>>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const header = Buffer.alloc(512);
    const body = Buffer.from(content);
    header.write(name, 0, 100);
    header.write('0000644\0', 100);
    header.write('0001750\0', 108); // uid 1000
    header.write('0001750\0', 116);
    header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write('14000000000\0', 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const common: Record<string, ContextFile> = {
  'a.txt': 'alpha\n',
  'b.txt': 'bravo\n',
  'notes.md': '# notes\n',
  'dir/one': '1\n',
  'dir/sub/two': '2\n',
  'dir/sub/readme.md': 'readme\n',
  'script.sh': { content: '#!/bin/sh\necho script\n', mode: 0o755 },
};

/** Why a RUN --mount target the image lacked differs: BuildKit 0.8 leaves the directory made for it. */
const MOUNT_STUBS = "BuildKit 0.8 leaves the directory made as a mount's target in the layer; later BuildKit removes such stubs after the step (executor's MountStubsCleaner), as kiln does";

/** Why `id` in RUN differs: BuildKit 0.8 sets no supplementary groups. */
const NO_SUPPLEMENTARY_GROUPS = 'BuildKit 0.8 gives RUN no supplementary groups, so `id` prints no groups=; BuildKit 0.11.4 (moby/buildkit#3651, and #2428 for root) adds them, as kiln and docker run do';
/** Why HEALTHCHECK's history line differs. */
const HEALTHCHECK_START_INTERVAL = 'HEALTHCHECK\'s line is Go\'s %q of the config, and BuildKit 0.8\'s config has no StartInterval (BuildKit 0.12 added it): kiln writes `"0s"` before the retries, as current BuildKit does';

/** A file compressed by a command-line tool (bzip2, xz, zstd), or undefined when the tool is missing. */
function compressedWith(tool: string, data: Buffer): Buffer | undefined {
  try {
    return execFileSync(tool, ['-c'], { input: data, stdio: ['pipe', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

/** ADD of local tars in the compressions Docker reads (those whose tool this machine has). */
function compressedTarCases(): BuildCase[] {
  const archive = tarArchive({ 'packed/file': 'packed\n' });
  const cases: BuildCase[] = [];
  for (const [tool, suffix] of [['bzip2', 'bz2'], ['xz', 'xz']] as const) {
    const bytes = compressedWith(tool, archive);
    if (bytes) cases.push({ name: `add-tar-${suffix}`, buildkit: true, files: { [`archive.tar.${suffix}`]: bytes }, dockerfile: `FROM busybox\nADD archive.tar.${suffix} /${suffix}/\n` });
  }
  const zstd = compressedWith('zstd', archive);
  if (zstd) {
    const reason = 'BuildKit 0.8 reads no zstd (Docker 23 added it): it copies the archive as a file, where kiln and current BuildKit extract it';
    cases.push({
      name: 'add-tar-zst',
      buildkit: true,
      files: { 'archive.tar.zst': zstd },
      dockerfile: 'FROM busybox\nADD archive.tar.zst /zst/\n',
      knownDifferences: { '/zst/archive.tar.zst': reason, '/zst/packed': reason, '/zst/packed/file': reason },
    });
  }
  return cases;
}

export const BUILD_CASES: readonly BuildCase[] = [
  { name: 'env-and-workdir', buildkit: true, dockerfile: 'FROM busybox\nENV A=1 B="two words"\nWORKDIR /a/b\nWORKDIR c\nRUN pwd > /where && echo "$A $B" > /env\nCMD echo $A\n' },
  { name: 'copy-file-into-dir', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY a.txt /dest/\n' },
  { name: 'copy-file-renamed', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY a.txt /dest/renamed.txt\n' },
  { name: 'copy-directory-contents', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY dir /target\nCOPY dir/ /target2/\n' },
  { name: 'copy-wildcards', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY *.txt /w/\nCOPY dir/sub/*.md /m/\nCOPY ?.txt /q/\n' },
  { name: 'copy-chown-numeric', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY --chown=1000:1000 a.txt /owned/\nCOPY --chown=1234 dir /owned-dir/\n' },
  { name: 'copy-chown-names', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo app:x:1234: >> /etc/group && mkdir -p /home/app\nCOPY --chown=app:app a.txt dir /home/app/\n' },
  { name: 'copy-everything-with-ignore', buildkit: true, files: { ...common, '.dockerignore': '*.md\n**/*.md\ndir/sub\n', 'keep.log': 'k\n' }, dockerfile: 'FROM busybox\nCOPY . /src\n' },
  { name: 'dockerignore-exceptions', buildkit: true, files: { ...common, '.dockerignore': '*.log\n!keep.log\ndir\n!dir/sub/two\n', 'keep.log': 'k\n', 'drop.log': 'd\n' }, dockerfile: 'FROM busybox\nCOPY . /ctx/\n' },
  { name: 'add-tar-extracts', buildkit: true, files: { 'archive.tar': tarArchive({ 'x/hello': 'hello\n', 'x/world': 'world\n' }) }, dockerfile: 'FROM busybox\nADD archive.tar /unpacked/\n' },
  { name: 'add-tar-gz-extracts', buildkit: true, files: { 'archive.tar.gz': gzipSync(tarArchive({ 'gz/file': 'zipped\n' })) }, dockerfile: 'FROM busybox\nADD archive.tar.gz /gz/\n' },
  { name: 'add-plain-file', buildkit: true, files: common, dockerfile: 'FROM busybox\nADD a.txt /added/\nADD dir /added-dir\n' },
  { name: 'user-by-name', buildkit: true, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group\nUSER bob\nRUN touch /tmp/bobfile && id > /tmp/id\n', knownDifferences: { '/tmp/id': NO_SUPPLEMENTARY_GROUPS } },
  { name: 'user-numeric', buildkit: true, dockerfile: 'FROM busybox\nRUN mkdir -m 777 /shared\nUSER 4242:4242\nRUN touch /shared/mine && id -u > /shared/uid\n' },
  { name: 'multi-stage-by-name', buildkit: true, files: common, dockerfile: 'FROM busybox AS build\nRUN mkdir /out && echo built > /out/artifact\nFROM busybox\nCOPY --from=build /out /out\n' },
  { name: 'multi-stage-by-index', buildkit: true, dockerfile: 'FROM busybox\nRUN echo zero > /zero\nFROM busybox\nCOPY --from=0 /zero /copied\n' },
  { name: 'multi-stage-target', buildkit: true, args: ['--target', 'middle'], dockerfile: 'FROM busybox AS first\nRUN echo 1 > /one\nFROM first AS middle\nRUN echo 2 > /two\nFROM middle\nRUN echo 3 > /three\n' },
  { name: 'stage-as-base', buildkit: true, dockerfile: 'FROM busybox AS base\nENV FROM_BASE=yes\nRUN echo base > /base\nFROM base\nRUN echo "$FROM_BASE" > /child\n' },
  { name: 'copy-from-image', buildkit: true, dockerfile: 'FROM busybox AS unused\nFROM busybox\nCOPY --from=busybox /bin/busybox /bb\n' },
  { name: 'arg-before-from', buildkit: true, dockerfile: 'ARG BASE=busybox\nARG VERSION=latest\nFROM ${BASE}:${VERSION}\nARG VERSION\nRUN echo "$VERSION" > /version\n' },
  { name: 'build-arg-override', buildkit: true, args: ['--build-arg', 'NAME=given', '--build-arg', 'OTHER=2'], dockerfile: 'FROM busybox\nARG NAME=default\nARG OTHER\nRUN echo "$NAME $OTHER" > /name\n' },
  { name: 'env-beats-arg', buildkit: true, dockerfile: 'FROM busybox\nARG X=arg\nENV X=env\nRUN echo "$X" > /x\n' },
  { name: 'labels', buildkit: true, args: ['--label', 'extra=1'], dockerfile: 'FROM busybox\nLABEL a=b "c d"="e f"\nLABEL multi.line="one \\\n  two"\n' },
  { name: 'expose-and-volume', buildkit: true, dockerfile: 'FROM busybox\nEXPOSE 80 53/udp 8000-8002\nVOLUME /data\nVOLUME ["/cache", "/logs"]\n' },
  { name: 'cmd-and-entrypoint-shell-form', buildkit: true, dockerfile: 'FROM busybox\nENTRYPOINT echo hi\nCMD ["ignored"]\n' },
  { name: 'entrypoint-resets-inherited-cmd', buildkit: true, dockerfile: 'FROM busybox AS base\nCMD ["base"]\nFROM base\nENTRYPOINT ["/bin/echo"]\n' },
  { name: 'shell-instruction', buildkit: true, dockerfile: 'FROM busybox\nSHELL ["/bin/sh", "-ec"]\nRUN echo "$0" > /shell\nCMD echo hi\nENTRYPOINT echo entry\n' },
  { name: 'healthcheck', buildkit: true, dockerfile: 'FROM busybox\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1m --retries=2 CMD true\n', knownConfigDifferences: { history: HEALTHCHECK_START_INTERVAL } },
  { name: 'healthcheck-none-and-stopsignal', buildkit: true, dockerfile: 'FROM busybox\nHEALTHCHECK NONE\nSTOPSIGNAL SIGKILL\n', knownConfigDifferences: { history: HEALTHCHECK_START_INTERVAL } },
  { name: 'onbuild-triggers', buildkit: true, dockerfile: 'FROM busybox AS base\nONBUILD RUN echo triggered > /trig\nONBUILD ENV TRIGGERED=1\nRUN echo base > /base\nFROM base\nRUN echo child > /child\n' },
  { name: 'maintainer', buildkit: true, dockerfile: 'FROM busybox\nMAINTAINER someone <someone@example.com>\n' },
  { name: 'workdir-from-env', buildkit: true, dockerfile: 'FROM busybox\nENV D=/base\nWORKDIR $D/sub\nRUN pwd > /pwd\n' },
  { name: 'expansion-forms', buildkit: true, dockerfile: 'FROM busybox\nENV A=x\nENV B=${A:-y} C=${UNSET:-dflt} D=${A:+set} E="$A"\'$A\' F=\\$A\nRUN echo "$B $C $D $E $F" > /expanded\n' },
  { name: 'run-exec-form', buildkit: true, dockerfile: 'FROM busybox\nRUN ["/bin/sh", "-c", "echo exec > /exec"]\n' },
  { name: 'deletions', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY dir /d\nRUN rm /etc/group && rm -r /d/sub\n' },
  { name: 'opaque-directory', buildkit: true, dockerfile: 'FROM busybox\nRUN mkdir /o && touch /o/a /o/b\nRUN rm -rf /o && mkdir /o && touch /o/c\n' },
  { name: 'symlinks', buildkit: true, files: { ...common, 'link-to-a': { symlink: 'a.txt' } }, dockerfile: 'FROM busybox\nRUN ln -s /etc/passwd /abs-link && ln -s ../etc /rel-link\nCOPY link-to-a a.txt /links/\n' },
  { name: 'hardlinks', buildkit: true, dockerfile: 'FROM busybox\nRUN echo x > /h1 && ln /h1 /h2\n' },
  {
    name: 'copy-hardlinks',
    buildkit: true,
    files: { ...common, 'dir/again': { hardlink: 'a.txt' }, 'dir/sub/third': { hardlink: 'a.txt' } },
    // Whether COPY kept the names one file: the inode numbers, written where the tree comparison sees them.
    dockerfile: 'FROM busybox\nCOPY . /dst/\nCOPY dir /only-dir/\nRUN for f in /dst/dir/again /dst/dir/sub/third /only-dir/sub/third; do [ "$(stat -c %i /dst/a.txt)" = "$(stat -c %i $f)" ] && echo "$f linked to a.txt" || echo "$f separate"; done > /links; if [ "$(stat -c %i /only-dir/again)" = "$(stat -c %i /only-dir/sub/third)" ]; then echo "only-dir linked"; else echo "only-dir separate"; fi >> /links\n',
  },
  { name: 'modes', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY script.sh /usr/local/bin/\nRUN touch /suid && chmod 4755 /suid && mkdir -m 1777 /sticky\n' },
  { name: 'copy-into-existing-dir', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY a.txt /etc\n' },
  { name: 'copy-several-sources', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY a.txt b.txt dir /multi/\n' },
  { name: 'escape-directive', buildkit: true, dockerfile: '# escape=`\nFROM busybox\nRUN echo one `\n    && echo two > /esc\n' },
  { name: 'comments-and-continuations', buildkit: true, dockerfile: 'FROM busybox\n# a comment\nRUN echo a \\\n# inside\n    b \\\n\n    c > /joined\n' },
  { name: 'from-scratch', buildkit: true, files: common, dockerfile: 'FROM scratch\nCOPY a.txt /\nCOPY dir /dir\nCMD ["/a.txt"]\n' },
  { name: 'workdir-under-user', buildkit: true, dockerfile: 'FROM busybox\nUSER 1000\nWORKDIR /new/deep\nRUN pwd > /tmp/pwd-as-user || true\n' },
  { name: 'copy-from-stage-owners-and-modes', buildkit: true, dockerfile: 'FROM busybox AS build\nRUN mkdir -p /out/sub && echo x > /out/sub/f && chown -R 1000:2000 /out && chmod 700 /out/sub && chmod 4755 /out/sub/f\nFROM busybox\nCOPY --from=build /out /copied\nCOPY --from=build --chown=5:5 /out/sub/f /owned\n' },
  { name: 'copy-chown-directory-tree', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY --chown=7:7 dir /cd/\n' },

  // Shapes real projects use, as BuildKit builds them.
  { name: 'workdir-owned-by-user', buildkit: true, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nUSER bob\nWORKDIR /home/bob/work\nRUN echo "$(id -un) $(pwd)" > note.txt\n' },
  { name: 'workdir-owned-by-numeric-user', buildkit: true, dockerfile: 'FROM busybox\nUSER 4000:4001\nWORKDIR /app/data/deep\n' },
  { name: 'workdir-owned-by-user-and-group', buildkit: true, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nUSER bob:staff\nWORKDIR /srv/app\nRUN touch made-here\n' },
  { name: 'workdir-existing-under-user', buildkit: true, dockerfile: 'FROM busybox\nUSER 1000\nWORKDIR /tmp\nWORKDIR /\n' },
  { name: 'workdir-relative-chain', buildkit: true, dockerfile: 'FROM busybox\nWORKDIR a\nWORKDIR b\nRUN pwd > /p && echo "$PWD" > /pwd-env\n' },
  { name: 'copy-chown-user-name-only', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nCOPY --chown=bob a.txt dir /bob-files/\n' },
  { name: 'copy-chown-uid-and-group-name', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nCOPY --chown=1000:staff a.txt /gfiles/\n' },
  { name: 'copy-chown-name-and-gid', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nCOPY --chown=bob:99 a.txt /g99/\n' },
  { name: 'copy-chown-makes-parents', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY --chown=7:8 a.txt /p/q/r/\n' },
  { name: 'copy-under-user-makes-parents', buildkit: true, files: common, dockerfile: 'FROM busybox\nUSER 1000\nCOPY a.txt /u/v/\nCOPY dir /u/w\n' },
  // The files a RUN's runtime mounts over (/etc/hosts…) are not the stage's: a COPY --from does not take them.
  { name: 'copy-from-stage-after-run-etc', buildkit: true, files: common, dockerfile: 'FROM busybox AS a\nRUN echo x > /x\nFROM busybox\nCOPY --from=a /etc /etc2\n' },
  // A RUN step's /etc/hosts, with --add-host's lines.
  { name: 'run-etc-hosts-add-host', buildkit: true, files: common, args: ['--add-host', 'db.example:10.1.2.3', '--add-host', 'six:::1'], dockerfile: 'FROM busybox\nRUN cat /etc/hosts > /hosts\n' },
  // Docker's seccomp profile: a RUN without CAP_SYS_ADMIN makes no namespace.
  { name: 'run-seccomp-refuses-unshare', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN if unshare -U true 2> /unshare.err; then echo allowed; else echo refused; fi > /seccomp; grep ^Seccomp: /proc/self/status >> /seccomp\n' },
  { name: 'useradd-user-workdir-copy', buildkit: true, files: common, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group && echo staff:x:50: >> /etc/group && mkdir -p /home/bob && chown 1500:1500 /home/bob\nUSER bob\nWORKDIR /home/bob/app\nCOPY --chown=bob:bob . .\nRUN stat -c "%A %U:%G %s %n" . .. ./* > listing.txt\n' },
  { name: 'env-path-prepend', buildkit: true, dockerfile: 'FROM busybox\nENV PATH=/opt/tool/bin:$PATH\nRUN echo "$PATH" > /path\n' },
  { name: 'env-legacy-form', buildkit: true, dockerfile: 'FROM busybox\nENV GREETING hello there\nENV A=1 B=2\nRUN echo "$GREETING $A $B" > /env\n' },
  { name: 'env-quotes-and-specials', buildkit: true, dockerfile: 'FROM busybox\nENV Q="a \\"quoted\\" value" S=\'single $x\' T=tab\\ sep\nRUN echo "$Q|$S|$T" > /q\n' },
  { name: 'env-refers-to-same-line', buildkit: true, dockerfile: 'FROM busybox\nENV A=old\nENV A=new B=$A\nRUN echo "$A $B" > /ab\n' },
  { name: 'arg-global-redeclared', buildkit: true, dockerfile: 'ARG V=1\nFROM busybox\nARG V\nRUN echo "[$V]" > /v\n' },
  { name: 'arg-global-not-redeclared', buildkit: true, dockerfile: 'ARG V=1\nFROM busybox\nRUN echo "[$V]" > /v\n' },
  { name: 'arg-global-overridden', buildkit: true, args: ['--build-arg', 'V=9'], dockerfile: 'ARG V=1\nFROM busybox\nARG V\nRUN echo "[$V]" > /v\n' },
  { name: 'arg-default-expanded', buildkit: true, dockerfile: 'FROM busybox\nARG A=x\nARG B=${A}y\nRUN echo "$B" > /b\n' },
  { name: 'arg-without-default-given', buildkit: true, args: ['--build-arg', 'X=given'], dockerfile: 'FROM busybox\nARG X\nRUN echo "$X" > /x\n' },
  { name: 'arg-into-env', buildkit: true, dockerfile: 'FROM busybox\nARG V=3\nENV W=$V\nRUN echo "$W" > /w\n' },
  { name: 'arg-after-env', buildkit: true, dockerfile: 'FROM busybox\nENV X=env\nARG X=arg\nRUN echo "$X" > /x\n' },
  { name: 'arg-unset-is-empty', buildkit: true, dockerfile: 'FROM busybox\nARG NOPE\nRUN echo "[$NOPE]" > /nope\n' },
  { name: 'arg-in-from-tag', buildkit: true, dockerfile: 'ARG TAG=latest\nFROM busybox:$TAG AS base\nRUN echo tagged > /t\n' },
  { name: 'arg-inherited-by-stage', buildkit: true, dockerfile: 'FROM busybox AS a\nARG X=1\nENV Y=2\nFROM a\nRUN echo "[$X] [$Y]" > /xy\n' },
  { name: 'target-platform-args', buildkit: true, dockerfile: 'FROM busybox\nARG TARGETARCH\nARG TARGETPLATFORM\nARG TARGETOS\nRUN echo "$TARGETARCH $TARGETPLATFORM $TARGETOS" > /target\n' },
  { name: 'build-platform-args', buildkit: true, dockerfile: 'FROM busybox\nARG BUILDPLATFORM\nARG BUILDARCH\nARG BUILDOS\nRUN echo "$BUILDPLATFORM $BUILDARCH $BUILDOS" > /build\n' },
  { name: 'target-arch-undeclared', buildkit: true, dockerfile: 'FROM busybox\nRUN echo "[$TARGETARCH]" > /t\n' },
  { name: 'target-arch-global', buildkit: true, dockerfile: 'ARG TARGETARCH\nFROM busybox\nARG TARGETARCH\nRUN echo "$TARGETARCH" > /t\n' },
  { name: 'copy-from-image-directory', buildkit: true, dockerfile: 'FROM busybox\nCOPY --from=busybox /etc/ /etc-copy/\n' },
  { name: 'copy-from-stage-with-chown', buildkit: true, dockerfile: 'FROM busybox AS build\nRUN mkdir /out && echo x > /out/x\nFROM busybox\nCOPY --from=0 --chown=9:9 /out /in\n' },
  { name: 'multi-stage-three', buildkit: true, dockerfile: 'FROM busybox AS one\nRUN echo 1 > /one\nFROM busybox AS two\nRUN echo 2 > /two\nFROM busybox\nCOPY --from=one /one /r/\nCOPY --from=two /two /r/\nCOPY --from=one /one /r/again\n' },
  { name: 'stage-name-any-case', buildkit: true, dockerfile: 'FROM busybox AS Build\nRUN echo b > /b\nFROM build\nRUN cat /b > /c\n' },
  { name: 'stage-chain-inherits-config', buildkit: true, dockerfile: 'FROM busybox AS a\nWORKDIR /w\nUSER 5\nCMD ["a"]\nFROM a AS b\nENV B=1\nFROM b\nLABEL c=1\n' },
  { name: 'add-tar-with-dirs', buildkit: true, files: { 'nested.tar': tarArchive({ 'top/mid/leaf.txt': 'leaf\n', 'top/other.txt': 'other\n' }) }, dockerfile: 'FROM busybox\nADD nested.tar /n/\nADD nested.tar /n2\n' },
  { name: 'add-gzip-not-tar', buildkit: true, files: { 'plain.txt.gz': gzipSync(Buffer.from('not a tar\n')) }, dockerfile: 'FROM busybox\nADD plain.txt.gz /gz/\n' },
  ...compressedTarCases(),
  { name: 'context-symlink-to-directory', buildkit: true, files: { ...common, 'dirlink': { symlink: 'dir' } }, dockerfile: 'FROM busybox\nCOPY . /c/\nCOPY dirlink /through-link/\n' },
  { name: 'context-hardlink-single-name', buildkit: true, files: { ...common, 'dir/again': { hardlink: 'a.txt' } }, dockerfile: 'FROM busybox\nCOPY dir/again /h\nCOPY a.txt dir/again /both/\n' },
  { name: 'dockerignore-double-star-exception', buildkit: true, files: { ...common, '.dockerignore': '**/*.md\n!dir/sub/readme.md\n' }, dockerfile: 'FROM busybox\nCOPY . /c/\n' },
  { name: 'dockerignore-itself-and-dockerfile', buildkit: true, files: { ...common, '.dockerignore': 'Dockerfile\n.dockerignore\n' }, dockerfile: 'FROM busybox\nCOPY . /c/\n' },
  { name: 'dockerignore-comments-and-slashes', buildkit: true, files: { ...common, '.dockerignore': '# a comment\n/a.txt\n./b.txt\ndir/sub/\n' }, dockerfile: 'FROM busybox\nCOPY . /c/\n' },
  { name: 'shell-with-flags', buildkit: true, dockerfile: 'FROM busybox\nSHELL ["/bin/sh", "-xc"]\nRUN echo hi > /s\nSHELL ["/bin/sh", "-c"]\nCMD echo back\n' },
  { name: 'healthcheck-exec-form-defaults', buildkit: true, dockerfile: 'FROM busybox\nHEALTHCHECK CMD ["/bin/true"]\n', knownConfigDifferences: { history: HEALTHCHECK_START_INTERVAL } },
  { name: 'stopsignal-number', buildkit: true, dockerfile: 'FROM busybox\nSTOPSIGNAL 9\n' },
  { name: 'volume-then-run-writes-there', buildkit: true, dockerfile: 'FROM busybox\nVOLUME /data\nRUN mkdir -p /data && echo kept > /data/file\nCOPY --from=busybox /bin/true /data/true\n' },
  { name: 'volume-from-env-and-json', buildkit: true, dockerfile: 'FROM busybox\nENV V=/vol\nVOLUME $V ["/other"]\nVOLUME ["/a", "/b"]\n' },
  { name: 'expose-ranges-and-env', buildkit: true, dockerfile: 'FROM busybox\nENV P=8080\nEXPOSE 7000-7002/udp $P 9000/tcp\nEXPOSE 80\n' },
  { name: 'label-override-and-env', buildkit: true, dockerfile: 'FROM busybox\nENV V=1.0\nLABEL a=1 version=$V\nLABEL a=2 "b c"=3\n' },
  { name: 'escape-backtick-paths', buildkit: true, files: common, dockerfile: '# escape=`\nFROM busybox\nCOPY a.txt `\n     /esc/\nRUN echo a\\b > /backslash\n' },
  { name: 'env-line-continuation', buildkit: true, dockerfile: 'FROM busybox\nENV A=1 \\\n    B=2 \\\n    C=3\nRUN echo "$A$B$C" > /abc\n' },
  { name: 'comment-inside-continuation', buildkit: true, dockerfile: 'FROM busybox\nRUN echo a \\\n  # not part of the command\n  && echo b > /f\n' },
  { name: 'user-writes-own-home', buildkit: true, dockerfile: 'FROM busybox\nRUN mkdir -p /home/u && chown 1000 /home/u\nUSER 1000\nRUN touch /home/u/x && echo "$HOME" > /home/u/home\n' },
  { name: 'user-back-to-root', buildkit: true, dockerfile: 'FROM busybox\nUSER 1000\nUSER root\nRUN id > /id\n', knownDifferences: { '/id': NO_SUPPLEMENTARY_GROUPS } },
  { name: 'cmd-and-entrypoint-exec-forms', buildkit: true, dockerfile: 'FROM busybox\nENTRYPOINT ["/bin/echo", "x"]\nCMD ["sh", "-c", "echo \\"hi\\""]\n' },
  { name: 'cmd-unicode', buildkit: true, dockerfile: 'FROM busybox\nCMD ["echo", "h\u00e9llo \u2713", "tab\\there"]\n' },
  { name: 'entrypoint-empty', buildkit: true, dockerfile: 'FROM busybox\nCMD ["base"]\nENTRYPOINT []\n' },
  { name: 'run-history-with-args-and-env', buildkit: true, dockerfile: 'FROM busybox\nARG A=1\nENV B=2\nARG C\nRUN echo ok > /ok\n' },
  { name: 'scratch-workdir-copy', buildkit: true, files: common, dockerfile: 'FROM scratch\nWORKDIR /app\nCOPY a.txt .\nENV A=1\n' },
  { name: 'apt-style-install-and-cleanup', buildkit: true, dockerfile: 'FROM busybox\nRUN set -eux; mkdir -p /var/lib/apt/lists /usr/local/app; echo pkg > /var/lib/apt/lists/index; echo bin > /usr/local/app/bin; rm -rf /var/lib/apt/lists/*\n' },
  { name: 'run-recreates-deleted-file', buildkit: true, dockerfile: 'FROM busybox\nRUN rm /etc/passwd && echo new > /etc/passwd\nRUN rm -r /tmp && mkdir /tmp && chmod 1777 /tmp\n' },
  { name: 'run-metadata-only-changes', buildkit: true, dockerfile: 'FROM busybox\nRUN chmod 700 /etc && chown 5:5 /tmp\n' },
  { name: 'run-symlink-replaces-dir', buildkit: true, dockerfile: 'FROM busybox\nRUN mkdir -p /opt/real && echo r > /opt/real/f && rm -rf /var && ln -s /opt/real /var\n' },
  { name: 'copy-wildcard-directory-contents', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY dir/* /flat/\n' },
  { name: 'copy-to-workdir-relative', buildkit: true, files: common, dockerfile: 'FROM busybox\nWORKDIR /w\nCOPY a.txt .\nCOPY dir ./d\nADD b.txt rel/\n' },
  { name: 'run-umask-and-exec-env', buildkit: true, dockerfile: 'FROM busybox\nRUN umask > /umask && touch /newfile && mkdir /newdir\nRUN ["sh", "-c", "echo $HOME > /home-of-root"]\n' },
  { name: 'onbuild-base-from-suite', buildkit: true, files: common, dockerfile: 'FROM onbuild-base:1\nRUN cat /onbuild/a.txt > /seen\n' },

  // BuildKit-only syntax: the classic builder rejects these, so they are checked by assertions.
  { name: 'heredoc-run', buildkit: false, dockerfile: 'FROM busybox\nRUN <<EOF\necho first > /hd1\necho second >> /hd1\nEOF\nRUN <<\'EOT\' sh\nset -e\necho "$0" > /hd2\nEOT\n' },
  { name: 'heredoc-run-shebang', buildkit: false, dockerfile: 'FROM busybox\nRUN <<EOF\n#!/bin/sh\necho "via $0" > /shebang\nEOF\n' },
  { name: 'heredoc-copy', buildkit: false, dockerfile: 'FROM busybox\nARG WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nCOPY <<"EOF" /literal\nhello $WHO\nEOF\nCOPY <<-EOF /chomped\n\t\tindented\n\tEOF\n' },
  { name: 'copy-chmod-link-exclude', buildkit: false, files: common, dockerfile: 'FROM busybox\nCOPY --chmod=0600 a.txt /private/\nCOPY --link b.txt /linked/\nCOPY --exclude=*.md dir /nomd/\n' },
  // A bind mount of the context shows what .dockerignore leaves in, as a COPY of it would.
  {
    name: 'run-mount-bind-dockerignore',
    buildkit: true,
    files: { ...common, '.dockerignore': '*.md\ndir/sub/two\n' },
    dockerfile: 'FROM busybox\nRUN --mount=target=/c ls -aR /c > /seen\nRUN --mount=type=bind,source=dir,target=/d ls -aR /d > /seen-dir\n',
    knownDifferences: { '/c': MOUNT_STUBS, '/d': MOUNT_STUBS },
  },
  { name: 'run-mount-bind', buildkit: false, files: common, dockerfile: 'FROM busybox AS tools\nRUN echo tool > /tool\nFROM busybox\nRUN --mount=type=bind,source=dir,target=/mnt cat /mnt/one > /from-context\nRUN --mount=type=bind,from=tools,target=/t cat /t/tool > /from-stage\n' },
  { name: 'run-mount-cache', buildkit: false, dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/cache,id=suite echo run >> /cache/runs && cp /cache/runs /seen\n' },
  { name: 'run-mount-tmpfs-network-none', buildkit: false, dockerfile: 'FROM busybox\nRUN --mount=type=tmpfs,target=/scratch --network=none touch /scratch/x && ls /sys/class/net > /nets\n' },
];

/** Writes a case's build context (Dockerfile and files) into a new directory. */
export async function writeContext(buildCase: BuildCase): Promise<string> {
  const dir = await tempDir('kiln-ctx-');
  await writeFile(join(dir, 'Dockerfile'), buildCase.dockerfile);
  for (const [path, file] of Object.entries(buildCase.files ?? {})) {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    if (typeof file === 'string' || Buffer.isBuffer(file)) await writeFile(full, file, { mode: 0o644 });
    else if ('symlink' in file) await symlink(file.symlink, full);
    else if ('hardlink' in file) await link(join(dir, file.hardlink), full);
    else await writeFile(full, file.content, { mode: file.mode });
  }
  return dir;
}
