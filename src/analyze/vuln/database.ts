/**
 * The advisory database of `kiln scan --db PATH`: a directory of OSV JSON records or a zip of them (what
 * osv.dev exports per ecosystem). It is indexed once by (release, package name) into a SQLite file under
 * the store's cache, named by the database's hash (the zip's bytes; for a directory, its listing of names,
 * sizes and modification times), so later scans of the same database read only the rows of the packages
 * they look up. So that a later scan need not even read a zip to hash it, the zip's hash is remembered by
 * its stat (device, inode, size, modification and change times; any write changes the change time). The
 * index is written to a temporary name and renamed into place: a scan killed while
 * indexing leaves no half index, and two scans indexing at once both end with a whole one.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { KilnError, isErrno } from '../../errors.js';
import { openSqlite } from '../../meta/db.js';
import { type Advisory, type PackageKey, advisoriesOf, keyString, osvPackageKey } from './osv.js';
import { readZip } from './zip.js';

/** Bumped when the index's layout or the reduction of records changes, so old indexes are not read. */
const INDEX_FORMAT = 2;
/** One record is a few KiB; this bounds a hostile one. */
const MAX_RECORD_BYTES = 32 << 20;
const MAX_ZIP_BYTES = 2 ** 31 - 1;
const MAX_TOTAL_BYTES = 16 * 2 ** 30;

export interface OsvIndex {
  /** The index file. */
  readonly path: string;
  /** The database's hash, which names the index. */
  readonly hash: string;
  /** True when this scan built the index (read every record); false when it reused one. */
  readonly built: boolean;
  /** Records read when it was built, and how many of those were withdrawn. */
  readonly records: number;
  readonly withdrawn: number;
  /** The advisories for one package. */
  lookup(key: PackageKey): Advisory[];
  close(): void;
}

/** A record file's text, and the name it is reported by. */
interface RecordSource {
  readonly kind: 'zip' | 'directory';
  readonly hash: string;
  /** Each record's name and JSON text, read as they are asked for. */
  records(): Iterable<{ name: string; text: () => Promise<string> }>;
}

async function jsonFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if ((entry.isFile() || entry.isSymbolicLink()) && entry.name.endsWith('.json')) out.push(path);
    }
  };
  await walk(root);
  return out.sort();
}

async function directorySource(dir: string): Promise<RecordSource> {
  const files = await jsonFiles(dir);
  const hash = createHash('sha256');
  const sizes = new Map<string, number>();
  // Stats in batches: a 100,000-file database is listed in a fraction of a second.
  for (let i = 0; i < files.length; i += 256) {
    const batch = files.slice(i, i + 256);
    const stats = await Promise.all(batch.map((file) => stat(file)));
    stats.forEach((s, n) => {
      const file = batch[n] as string;
      sizes.set(file, s.size);
      hash.update(`${relative(dir, file)}\0${s.size}\0${s.mtimeMs}\n`);
    });
  }
  return {
    kind: 'directory',
    hash: hash.digest('hex'),
    *records() {
      for (const file of files) {
        const size = sizes.get(file) ?? 0;
        if (size > MAX_RECORD_BYTES) throw new KilnError('INVALID_INPUT', `${file}: ${size} bytes, over the ${MAX_RECORD_BYTES}-byte bound for one OSV record`);
        yield { name: file, text: () => readFile(file, 'utf8') };
      }
    },
  };
}

async function zipSource(path: string, size: number): Promise<RecordSource> {
  if (size > MAX_ZIP_BYTES) throw new KilnError('INVALID_INPUT', `--db ${path}: ${size} bytes: kiln reads zips of up to 2 GiB (unpack it and give the directory)`);
  const zip = await readFile(path);
  if (zip.length < 4 || zip.readUInt32LE(0) !== 0x04034b50) {
    if (zip.length !== 22 || zip.readUInt32LE(0) !== 0x06054b50) throw new KilnError('INVALID_INPUT', `--db ${path}: not a zip archive nor a directory of OSV JSON records`);
  }
  const hash = createHash('sha256').update(zip).digest('hex');
  return {
    kind: 'zip',
    hash,
    *records() {
      for (const entry of readZip(zip, path, { maxEntryBytes: MAX_RECORD_BYTES, maxTotalBytes: MAX_TOTAL_BYTES })) {
        if (!entry.name.endsWith('.json')) continue;
        yield { name: `${path}:${entry.name}`, text: () => Promise.resolve(entry.read().toString('utf8')) };
      }
    },
  };
}

async function statDatabase(path: string): Promise<BigIntStats> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new KilnError('NOT_FOUND', `--db ${path}: no such file or directory`);
    if (isErrno(err, 'EACCES')) throw new KilnError('INVALID_ARGUMENT', `--db ${path}: permission denied`);
    throw err;
  }
}

/** The name of the file that remembers a zip's hash while its stat is unchanged. */
function hashMemo(cacheDir: string, path: string, info: BigIntStats): string {
  const identity = [resolve(path), info.dev, info.ino, info.size, info.mtimeNs, info.ctimeNs].join('\0');
  return join(cacheDir, `zip-${createHash('sha256').update(identity).digest('hex')}.hash`);
}

const indexPath = (cacheDir: string, kind: RecordSource['kind'], hash: string): string => join(cacheDir, `osv-${INDEX_FORMAT}-${kind}-${hash}.sqlite`);

function openIndex(path: string, hash: string, built: boolean): OsvIndex {
  const db = openSqlite(path, { readonly: true, fileMustExist: true });
  try {
    const meta = Object.fromEntries((db.prepare('SELECT name, value FROM meta').all() as { name: string; value: number }[]).map((row) => [row.name, row.value]));
    if (meta.complete !== 1) throw new Error('incomplete index');
    const select = db.prepare('SELECT body FROM advisories WHERE key = ?').pluck();
    return {
      path,
      hash,
      built,
      records: meta.records ?? 0,
      withdrawn: meta.withdrawn ?? 0,
      lookup: (key) => (select.all(keyString(key)) as string[]).map((body) => JSON.parse(body) as Advisory),
      close: () => db.close(),
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

async function buildIndex(source: RecordSource, path: string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const db = openSqlite(temporary);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    // Clustered by key: one package's advisories are on neighbouring pages, so a lookup reads few.
    db.exec('CREATE TABLE advisories (key TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (key, seq)) WITHOUT ROWID; CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)');
    const insert = db.prepare('INSERT INTO advisories (key, seq, body) VALUES (?, ?, ?)');
    let seq = 0;
    let records = 0;
    let withdrawn = 0;
    let batch: Advisory[] = [];
    const flush = db.transaction((advisories: Advisory[]) => {
      for (const advisory of advisories) {
        const key = osvPackageKey(advisory.ecosystem, advisory.name);
        if (key) insert.run(keyString(key), seq++, JSON.stringify(advisory));
      }
    });
    for (const record of source.records()) {
      const text = await record.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new KilnError('INVALID_INPUT', `${record.name}: not JSON (${(err as Error).message})`);
      }
      // A file may hold one record or, as some exports write them, a list of records.
      for (const one of Array.isArray(json) ? json : [json]) {
        records++;
        if (typeof one === 'object' && one !== null && 'withdrawn' in one) withdrawn++;
        batch.push(...advisoriesOf(one, record.name));
      }
      if (batch.length >= 5000) {
        flush(batch);
        batch = [];
      }
    }
    flush(batch);
    db.prepare('INSERT INTO meta (name, value) VALUES (?, ?), (?, ?), (?, ?)').run('records', records, 'withdrawn', withdrawn, 'complete', 1);
    db.close();
    // The index is only a cache, but a power cut must not leave a torn one under the final name.
    const handle = await open(temporary, 'r');
    await handle.sync().finally(() => handle.close());
    await rename(temporary, path);
  } catch (err) {
    if (db.open) db.close();
    await rm(temporary, { force: true });
    throw err;
  }
}

/** The index of the database at `dbPath`, built into `cacheDir` unless an index of the same database is there. */
export async function openOsvIndex(dbPath: string, cacheDir: string): Promise<OsvIndex> {
  const info = await statDatabase(dbPath);
  const memo = info.isDirectory() ? undefined : hashMemo(cacheDir, dbPath, info);
  const remembered = memo !== undefined ? await readFile(memo, 'utf8').catch(() => '') : '';
  if (/^[0-9a-f]{64}$/.test(remembered)) {
    try {
      return openIndex(indexPath(cacheDir, 'zip', remembered), remembered, false);
    } catch {
      // The index went (a cache cleaned by hand): read the zip again.
    }
  }
  const source = info.isDirectory() ? await directorySource(dbPath) : await zipSource(dbPath, Number(info.size));
  const path = indexPath(cacheDir, source.kind, source.hash);
  let index: OsvIndex | undefined;
  try {
    index = openIndex(path, source.hash, false);
  } catch {
    // No index yet, or one that cannot be read: (re)build it.
  }
  if (!index) {
    await mkdir(cacheDir, { recursive: true });
    await buildIndex(source, path);
    index = openIndex(path, source.hash, true);
  }
  if (memo !== undefined) {
    const temporary = `${memo}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(temporary, source.hash);
    await rename(temporary, memo);
  }
  return index;
}
