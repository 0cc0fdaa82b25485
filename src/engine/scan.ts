/**
 * `kiln scan`: an image's packages (its SBOM, or a saved one with `sbom:FILE`) matched against an OSV
 * database, indexed once into the store's cache (`cache/osv/`), with the user's policy applied.
 */
import { readFile } from 'node:fs/promises';
import { storePaths } from '../content/paths.js';
import type { Sbom } from '../analyze/sbom/model.js';
import { openOsvIndex } from '../analyze/vuln/database.js';
import { type Finding, matchSbom } from '../analyze/vuln/match.js';
import { type SeverityName, applyPolicy, parseIgnoreFile } from '../analyze/vuln/policy.js';
import { parseSbomJson } from '../analyze/vuln/sbom-input.js';
import { KilnError, isErrno, storeWriteError } from '../errors.js';
import type { Engine } from './engine.js';
import { type SbomOptions, sbomOf } from './sbom.js';

export interface ScanOptions {
  /** `--db PATH`: a directory or zip of OSV JSON records. */
  readonly db: string;
  readonly severities?: readonly SeverityName[] | undefined;
  readonly ignoreUnfixed?: boolean | undefined;
  readonly ignoreFile?: string | undefined;
  /** Today, for the ignore file's expiry dates (tests set it). */
  readonly now?: Date | undefined;
}

/** Where a store keeps the indexes of the databases it has scanned against. */
async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new KilnError('NOT_FOUND', `${what} ${path}: no such file`);
    if (isErrno(err, 'EISDIR')) throw new KilnError('INVALID_ARGUMENT', `${what} ${path}: is a directory, not a file`);
    if (isErrno(err, 'EACCES')) throw new KilnError('INVALID_ARGUMENT', `${what} ${path}: permission denied`);
    throw err;
  }
}

/** What a scan found, as plain data the front ends format. */
export interface ScanReport {
  readonly sbom: Sbom;
  readonly findings: readonly Finding[];
  readonly database: { readonly path: string; readonly hash: string; readonly records: number; readonly indexBuilt: boolean };
  /** Findings the policy left out: ignored by ID, unfixed, at another severity. */
  readonly omitted: { readonly ignored: number; readonly unfixed: number; readonly otherSeverity: number };
  /** Packages no advisory could be looked up for. */
  readonly unmatched: number;
}

/** `sbom:FILE`: kiln's SBOM JSON, checked. */
export async function readSbomFile(path: string): Promise<Sbom> {
  return parseSbomJson(await readText(path, 'sbom:'), path);
}

/**
 * Matches an SBOM against the database, indexing it into the store at `storeRoot` first when no index of
 * it is there. Needs no open store: a scan of a saved SBOM reads only the index.
 */
export async function scanSbom(sbom: Sbom, storeRoot: string, options: ScanOptions): Promise<ScanReport> {
  // The cheap inputs first, so a typo in the ignore file fails before a long indexing.
  const ignore = options.ignoreFile !== undefined ? parseIgnoreFile(await readText(options.ignoreFile, '--ignore-file'), options.ignoreFile) : undefined;
  const cacheDir = storePaths(storeRoot).osvCache;
  const index = await openOsvIndex(options.db, cacheDir).catch((err: unknown) => {
    if (['EACCES', 'EPERM', 'EROFS', 'SQLITE_CANTOPEN', 'SQLITE_READONLY'].some((code) => isErrno(err, code))) {
      throw new KilnError('INVALID_ARGUMENT', `cannot write the database's index into ${cacheDir} (${(err as Error).message}): use a store you can write (--root)`, { cause: err });
    }
    throw storeWriteError(err, storeRoot, cacheDir);
  });
  try {
    const { findings, unmatched } = matchSbom(sbom, (key) => index.lookup(key));
    const policy = applyPolicy(findings, { severities: options.severities, ignoreUnfixed: options.ignoreUnfixed, ignore, now: options.now ?? new Date() });
    return {
      sbom,
      findings: policy.kept,
      database: { path: options.db, hash: index.hash, records: index.records, indexBuilt: index.built },
      omitted: { ignored: policy.ignored, unfixed: policy.unfixed, otherSeverity: policy.belowSeverity },
      unmatched,
    };
  } finally {
    index.close();
  }
}

/** `kiln scan SOURCE`: an image's SBOM, as `kiln sbom` makes it, matched against the database. */
export async function scanSource(engine: Engine, sourceText: string, options: ScanOptions & { readonly source?: SbomOptions }): Promise<ScanReport> {
  const sbom = sourceText.startsWith('sbom:') ? await readSbomFile(sourceText.slice('sbom:'.length)) : await sbomOf(engine, sourceText, options.source);
  return scanSbom(sbom, engine.store.root, options);
}
