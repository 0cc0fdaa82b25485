import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { isSupportedSpdxId } from '@cyclonedx/cyclonedx-library/SPDX';
import { Ajv } from 'ajv';
import type { Sbom } from '../../src/analyze/sbom/model.js';
import { fixture, fixturesUnavailable } from '../helpers/fixtures.js';
import { newKiln, ok } from '../helpers/kiln.js';
import { isRoot, repoRoot, tempDir } from '../helpers/paths.js';
import { spdxSchema as publishedSpdxSchema } from '../helpers/schemas.js';

const run = promisify(execFile);

const { kiln } = await newKiln();
const out = await tempDir('kiln-sbom-');

async function sbomOf(source: string): Promise<Sbom> {
  return JSON.parse((await ok(kiln(['sbom', '--format', 'json', source]))).stdout) as Sbom;
}

/** CycloneDX 1.5's published schema, as the CycloneDX library ships it, with the two schemas it refers to. */
async function cycloneDxValidator(): Promise<(doc: unknown) => string[]> {
  const dir = join(repoRoot, 'node_modules', '@cyclonedx', 'cyclonedx-library', 'res', 'schema');
  const load = async (name: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, name), 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv({ strict: false, allErrors: true });
  // ajv-formats is not a dependency: the three formats the schema uses, checked as their RFCs say, loosely.
  ajv.addFormat('date-time', (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)));
  ajv.addFormat('iri-reference', (s: string) => !/\s/.test(s));
  ajv.addFormat('idn-email', (s: string) => /^[^@\s]+@[^@\s]+$/.test(s));
  // The schema refers to its neighbours by their SNAPSHOT names, which their own $ids do not carry.
  for (const name of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) ajv.addSchema({ ...(await load(name)), $id: `http://cyclonedx.org/schema/${name}` });
  const validate = ajv.compile(await load('bom-1.5.SNAPSHOT.schema.json'));
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`));
}

interface SpdxDoc {
  spdxVersion: string;
  dataLicense: string;
  SPDXID: string;
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: { SPDXID: string; name: string; versionInfo?: string; downloadLocation: string; filesAnalyzed?: boolean; licenseDeclared?: string; licenseConcluded?: string; copyrightText?: string; checksums?: { algorithm: string; checksumValue: string }[]; externalRefs?: { referenceCategory: string; referenceType: string; referenceLocator: string }[]; primaryPackagePurpose?: string }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

/**
 * What SPDX 2.3's schema and specification require of the fields kiln writes, checked without the
 * schema (which is validated against too when the conformance corpus holds it: see below).
 */
function spdxProblems(doc: SpdxDoc): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  check(doc.spdxVersion === 'SPDX-2.3', 'spdxVersion');
  check(doc.dataLicense === 'CC0-1.0', 'dataLicense');
  check(doc.SPDXID === 'SPDXRef-DOCUMENT', 'SPDXID');
  check(typeof doc.name === 'string' && doc.name !== '', 'name');
  check(/^[a-z][a-z0-9+.-]*:\/\/[^\s#]+$/.test(doc.documentNamespace), 'documentNamespace is a URI without #');
  check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(doc.creationInfo.created), 'creationInfo.created');
  check(doc.creationInfo.creators.length > 0 && doc.creationInfo.creators.every((c) => /^(Tool|Person|Organization): \S/.test(c)), 'creators');
  const ids = new Set<string>(['SPDXRef-DOCUMENT']);
  const licenseOk = (expression: string | undefined): boolean =>
    expression === undefined || expression === 'NOASSERTION' || expression === 'NONE' || expression.split(/[\s()]+/).filter((t) => t !== '').every((t) => ['AND', 'OR', 'WITH'].includes(t) || isSupportedSpdxId(t) || /exception/i.test(t));
  for (const p of doc.packages) {
    check(/^SPDXRef-[A-Za-z0-9.-]+$/.test(p.SPDXID) && !ids.has(p.SPDXID), `package ${p.SPDXID}: SPDXID unique and well-formed`);
    ids.add(p.SPDXID);
    check(typeof p.name === 'string' && p.name !== '', `package ${p.SPDXID}: name`);
    check(typeof p.downloadLocation === 'string', `package ${p.SPDXID}: downloadLocation`);
    check(licenseOk(p.licenseDeclared) && licenseOk(p.licenseConcluded), `package ${p.SPDXID}: license ${p.licenseDeclared ?? ''}`);
    for (const c of p.checksums ?? []) check(c.algorithm === 'SHA256' && /^[0-9a-f]{64}$/.test(c.checksumValue), `package ${p.SPDXID}: checksum`);
    for (const r of p.externalRefs ?? []) check(r.referenceCategory === 'PACKAGE-MANAGER' && r.referenceType === 'purl' && r.referenceLocator.startsWith('pkg:'), `package ${p.SPDXID}: externalRef`);
    check(p.primaryPackagePurpose === undefined || ['APPLICATION', 'FRAMEWORK', 'LIBRARY', 'CONTAINER', 'OPERATING-SYSTEM', 'DEVICE', 'FIRMWARE', 'SOURCE', 'ARCHIVE', 'FILE', 'INSTALL', 'OTHER'].includes(p.primaryPackagePurpose), `package ${p.SPDXID}: purpose`);
  }
  for (const r of doc.relationships) check(ids.has(r.spdxElementId) && ids.has(r.relatedSpdxElement) && ['DESCRIBES', 'CONTAINS'].includes(r.relationshipType), `relationship ${JSON.stringify(r)}`);
  return problems;
}

const debianSkip = await fixturesUnavailable('debian-bookworm-rootfs.tar', 'debian-bookworm-dpkg-query.txt');

describe('kiln sbom: a debootstrapped Debian image', { skip: debianSkip ?? false }, () => {
  let sbom: Sbom;
  let imageId: string;

  before(async () => {
    imageId = (await ok(kiln(['import', await fixture('debian-bookworm-rootfs.tar'), 'debian:bookworm']))).stdout.trim();
    sbom = await sbomOf('debian:bookworm');
  });

  it('lists exactly the packages dpkg-query -W lists, with the same versions', async () => {
    const expected = (await readFile(await fixture('debian-bookworm-dpkg-query.txt'), 'utf8')).trim().split('\n').sort();
    assert.ok(expected.length > 50, `dpkg-query listed only ${expected.length} packages`);
    assert.deepEqual(sbom.packages.map((p) => `${p.name} ${p.version}`).sort(), expected);
    assert.deepEqual(sbom.distro, { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    assert.equal(sbom.imageId, imageId);
  });

  it('gives each package its purl, source package, files, license where the copyright file names one, and layer', () => {
    const byName = new Map(sbom.packages.map((p) => [p.name, p]));
    const libc = byName.get('libc6');
    assert.ok(libc);
    assert.equal(libc.purl, `pkg:deb/debian/libc6@${libc.version}?arch=amd64&distro=debian-12`);
    assert.deepEqual(libc.source, { name: 'glibc', version: libc.version });
    assert.ok(libc.files.includes('/lib/x86_64-linux-gnu/libc.so.6'), 'libc6 owns libc.so.6 (listed in /lib, merged into /usr)');
    assert.equal(byName.get('bash')?.type, 'deb');
    assert.equal(byName.get('adduser')?.license, 'GPL-2.0-or-later');
    assert.ok(sbom.packages.filter((p) => p.license !== null).length > sbom.packages.length / 2, 'most packages have an SPDX license');
    for (const p of sbom.packages) {
      assert.equal(p.origin.layerIndex, 0);
      assert.equal(p.foundIn, '/var/lib/dpkg/status');
      if (p.license !== null) assert.ok(p.license.split(/[\s()]+/).every((t) => t === '' || ['AND', 'OR', 'WITH'].includes(t) || isSupportedSpdxId(t) || /exception/i.test(t)), `${p.name}: ${p.license}`);
    }
  });

  it('writes CycloneDX 1.5 that validates against its published schema, the image as the described root', async () => {
    const file = join(out, 'debian.cdx.json');
    await ok(kiln(['sbom', '--format', 'cyclonedx-json', '-o', file, 'debian:bookworm']));
    const doc = JSON.parse(await readFile(file, 'utf8')) as { specVersion: string; metadata: { component: { type: string; name: string; version: string; hashes: { alg: string; content: string }[] } }; components: { name: string; version: string; purl: string }[] };
    assert.deepEqual((await cycloneDxValidator())(doc), []);
    assert.equal(doc.specVersion, '1.5');
    assert.equal(doc.metadata.component.type, 'container');
    assert.equal(doc.metadata.component.name, 'debian:bookworm');
    assert.deepEqual(doc.metadata.component.hashes, [{ alg: 'SHA-256', content: imageId.slice('sha256:'.length) }]);
    assert.deepEqual(doc.components.map((c) => `${c.name} ${c.version} ${c.purl}`).sort(), sbom.packages.map((p) => `${p.name} ${p.version} ${p.purl}`).sort());
  });

  it('writes SPDX 2.3 JSON that holds to what the SPDX schema requires, the image as the described root', async () => {
    const doc = JSON.parse((await ok(kiln(['sbom', '--format', 'spdx-json', 'debian:bookworm']))).stdout) as SpdxDoc;
    assert.deepEqual(spdxProblems(doc), []);
    const root = doc.packages[0];
    assert.equal(root?.primaryPackagePurpose, 'CONTAINER');
    assert.deepEqual(root?.checksums, [{ algorithm: 'SHA256', checksumValue: imageId.slice('sha256:'.length) }]);
    assert.deepEqual(doc.relationships[0], { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root?.SPDXID });
    assert.equal(doc.packages.length, sbom.packages.length + 1);
    assert.equal(doc.relationships.filter((r) => r.relationshipType === 'CONTAINS' && r.spdxElementId === root?.SPDXID).length, sbom.packages.length);
  });

  const spdxSchema = publishedSpdxSchema();
  it('writes SPDX 2.3 JSON valid against the published SPDX 2.3 schema', 'skip' in spdxSchema ? { skip: spdxSchema.skip } : {}, async () => {
    assert.ok('schema' in spdxSchema);
    const validate = new Ajv({ strict: false, allErrors: true }).compile(spdxSchema.schema);
    const doc: unknown = JSON.parse((await ok(kiln(['sbom', '--format', 'spdx-json', 'debian:bookworm']))).stdout);
    assert.equal(validate(doc), true, JSON.stringify(validate.errors?.slice(0, 5)));
    // The schema can fail: a package without its required downloadLocation is refused.
    const broken = structuredClone(doc) as SpdxDoc;
    delete (broken.packages[1] as Partial<SpdxDoc['packages'][number]>).downloadLocation;
    assert.equal(validate(broken), false);
  });

  it('kiln scan of the image finds exactly the advisories written around its installed source versions, and no others', async () => {
    // Four source packages of the image, each with advisories on both sides of its installed version.
    const sources = [...new Map(sbom.packages.flatMap((p) => (p.source ? [[p.source.name, p.source.version] as const] : []))).entries()].sort().slice(0, 4);
    assert.equal(sources.length, 4);
    const db = join(out, 'osv-debian');
    await mkdir(db, { recursive: true });
    const expected = new Set<string>();
    const record = async (id: string, name: string, events: readonly object[], affects: boolean, withdrawn?: string) => {
      const advisory = { schema_version: '1.6.0', id, modified: '2026-01-01T00:00:00Z', ...(withdrawn ? { withdrawn } : {}), affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events }] }] };
      await writeFile(join(db, `${id}.json`), JSON.stringify(advisory));
      if (affects) for (const p of sbom.packages) if (p.source?.name === name) expected.add(`${id} ${p.name}`);
    };
    for (const [index, [name, version]] of sources.entries()) {
      const later = `${version}+fix1`;
      await record(`TEST-${index}-FIXED-LATER`, name, [{ introduced: '0' }, { fixed: later }], true);
      await record(`TEST-${index}-FIXED-LATER-REVERSED`, name, [{ fixed: later }, { introduced: '0' }], true);
      await record(`TEST-${index}-LAST-AFFECTED`, name, [{ introduced: '0' }, { last_affected: version }], true);
      await record(`TEST-${index}-FIXED-IN-INSTALLED`, name, [{ introduced: '0' }, { fixed: version }], false);
      await record(`TEST-${index}-INTRODUCED-LATER`, name, [{ introduced: later }], false);
      await record(`TEST-${index}-WITHDRAWN`, name, [{ introduced: '0' }], false, '2026-01-02T00:00:00Z');
    }
    const scanned = await kiln(['scan', '--format', 'json', '--db', db, 'debian:bookworm']);
    assert.equal(scanned.code, 0, scanned.stderr);
    const report = JSON.parse(scanned.stdout) as { imageId: string; findings: { id: string; package: { name: string }; installedVersion: string; origin: { layerIndex: number } }[] };
    assert.equal(report.imageId, imageId);
    assert.deepEqual(report.findings.map((f) => `${f.id} ${f.package.name}`).sort(), [...expected].sort());
    assert.ok(report.findings.every((f) => f.origin.layerIndex === 0));
    assert.equal((await kiln(['scan', '--db', db, '--exit-code', '3', 'debian:bookworm'])).code, 3, 'findings left: the exit code asked for');
  });
});

/** The tools the mixed image's context is made with, and a Go binary of this machine (Debian's umoci). */
const GO_BINARY = '/usr/bin/umoci';
async function mixedUnavailable(): Promise<string | undefined> {
  if (!isRoot) return 'kiln build runs RUN steps in an OCI runtime over overlay mounts, which needs root';
  for (const tool of ['rpmbuild', 'rpm', 'zip']) {
    if (!(await run('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false))) return `${tool} is not installed (scripts/setup.sh installs rpm and zip as root)`;
  }
  if (!(await readFile(GO_BINARY).then(() => true, () => false))) return `${GO_BINARY} (a Go binary with build info) is missing: install Debian's umoci`;
  return fixturesUnavailable('busybox-rootfs.tar');
}

async function put(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
}

const APK_INSTALLED = `C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
L:MIT
o:musl
F:lib
R:ld-musl-x86_64.so.1

P:gotool
V:1.0-r0
A:x86_64
L:GPL-2.0-or-later OR MIT
o:gotools
F:usr/bin
R:gotool
F:usr/lib/node_modules/owned
R:package.json
`;

const RPM_SPEC = `Name: hello-rpm
Version: 1.2
Release: 3
Summary: kiln test package
License: GPLv2+
BuildArch: noarch
%description
A package for kiln's tests: it owns a Python distribution, which is not catalogued again.
%install
mkdir -p %{buildroot}/usr/share/hello-rpm %{buildroot}/usr/lib/python3.11/site-packages/rpmowned-1.0.dist-info
echo hi > %{buildroot}/usr/share/hello-rpm/readme
printf 'Metadata-Version: 2.1\\nName: rpmowned\\nVersion: 1.0\\n' > %{buildroot}/usr/lib/python3.11/site-packages/rpmowned-1.0.dist-info/METADATA
%files
/usr/share/hello-rpm/readme
/usr/lib/python3.11/site-packages/rpmowned-1.0.dist-info/METADATA
`;

/** One layer for each ecosystem; line 5 also deletes an npm package line 4 added; line 8 adds a package to apk's database of line 2. */
const MIXED = `FROM busybox
COPY apk/ /
COPY rpm/ /
COPY app/ /app/
RUN mkdir -p /usr/lib/python3.11/site-packages/requests-2.31.0.dist-info && printf 'Metadata-Version: 2.1\\nName: requests\\nVersion: 2.31.0\\nLicense: Apache-2.0\\n\\nHTTP for Humans.\\n' > /usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA && rm -r /app/node_modules/gone
COPY gobin /usr/local/bin/umoci
COPY app.jar /opt/app.jar
RUN printf '\\nP:zlib\\nV:1.3-r0\\nA:x86_64\\nL:Zlib\\no:zlib\\n' >> /lib/apk/db/installed
`;

const mixedSkip = await mixedUnavailable();

describe('kiln sbom: an image kiln built with apk, rpm, npm, Python, Go and Java packages', { skip: mixedSkip ?? false }, () => {
  let sbom: Sbom;
  const context = join(out, 'mixed');

  before(async () => {
    await ok(kiln(['import', await fixture('busybox-rootfs.tar'), 'busybox']));
    await put(join(context, 'Dockerfile'), MIXED);
    await put(join(context, 'apk', 'lib', 'apk', 'db', 'installed'), APK_INSTALLED);
    await put(join(context, 'apk', 'lib', 'ld-musl-x86_64.so.1'), 'not really musl');
    await put(join(context, 'apk', 'etc', 'os-release'), 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n');
    // Files apk owns are not catalogued again: a Go binary and an npm package.
    await mkdir(join(context, 'apk', 'usr', 'bin'), { recursive: true });
    await copyFile(GO_BINARY, join(context, 'apk', 'usr', 'bin', 'gotool'));
    await put(join(context, 'apk', 'usr', 'lib', 'node_modules', 'owned', 'package.json'), JSON.stringify({ name: 'owned', version: '9.9.9' }));

    const top = join(out, 'rpmbuild');
    await put(join(top, 'hello.spec'), RPM_SPEC);
    await run('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, join(top, 'hello.spec')]);
    await mkdir(join(context, 'rpm'));
    await run('rpm', ['--root', join(context, 'rpm'), '--dbpath', '/var/lib/rpm', '-i', '--nodeps', '--noscripts', join(top, 'RPMS', 'noarch', 'hello-rpm-1.2-3.noarch.rpm')]);

    const modules = join(context, 'app', 'node_modules');
    await put(join(modules, 'left-pad', 'package.json'), JSON.stringify({ name: 'left-pad', version: '1.3.0', license: 'WTFPL' }));
    await put(join(modules, 'left-pad', 'lib', 'package.json'), JSON.stringify({ type: 'module' }));
    await put(join(modules, 'left-pad', 'node_modules', 'nested', 'package.json'), JSON.stringify({ name: 'nested', version: '0.1.0', licenses: [{ type: 'ISC' }] }));
    await put(join(modules, '@scope', 'pkg', 'package.json'), JSON.stringify({ name: '@scope/pkg', version: '2.0.0', license: '(MIT OR Apache-2.0)' }));
    await put(join(modules, 'gone', 'package.json'), JSON.stringify({ name: 'gone', version: '1.0.0' }));

    await copyFile(GO_BINARY, join(context, 'gobin'));

    const jar = join(out, 'jar');
    await put(join(jar, 'dep', 'META-INF', 'maven', 'com.acme', 'dep', 'pom.properties'), '#Generated by Maven\ngroupId=com.acme\nartifactId=dep\nversion=3.1\n');
    await run('zip', ['-q', '-r', '../dep.jar', 'META-INF'], { cwd: join(jar, 'dep') });
    await put(join(jar, 'app', 'META-INF', 'maven', 'org.example', 'demo', 'pom.properties'), 'groupId=org.example\nartifactId=demo\nversion=1.0.0\n');
    await put(join(jar, 'app', 'META-INF', 'MANIFEST.MF'), 'Manifest-Version: 1.0\n');
    await mkdir(join(jar, 'app', 'BOOT-INF', 'lib'), { recursive: true });
    await copyFile(join(jar, 'dep.jar'), join(jar, 'app', 'BOOT-INF', 'lib', 'dep.jar'));
    await run('zip', ['-q', '-r', join(context, 'app.jar'), 'META-INF', 'BOOT-INF'], { cwd: join(jar, 'app') });

    await ok(kiln(['build', '-q', '-t', 'mixed:1', context]));
    sbom = await sbomOf('mixed:1');
  });

  it('catalogues each package once, with the layer and the Dockerfile line that brought it in', () => {
    const dockerfile = join(context, 'Dockerfile');
    const rows = sbom.packages.map((p) => `${p.type} ${p.name} ${p.version} layer ${p.origin.layerIndex} line ${p.origin.line ?? '-'} ${p.origin.file === dockerfile ? '' : String(p.origin.file)}`.trim());
    assert.deepEqual(rows.sort(), [
      'apk gotool 1.0-r0 layer 1 line 2',
      'apk musl 1.2.4_git20230717-r4 layer 1 line 2',
      'apk zlib 1.3-r0 layer 7 line 8',
      'golang github.com/opencontainers/umoci/cmd/umoci (devel) layer 5 line 6',
      'golang stdlib 1.19.8 layer 5 line 6',
      'maven com.acme:dep 3.1 layer 6 line 7',
      'maven org.example:demo 1.0.0 layer 6 line 7',
      'npm @scope/pkg 2.0.0 layer 3 line 4',
      'npm left-pad 1.3.0 layer 3 line 4',
      'npm nested 0.1.0 layer 3 line 4',
      'pypi requests 2.31.0 layer 4 line 5',
      'rpm hello-rpm 1.2-3 layer 2 line 3',
    ]);
    assert.deepEqual(sbom.distro, { id: 'alpine', versionId: '3.19.1', prettyName: 'Alpine Linux v3.19' });
  });

  it('names purls, licenses, sources and the files each package owns', () => {
    const byName = new Map(sbom.packages.map((p) => [p.name, p]));
    const pick = (name: string): Pick<Sbom['packages'][number], 'purl' | 'license' | 'source' | 'foundIn'> | undefined => {
      const p = byName.get(name);
      return p && { purl: p.purl, license: p.license, source: p.source, foundIn: p.foundIn };
    };
    assert.deepEqual(pick('musl'), { purl: 'pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1', license: 'MIT', source: { name: 'musl', version: '1.2.4_git20230717-r4' }, foundIn: '/lib/apk/db/installed' });
    assert.deepEqual(byName.get('gotool')?.files, ['/usr/bin', '/usr/bin/gotool', '/usr/lib/node_modules/owned', '/usr/lib/node_modules/owned/package.json']);
    assert.equal(byName.get('gotool')?.license, 'GPL-2.0-or-later OR MIT');
    assert.deepEqual(pick('hello-rpm'), { purl: 'pkg:rpm/alpine/hello-rpm@1.2-3?arch=noarch&distro=alpine-3.19.1', license: 'GPL-2.0-or-later', source: { name: 'hello-rpm', version: '1.2-3' }, foundIn: '/var/lib/rpm/rpmdb.sqlite' });
    assert.deepEqual(pick('@scope/pkg'), { purl: 'pkg:npm/%40scope/pkg@2.0.0', license: '(MIT OR Apache-2.0)', source: null, foundIn: '/app/node_modules/@scope/pkg/package.json' });
    assert.equal(byName.get('nested')?.license, 'ISC');
    assert.deepEqual(pick('requests'), { purl: 'pkg:pypi/requests@2.31.0', license: 'Apache-2.0', source: null, foundIn: '/usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA' });
    assert.equal(byName.get('stdlib')?.purl, 'pkg:golang/stdlib@1.19.8');
    assert.equal(byName.get('stdlib')?.foundIn, '/usr/local/bin/umoci');
    assert.deepEqual(pick('com.acme:dep'), { purl: 'pkg:maven/com.acme/dep@3.1', license: null, source: null, foundIn: '/opt/app.jar!/BOOT-INF/lib/dep.jar' });
    assert.equal(byName.get('org.example:demo')?.foundIn, '/opt/app.jar');
  });

  it('reads the same from a docker-archive the store saved, lines included', async () => {
    const archive = join(out, 'mixed.tar');
    await ok(kiln(['save', '-o', archive, 'mixed:1']));
    const saved = await sbomOf(`docker-archive:${archive}`);
    const rows = (s: Sbom): string[] => s.packages.map((p) => `${p.purl} ${p.foundIn} ${p.origin.diffId} ${p.origin.line ?? '-'}`);
    assert.deepEqual(rows(saved), rows(sbom));
    assert.equal(saved.imageId, sbom.imageId);
  });

  it('reads a directory with dir:PATH', async () => {
    const dir = await sbomOf(`dir:${join(context, 'app')}`);
    assert.deepEqual(dir.packages.map((p) => `${p.name} ${p.version} ${p.foundIn}`).sort(), ['@scope/pkg 2.0.0 /node_modules/@scope/pkg/package.json', 'gone 1.0.0 /node_modules/gone/package.json', 'left-pad 1.3.0 /node_modules/left-pad/package.json', 'nested 0.1.0 /node_modules/left-pad/node_modules/nested/package.json']);
    assert.equal(dir.imageId, '');
  });

  it('prints a table, and refuses an unknown format', async () => {
    const table = (await ok(kiln(['sbom', 'mixed:1']))).stdout;
    assert.match(table, /^NAME\s+VERSION\s+TYPE\s+LAYER\s+LINE\n/);
    assert.match(table, /\nrequests\s+2\.31\.0\s+pypi\s+4\s+5: RUN mkdir -p/);
    assert.match(table, /\n12 packages, distribution Alpine Linux v3\.19\n$/);
    const bad = await kiln(['sbom', '--format', 'xml', 'mixed:1']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /--format xml: kiln sbom writes table, json, spdx-json, cyclonedx-json/);
    const other = await kiln(['sbom', 'containers-storage:x']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /kiln sbom does not read containers-storage: sources; it reads .*, dir:PATH\n/);
    assert.doesNotMatch(other.stderr, /internal error/);
  });
});
