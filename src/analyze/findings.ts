/**
 * Findings: what in an image wastes bytes, which Dockerfile line wrote them, and how to fix it. Each
 * wasted byte is told once, by the first rule that explains it:
 *
 * - context-leak: what a .dockerignore would have kept out of the build context (`.git`, `node_modules`)
 *   that a COPY or ADD put into the image;
 * - chown-chmod: files a later layer writes again with the same content (a `chown -R`, a `chmod -R`):
 *   `COPY --chown/--chmod` sets them once;
 * - package-cache: package managers' lists and caches (apt, apk, dnf, pip, npm, yarn), kept in the final
 *   image or removed by a later RUN (too late: they stay in the layer that made them);
 * - deleted-later: files written, then deleted or replaced by a later layer;
 * - build-toolchain: compilers, make and headers in the final image;
 * - duplicate-content: the same content at several paths.
 *
 * Only what the image's own layers do is a finding: its base image's insides are another Dockerfile's.
 */
import type { SourceLine } from './history.js';
import { NONE, type Overlay } from './layers/overlay.js';
import { KIND } from './layers/walk.js';

export type FindingRule = 'context-leak' | 'chown-chmod' | 'package-cache' | 'deleted-later' | 'build-toolchain' | 'duplicate-content';

export interface Finding {
  readonly rule: FindingRule;
  readonly bytes: number;
  /** With a leading slash. */
  readonly paths: readonly string[];
  /** The Dockerfile line of the instruction that wrote the wasted bytes (null when unknown). */
  readonly line: number | null;
  /** The line where the fix goes too, when another (the RUN that deletes or rewrites what `line` wrote). */
  readonly fixLine?: number;
  /** The layer that wrote the bytes. */
  readonly layer: number;
  readonly message: string;
}

export interface LayerFacts {
  /** The instruction's keyword (RUN, COPY, ADD…), from the layer's history entry. */
  readonly keyword: string | undefined;
  readonly createdBy: string;
  readonly source: SourceLine | undefined;
}

export interface FindingContext {
  readonly layers: readonly LayerFacts[];
  /** Layers below this index are the base image's. */
  readonly baseLayers: number;
  /** The content digest of a layer's file (by entry index), when it was read (see contentNeeded). */
  readonly fingerprint: (layer: number, index: number) => string | undefined;
  /** Whether the Dockerfile has a single stage (undefined: not known). */
  readonly singleStage: boolean | undefined;
  /**
   * The places in the overlay's dead of the wasted versions the findings read (the image's own, and the
   * base's it rewrote at their size), in order, where native/sys named them; else every place is looked at.
   */
  readonly findable?: ArrayLike<number> | undefined;
}

/** Files smaller than this are not worth a duplicate-content finding. */
export const DUPLICATE_MIN_BYTES = 1024;

const LEAKS: readonly { readonly name: string; readonly fix: string }[] = [
  { name: '.git', fix: 'add `.git` to .dockerignore' },
  { name: 'node_modules', fix: 'add `node_modules` to .dockerignore and install the dependencies in the image (`npm ci`)' },
];

const PACKAGE_CACHES: readonly { readonly manager: string; readonly pattern: RegExp; readonly fix: string }[] = [
  { manager: "apt's lists and package cache", pattern: /^var\/lib\/apt\/lists\/|^var\/cache\/apt\//, fix: 'remove them in the RUN that makes them: `apt-get update && apt-get install -y … && rm -rf /var/lib/apt/lists/* /var/cache/apt/*`' },
  { manager: "apk's cache", pattern: /^var\/cache\/apk\/|^etc\/apk\/cache\//, fix: 'install with `apk add --no-cache …`, which keeps no index or package' },
  { manager: "dnf's or yum's cache", pattern: /^var\/cache\/(?:dnf|yum)\//, fix: 'run `dnf clean all` (or `yum clean all`) in the RUN that installs' },
  { manager: "pip's cache", pattern: /(?:^|\/)\.cache\/pip\//, fix: 'install with `pip install --no-cache-dir …`' },
  { manager: "npm's cache", pattern: /(?:^|\/)\.npm\//, fix: 'run `npm cache clean --force` in the RUN that installs, or use `RUN --mount=type=cache,target=/root/.npm`' },
  { manager: "yarn's cache", pattern: /(?:^|\/)\.cache\/yarn\/|(?:^|\/)\.yarn\/cache\//, fix: 'run `yarn cache clean` in the RUN that installs, or use a cache mount' },
];

/** Any of them, in one test: nearly no path is one, and an image has hundreds of thousands of paths. */
const ANY_PACKAGE_CACHE = new RegExp(PACKAGE_CACHES.map((c) => `(?:${c.pattern.source})`).join('|'));

/** Compilers, linkers, make, headers and static libraries: what builds software, not what runs it. */
const TOOLCHAIN = /^usr\/(?:local\/)?bin\/(?:[\w.-]+-)?(?:gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|rustc|cargo|go)(?:-[\d.]+)?$|^usr\/(?:local\/)?bin\/(?:make|gmake|ld(?:\.[\w]+)?|as|ar|cmake)$|^usr\/(?:lib|libexec)\/gcc(?:-cross)?\/|^usr\/lib\/llvm-[\d.]+\/|^usr\/(?:local\/)?include\/|^usr\/(?:local\/)?lib\/(?:[\w-]+\/)?[^/]+\.a$|^usr\/local\/go\/(?:pkg|src)\//;
/** What makes a toolchain a toolchain (headers alone may come with a runtime package). */
const TOOLCHAIN_MARKER = /(?:^|\/)(?:[\w.-]+-)?(?:gcc|g\+\+|cc|clang|rustc|make|gmake|go)(?:-[\d.]+)?$|^usr\/lib\/gcc\//;
const DPKG_LIST = /^var\/lib\/dpkg\/info\/([^/:]+)(?::[\w-]+)?\.list$/;
const BUILD_PACKAGE = /-dev$|^(?:gcc|g\+\+|cpp|make|build-essential|binutils|clang|llvm)(?:-[\d.]+)?$/;

/** A count with thousands separators, as toLocaleString('en-US') writes it, without the cost of loading the locale's data. */
const grouped = (n: number): string => String(n).replace(/\B(?=(\d{3})+$)/g, ',');
const plural = (n: number, one: string, many = `${one}s`): string => `${grouped(n)} ${n === 1 ? one : many}`;

function leakOf(path: string): (typeof LEAKS)[number] | undefined {
  return LEAKS.find((leak) => path === leak.name || path.startsWith(`${leak.name}/`) || path.includes(`/${leak.name}/`) || path.endsWith(`/${leak.name}`));
}

/** Whether version `by` wrote the same path as `version` again, as a file of the same size (its content may differ). */
function rewroteSameSize(overlay: Overlay, version: number, by: number): boolean {
  return by !== NONE && overlay.versionNode[by] === overlay.versionNode[version] && overlay.kind(version) === KIND.file && overlay.kind(by) === KIND.file && overlay.size(by) === overlay.size(version);
}

/** Files whose content an analysis needs to compare, by layer (entry indexes): see fingerprint. */
export function contentNeeded(overlay: Overlay, baseLayers: number): Map<number, Set<number>> {
  const { versionLayer, versionIndex, endBy, endDeleted, dead, live, liveBytes } = overlay;
  const needed = new Map<number, Set<number>>();
  const need = (version: number): void => {
    const layer = versionLayer[version] as number;
    const set = needed.get(layer) ?? new Set<number>();
    set.add(versionIndex[version] as number);
    needed.set(layer, set);
  };
  // A file written again at the same size: the same content (a chown or chmod) or not.
  for (const version of dead) {
    const by = endBy[version] as number;
    if (endDeleted[version] === 0 && rewroteSameSize(overlay, version, by) && overlay.size(version) > 0 && ((versionLayer[version] as number) >= baseLayers || (versionLayer[by] as number) >= baseLayers)) {
      need(version);
      need(by);
    }
  }
  // Live files of a size another live file has, where one of them is the image's own.
  const sizes = ownSizes(overlay, baseLayers);
  if (sizes.size === 0) return needed;
  const bySize = new Map<number, number[]>();
  for (let k = 0; k < live.length; k++) {
    const bytes = liveBytes[k] as number;
    if (!sizes.has(bytes) || overlay.kind(live[k] as number) !== KIND.file) continue;
    const same = bySize.get(bytes);
    if (same) same.push(live[k] as number);
    else bySize.set(bytes, [live[k] as number]);
  }
  for (const versions of bySize.values()) if (versions.length > 1) for (const version of versions) need(version);
  return needed;
}

/**
 * The sizes of the image's own live files that are big enough for a duplicate-content finding: only a
 * file of such a size can be one (or its original), so the many files of a base image that have none
 * are neither read nor grouped.
 */
function ownSizes(overlay: Overlay, baseLayers: number): Set<number> {
  const { live, liveBytes, versionLayer } = overlay;
  const sizes = new Set<number>();
  // The live files are in layer order: the image's own come last.
  for (let k = live.length - 1; k >= 0; k--) {
    const version = live[k] as number;
    if ((versionLayer[version] as number) < baseLayers) break;
    const bytes = liveBytes[k] as number;
    if (overlay.kind(version) === KIND.file && bytes >= DUPLICATE_MIN_BYTES) sizes.add(bytes);
  }
  return sizes;
}

/** Collects findings keyed by rule and the lines involved, summing bytes and paths. */
class Findings {
  private readonly groups = new Map<string, { rule: FindingRule; layer: number; fixLayer?: number; bytes: number; paths: string[]; message: (paths: readonly string[]) => string }>();

  constructor(private readonly context: FindingContext) {}

  add(rule: FindingRule, layer: number, fixLayer: number | undefined, variant: string, bytes: number, path: string, message: (paths: readonly string[]) => string): void {
    const key = `${rule}:${layer}:${fixLayer ?? ''}:${variant}`;
    const group = this.groups.get(key) ?? { rule, layer, ...(fixLayer !== undefined ? { fixLayer } : {}), bytes: 0, paths: [], message };
    group.bytes += bytes;
    group.paths.push(`/${path}`);
    this.groups.set(key, group);
  }

  list(): Finding[] {
    const lineOf = (layer: number | undefined): number | undefined => (layer === undefined ? undefined : this.context.layers[layer]?.source?.line);
    return [...this.groups.values()]
      .filter((g) => g.bytes > 0)
      .map((g): Finding => {
        const line = lineOf(g.layer) ?? null;
        const fixLine = lineOf(g.fixLayer);
        return { rule: g.rule, bytes: g.bytes, paths: g.paths, line, ...(fixLine !== undefined && fixLine !== line ? { fixLine } : {}), layer: g.layer, message: g.message(g.paths) };
      })
      .sort((a, b) => b.bytes - a.bytes || a.layer - b.layer || a.rule.localeCompare(b.rule));
  }
}

/** What an image wastes, by rule and line. */
export function findings(overlay: Overlay, context: FindingContext): Finding[] {
  const { layers, baseLayers, fingerprint } = context;
  const out = new Findings(context);
  const facts = (layer: number): LayerFacts => layers[layer] ?? { keyword: undefined, createdBy: '', source: undefined };
  /** How a message names a layer's instruction: its line, else its command. */
  const at = (layer: number): string => {
    const { source, createdBy } = facts(layer);
    if (source) return `line ${source.line}`;
    const text = createdBy.replace(/\s+/g, ' ');
    return `layer ${layer} (${text.length > 40 ? `${text.slice(0, 40)}…` : text || 'no history'})`;
  };
  const copies = (layer: number): boolean => facts(layer).keyword === 'COPY' || facts(layer).keyword === 'ADD';
  const files = (paths: readonly string[]): string => plural(paths.length, 'file');

  const leak = (layer: number, path: string, bytes: number): boolean => {
    const found = copies(layer) ? leakOf(path) : undefined;
    if (!found) return false;
    out.add('context-leak', layer, undefined, found.name, bytes, path, (paths) => `${facts(layer).keyword ?? 'COPY'} at ${at(layer)} puts ${found.name} into the image (${files(paths)}): ${found.fix}.`);
    return true;
  };
  const cacheOf = (path: string): (typeof PACKAGE_CACHES)[number] | undefined => (ANY_PACKAGE_CACHE.test(path) ? PACKAGE_CACHES.find((c) => c.pattern.test(path)) : undefined);

  const { dead, deadBytes, endLayer, endDeleted, endBy, versionLayer, versionIndex } = overlay;
  const { findable } = context;
  for (let j = 0; j < (findable ?? dead).length; j++) {
    const k = findable ? (findable[j] as number) : j;
    const bytes = deadBytes[k] as number;
    if (bytes === 0) continue;
    const number = dead[k] as number;
    const layer = versionLayer[number] as number;
    const own = layer >= baseLayers;
    const endedBy = endLayer[number] as number;
    // What the base image wrote and deleted itself is the base image's business.
    if (!own && endedBy < baseLayers) continue;
    const path = overlay.path(number);
    if (own && leak(layer, path, bytes)) continue;
    const how = endDeleted[number] === 1 ? 'deleted' : 'overwritten';
    const byNumber = endBy[number] as number;
    const index = versionIndex[number] as number;
    const rewritten = how === 'overwritten' && rewroteSameSize(overlay, number, byNumber) && (overlay.size(number) === 0 || (fingerprint(layer, index) !== undefined && fingerprint(layer, index) === fingerprint(versionLayer[byNumber] as number, versionIndex[byNumber] as number)));
    if (rewritten) {
      const version = overlay.version(number);
      const by = overlay.version(byNumber);
      const owner = by.entry.uid !== version.entry.uid || by.entry.gid !== version.entry.gid;
      const mode = by.entry.mode !== version.entry.mode;
      const verb = /\bchown\b/.test(facts(endedBy).createdBy) || (owner && !mode) ? 'chown' : /\bchmod\b/.test(facts(endedBy).createdBy) || mode ? 'chmod' : 'rewrite';
      const flag = verb === 'chown' ? `--chown=${by.entry.uid}:${by.entry.gid}` : `--chmod=${(by.entry.mode & 0o7777).toString(8)}`;
      out.add('chown-chmod', layer, endedBy, verb, bytes, path, (paths) => {
        const them = paths.length === 1 ? 'it' : 'them';
        const what = `${at(endedBy)} writes ${files(paths)} again with the same content${verb === 'rewrite' ? '' : ` only to ${verb} ${them}`}: ${paths.length === 1 ? 'it is' : 'they are'} stored twice`;
        if (!own) return `${what}; ${paths.length === 1 ? 'it comes' : 'they come'} from the base image: ${verb === 'rewrite' ? `leave ${them} as ${paths.length === 1 ? 'it is' : 'they are'}` : `drop the ${verb}, or ${verb} only what needs it`}.`;
        if (verb !== 'rewrite' && copies(layer)) return `${what}. Set the ${verb === 'chown' ? 'owner' : 'mode'} where ${paths.length === 1 ? 'it is' : 'they are'} copied: \`${facts(layer).keyword ?? 'COPY'} ${flag}\` at ${at(layer)}, and drop the ${verb} at ${at(endedBy)}.`;
        return `${what}. ${verb === 'rewrite' ? `Write ${them} once` : `Do the ${verb} in the RUN that makes ${them} (${at(layer)})`}, not in a later layer.`;
      });
      continue;
    }
    if (!own) continue;
    const cache = cacheOf(path);
    if (cache) {
      out.add('package-cache', layer, endedBy, cache.manager, bytes, path, (paths) => `${cache.manager} (${files(paths)}) written at ${at(layer)} ${how === 'deleted' ? 'are removed' : 'are replaced'} at ${at(endedBy)}, too late: they stay in the layer of ${at(layer)}. ${cache.fix[0]?.toUpperCase()}${cache.fix.slice(1)}.`);
      continue;
    }
    out.add('deleted-later', layer, endedBy, how, bytes, path, (paths) => {
      const what = `${files(paths)} written at ${at(layer)} ${paths.length === 1 ? 'is' : 'are'} ${how === 'deleted' ? 'deleted' : 'replaced'} at ${at(endedBy)}: ${paths.length === 1 ? 'it stays' : 'they stay'} in the layer of ${at(layer)}.`;
      if (how === 'overwritten') return `${what} Write the final version once, in one instruction.`;
      if (copies(layer)) return `${what} Leave them out of the COPY (or the build context, with .dockerignore), or build in another stage and COPY --from only what the image needs.`;
      return `${what} Delete them in the RUN that makes them (move the deletion into ${at(layer)}), or build in another stage and COPY --from only what the image needs.`;
    });
  }

  const toolchain = new Map<number, { packages: Set<string>; marker: boolean }>();
  const { live, liveBytes } = overlay;
  // The live versions are in layer order: the image's own come last.
  let own = live.length;
  while (own > 0 && (versionLayer[live[own - 1] as number] as number) >= baseLayers) own--;
  for (let k = own; k < live.length; k++) {
    const layer = versionLayer[live[k] as number] as number;
    const bytes = liveBytes[k] as number;
    const path = overlay.path(live[k] as number);
    if (bytes > 0 && leak(layer, path, bytes)) continue;
    const cache = cacheOf(path);
    if (cache) {
      if (bytes > 0) out.add('package-cache', layer, undefined, cache.manager, bytes, path, (paths) => `${cache.manager} (${files(paths)}) left in the image by ${at(layer)}: ${cache.fix}.`);
      continue;
    }
    const dpkg = DPKG_LIST.exec(path)?.[1];
    const tool = TOOLCHAIN.test(path);
    if (tool || (dpkg && BUILD_PACKAGE.test(dpkg))) {
      const found = toolchain.get(layer) ?? { packages: new Set<string>(), marker: false };
      if (dpkg && BUILD_PACKAGE.test(dpkg)) found.packages.add(dpkg);
      if (dpkg || TOOLCHAIN_MARKER.test(path)) found.marker = true;
      toolchain.set(layer, found);
      if (tool && bytes > 0) {
        out.add('build-toolchain', layer, undefined, '', bytes, path, (paths) => {
          const { packages } = toolchain.get(layer) ?? { packages: new Set<string>() };
          const named = packages.size > 0 ? ` (${[...packages].sort().slice(0, 6).join(', ')}${packages.size > 6 ? ', …' : ''})` : '';
          const fix = context.singleStage === false ? 'install it in a build stage and COPY --from only what the final stage runs' : 'build in a first stage and COPY --from only the result into a final stage without it (a multi-stage build)';
          return `A build toolchain${named} is in the final image: ${files(paths)} installed at ${at(layer)}. ${fix[0]?.toUpperCase()}${fix.slice(1)}.`;
        });
      }
    }
  }

  // The same content at several paths: the first copy (lowest layer, then path) is the original.
  const byContent = new Map<string, { layer: number; path: string; bytes: number }[]>();
  const sizes = ownSizes(overlay, baseLayers);
  for (let k = 0; sizes.size > 0 && k < live.length; k++) {
    const number = live[k] as number;
    const bytes = liveBytes[k] as number;
    if (!sizes.has(bytes) || overlay.kind(number) !== KIND.file) continue;
    const layer = versionLayer[number] as number;
    const digest = fingerprint(layer, versionIndex[number] as number);
    if (digest === undefined) continue;
    const key = `${bytes}:${digest}`;
    const file = { layer, path: overlay.path(number), bytes };
    const same = byContent.get(key);
    if (same) same.push(file);
    else byContent.set(key, [file]);
  }
  for (const same of byContent.values()) {
    if (same.length < 2) continue;
    same.sort((a, b) => a.layer - b.layer || (a.path < b.path ? -1 : 1));
    const original = same[0] as (typeof same)[number];
    for (const copy of same.slice(1)) {
      const { layer, path, bytes } = copy;
      if (layer < baseLayers || leakOf(path) || cacheOf(path) || TOOLCHAIN.test(path)) continue;
      out.add('duplicate-content', layer, undefined, '', bytes, path, (paths) => `${at(layer)} writes ${files(paths)} whose content is already in the image at other paths (such as /${original.path}): keep one copy, and link to it (a symlink or a hardlink) or COPY it once.`);
    }
  }
  const found = out.list();
  // A toolchain finding needs a compiler, make or a build package, not headers alone.
  return found.filter((f) => f.rule !== 'build-toolchain' || toolchain.get(f.layer)?.marker === true);
}
