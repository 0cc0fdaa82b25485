/**
 * Which advisories apply to which catalogued packages. A distribution's advisories name source packages,
 * so a binary package is looked up by its source's name and version (libssl3 by openssl); language
 * packages by their own. A package is affected when its version is listed in `versions`, or when walking a
 * range's events in the ecosystem's version order (events sorted, `introduced: "0"` the lowest) leaves it
 * inside: `introduced` opens, `fixed` closes before itself, `last_affected` after itself. GIT ranges are
 * not read (they name commits); withdrawn records never reach the index.
 */
import type { CataloguedPackage, Distro, PackageOrigin, PackageType, Sbom } from '../sbom/model.js';
import type { SeverityLevel } from './cvss.js';
import { type Advisory, type OsvEvent, type OsvRange, type PackageKey, normalizeName } from './osv.js';
import { type Ecosystem, type VersionOrder, versionOrder } from './version/order.js';

export interface Finding {
  /** The advisory's ID (CVE-…, GHSA-…, DSA-…) and its other IDs. */
  readonly id: string;
  readonly aliases: readonly string[];
  readonly summary: string;
  readonly severity: SeverityLevel | 'unknown';
  readonly score: number | null;
  readonly vector: string | null;
  readonly package: { readonly name: string; readonly version: string; readonly type: PackageType; readonly purl: string };
  /** The package the advisory names, when it is the binary's source package. */
  readonly source: { readonly name: string; readonly version: string } | null;
  readonly installedVersion: string;
  /** The lowest version that fixes it, null when no fix is known. */
  readonly fixedVersion: string | null;
  readonly origin: PackageOrigin;
  /** True when the package came with the base image (its layer has no Dockerfile line of this build). */
  readonly fromBase: boolean;
  /** What to do about it, in a sentence. */
  readonly fix: string;
}

/** The ecosystem and lookup key of a catalogued package in the image's distribution, or why there is none. */
export function packageKey(pkg: CataloguedPackage, distro: Distro | null): { key: PackageKey; version: string; viaSource: boolean } | undefined {
  const byType: Partial<Record<PackageType, Ecosystem>> = { npm: 'npm', pypi: 'PyPI', golang: 'Go', maven: 'Maven' };
  const language = byType[pkg.type];
  if (language) {
    let name = pkg.name;
    if (language === 'Maven' && !name.includes(':')) {
      // The purl holds the group: pkg:maven/group/artifact@version.
      const m = /^pkg:maven\/([^/]+)\/([^@?#]+)/.exec(pkg.purl);
      if (m) name = `${decodeURIComponent(m[1] as string)}:${decodeURIComponent(m[2] as string)}`;
    }
    return { key: { ecosystem: language, release: language, name: normalizeName(language, name) }, version: pkg.version, viaSource: false };
  }
  if (!distro) return undefined;
  let release: string | undefined;
  let ecosystem: Ecosystem | undefined;
  if (pkg.type === 'deb' && distro.id === 'debian') {
    ecosystem = 'Debian';
    release = `Debian:${distro.versionId.split('.')[0]}`;
  } else if (pkg.type === 'deb' && distro.id === 'ubuntu') {
    ecosystem = 'Ubuntu';
    release = `Ubuntu:${distro.versionId}`;
  } else if (pkg.type === 'apk' && distro.id === 'alpine') {
    ecosystem = 'Alpine';
    const m = /^(\d+\.\d+)/.exec(distro.versionId);
    release = m ? `Alpine:v${m[1]}` : undefined;
  }
  if (!ecosystem || !release || distro.versionId === '') return undefined;
  const source = pkg.source ?? { name: pkg.name, version: pkg.version };
  return { key: { ecosystem, release, name: source.name }, version: source.version, viaSource: pkg.source !== null && (pkg.source.name !== pkg.name || pkg.source.version !== pkg.version) };
}

/** Sorts a range's events in the ecosystem's order; introduced "0" is below everything, and at one version an introduction comes first. */
function sortedEvents(events: readonly OsvEvent[], order: VersionOrder): OsvEvent[] | undefined {
  const lowest = (e: OsvEvent): boolean => e.kind === 'introduced' && e.version === '0';
  const usable = events.filter((e) => e.kind !== 'limit');
  if (usable.some((e) => !lowest(e) && !order.valid(e.version))) return undefined;
  return [...usable].sort((a, b) => {
    if (lowest(a) || lowest(b)) return lowest(a) === lowest(b) ? 0 : lowest(a) ? -1 : 1;
    return order.compare(a.version, b.version) || (a.kind === 'introduced' ? -1 : 0) - (b.kind === 'introduced' ? -1 : 0);
  });
}

/** Whether `version` lies in the range, and the version that ends its interval when one is fixed. */
function inRange(version: string, range: OsvRange, order: VersionOrder): { affected: boolean; fixed: string | null } {
  const events = sortedEvents(range.events, order);
  if (!events) return { affected: false, fixed: null };
  let affected = false;
  let index = 0;
  for (; index < events.length; index++) {
    const event = events[index] as OsvEvent;
    if (event.kind !== 'introduced' && order.compare(version, event.version) < 0) break;
    if (event.kind === 'last_affected' && order.compare(version, event.version) === 0) break;
    if (event.kind === 'introduced') {
      if (event.version === '0' || order.compare(version, event.version) >= 0) affected = true;
      else break;
    } else affected = false;
  }
  const closing = events.slice(index).find((e) => e.kind !== 'introduced');
  return { affected, fixed: affected && closing?.kind === 'fixed' ? closing.version : null };
}

/** Whether one advisory affects the version, and the lowest fixed version that helps. */
export function affects(advisory: Advisory, version: string, order: VersionOrder): { affected: boolean; fixed: string | null } {
  const valid = order.valid(version);
  let affected = advisory.versions.some((v) => v === version || (valid && order.valid(v) && order.compare(v, version) === 0));
  let fixed: string | null = null;
  if (valid) {
    for (const range of advisory.ranges) {
      const result = inRange(version, range, order);
      if (!result.affected) continue;
      affected = true;
      if (result.fixed !== null && (fixed === null || order.compare(result.fixed, fixed) < 0)) fixed = result.fixed;
    }
  }
  return { affected, fixed };
}

/** The base image a FROM line names (`FROM debian:12 AS build` → debian:12). */
function baseImageOf(origin: PackageOrigin): string | null {
  const m = /^FROM\s+(?:--platform=\S+\s+)?(\S+)/i.exec(origin.instruction ?? '');
  return m ? (m[1] as string) : null;
}

function fixSentence(pkg: CataloguedPackage, finding: { fixedVersion: string | null; source: { name: string } | null; fromBase: boolean }, origin: PackageOrigin): string {
  const source = finding.source ? ` (source package ${finding.source.name})` : '';
  if (finding.fixedVersion === null) return `no fixed version of ${pkg.name}${source} is known yet`;
  const upgrade = `upgrade ${pkg.name}${source} to ${finding.fixedVersion} or later`;
  if (!finding.fromBase) return `${upgrade}${origin.line !== null ? ` in the step at ${origin.file ?? 'Dockerfile'}:${origin.line}` : ''}`;
  const base = baseImageOf(origin);
  return `use a newer ${base ?? 'base image'} (layer ${origin.layerIndex} is the base image's), or ${upgrade}`;
}

export interface MatchResult {
  readonly findings: Finding[];
  /** Packages no advisory could be looked up for (no distribution release, an ecosystem kiln does not match). */
  readonly unmatched: number;
}

/** Every advisory of the index that affects a package of the SBOM, in package order, then by ID. */
export function matchSbom(sbom: Sbom, lookup: (key: PackageKey) => Advisory[]): MatchResult {
  const findings: Finding[] = [];
  let unmatched = 0;
  const orders = new Map<Ecosystem, VersionOrder>();
  const lookups = new Map<string, Advisory[]>();
  const verdicts = new Map<string, { advisory: Advisory; affected: boolean; fixed: string | null }[]>();
  for (const pkg of sbom.packages) {
    const target = packageKey(pkg, sbom.distro);
    if (!target) {
      unmatched++;
      continue;
    }
    const order = orders.get(target.key.ecosystem) ?? versionOrder(target.key.ecosystem);
    orders.set(target.key.ecosystem, order);
    // The binaries of one source share its advisories and their answers.
    const lookupKey = `${target.key.release}\0${target.key.name}`;
    const advisories = lookups.get(lookupKey) ?? lookup(target.key);
    lookups.set(lookupKey, advisories);
    const answerKey = `${lookupKey}\0${target.version}`;
    const answers = verdicts.get(answerKey) ?? advisories.map((advisory) => ({ advisory, ...affects(advisory, target.version, order) }));
    verdicts.set(answerKey, answers);
    const seen = new Set<string>();
    for (const { advisory, affected, fixed } of answers) {
      if (!affected || seen.has(advisory.id)) continue;
      seen.add(advisory.id);
      const fromBase = pkg.origin.line === null || /^FROM\b/i.test(pkg.origin.instruction ?? '');
      const source = target.viaSource && pkg.source ? pkg.source : null;
      const partial = { fixedVersion: fixed, source, fromBase };
      findings.push({
        id: advisory.id,
        aliases: advisory.aliases,
        summary: advisory.summary,
        severity: advisory.severity.level,
        score: advisory.severity.score,
        vector: advisory.severity.vector,
        package: { name: pkg.name, version: pkg.version, type: pkg.type, purl: pkg.purl },
        source,
        installedVersion: pkg.version,
        fixedVersion: fixed,
        origin: pkg.origin,
        fromBase,
        fix: fixSentence(pkg, partial, pkg.origin),
      });
    }
  }
  return { findings, unmatched };
}
