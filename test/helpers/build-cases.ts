/**
 * The Dockerfiles of the build suite. `buildkit: true` cases use only what Docker's classic builder
 * (dockerd 20.10, which the tests run) understands, and their results are compared with Docker's;
 * the others use BuildKit-only syntax (heredocs, --chmod, --link, RUN --mount, COPY --exclude), which the
 * classic builder rejects, and are checked by their own assertions.
 */
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
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
  { name: 'user-by-name', buildkit: true, dockerfile: 'FROM busybox\nRUN echo bob:x:1500:1500::/home/bob:/bin/sh >> /etc/passwd && echo bob:x:1500: >> /etc/group\nUSER bob\nRUN touch /tmp/bobfile && id > /tmp/id\n', knownDifferences: { '/tmp/id': 'BuildKit 0.8 gives RUN no supplementary groups, so `id` prints no groups=; BuildKit 0.11.4 (moby/buildkit#3651) adds the primary group, as kiln and docker run do' } },
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
  { name: 'healthcheck', buildkit: true, dockerfile: 'FROM busybox\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1m --retries=2 CMD true\n', knownConfigDifferences: { history: 'HEALTHCHECK\'s line is Go\'s %q of the config, and BuildKit 0.8\'s config has no StartInterval (BuildKit 0.12 added it): kiln writes `"0s"` before the retries, as current BuildKit does' } },
  { name: 'healthcheck-none-and-stopsignal', buildkit: true, dockerfile: 'FROM busybox\nHEALTHCHECK NONE\nSTOPSIGNAL SIGKILL\n', knownConfigDifferences: { history: 'HEALTHCHECK\'s line is Go\'s %q of the config, and BuildKit 0.8\'s config has no StartInterval (BuildKit 0.12 added it): kiln writes `"0s"` before the retries, as current BuildKit does' } },
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
  { name: 'copy-from-stage-owners-and-modes', buildkit: true, dockerfile: 'FROM busybox AS build\nRUN mkdir -p /out/sub && echo x > /out/sub/f && chown -R 1000:2000 /out && chmod 700 /out/sub && chmod 4755 /out/sub/f\nFROM busybox\nCOPY --from=build /out /copied\nCOPY --from=build --chown=5:5 /out/sub/f /owned\n', knownDifferences: { '/owned': "the classic builder sets a copied file's mode before its owner, and the chown clears setuid (4755 becomes 755); kiln keeps the mode, as BuildKit (chown, then chmod) does" } },
  { name: 'copy-chown-directory-tree', buildkit: true, files: common, dockerfile: 'FROM busybox\nCOPY --chown=7:7 dir /cd/\n' },

  // BuildKit-only syntax: the classic builder rejects these, so they are checked by assertions.
  { name: 'heredoc-run', buildkit: false, dockerfile: 'FROM busybox\nRUN <<EOF\necho first > /hd1\necho second >> /hd1\nEOF\nRUN <<\'EOT\' sh\nset -e\necho "$0" > /hd2\nEOT\n' },
  { name: 'heredoc-run-shebang', buildkit: false, dockerfile: 'FROM busybox\nRUN <<EOF\n#!/bin/sh\necho "via $0" > /shebang\nEOF\n' },
  { name: 'heredoc-copy', buildkit: false, dockerfile: 'FROM busybox\nARG WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nCOPY <<"EOF" /literal\nhello $WHO\nEOF\nCOPY <<-EOF /chomped\n\t\tindented\n\tEOF\n' },
  { name: 'copy-chmod-link-exclude', buildkit: false, files: common, dockerfile: 'FROM busybox\nCOPY --chmod=0600 a.txt /private/\nCOPY --link b.txt /linked/\nCOPY --exclude=*.md dir /nomd/\n' },
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
