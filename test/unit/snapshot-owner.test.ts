import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ContentStore } from '../../src/content/store.js';
import { collectGarbage } from '../../src/gc/gc.js';
import { MetaDb } from '../../src/meta/db.js';
import { isAbandoned } from '../../src/snapshot/snapshotter.js';
import { tempDir } from '../helpers/paths.js';

describe('snapshot owners', () => {
  it('are recorded as data, cleared by a commit, and abandoned only once their process is gone', async () => {
    const db = new MetaDb(join(await tempDir(), 'kiln.db'));
    try {
      db.addSnapshot('extract-mine', undefined, 'active', 'overlay', { pid: process.pid, purpose: 'extract' });
      db.addSnapshot('view-gone', undefined, 'view', 'overlay', { pid: 0x3fffffff, purpose: 'view' });
      db.addSnapshot('container:abc', undefined, 'active', 'overlay');
      assert.deepEqual(db.snapshot('extract-mine')?.owner, { pid: process.pid, purpose: 'extract' });
      assert.equal(db.snapshot('container:abc')?.owner, null);
      assert.deepEqual(db.snapshots().filter(isAbandoned).map((row) => row.key), ['view-gone']);
      db.renameSnapshot('extract-mine', 'overlay:layer');
      assert.equal(db.snapshot('overlay:layer')?.owner, null, 'a committed snapshot is no process’s');
    } finally {
      db.close();
    }
  });

  it('a GC reclaims the unpacks of processes that are gone, never those of live ones, and leaves build steps to build prune', async () => {
    const content = new ContentStore(await tempDir());
    content.init();
    const db = new MetaDb(content.paths.db);
    try {
      const gone = 0x3fffffff; // above any pid_max
      db.addSnapshot('extract-gone', undefined, 'active', 'overlay', { pid: gone, purpose: 'extract' });
      db.addSnapshot('extract-this', undefined, 'active', 'overlay', { pid: process.pid, purpose: 'extract' });
      db.addSnapshot('extract-parent', undefined, 'active', 'overlay', { pid: process.ppid, purpose: 'extract' });
      db.addSnapshot('build-gone', undefined, 'active', 'overlay', { pid: gone, purpose: 'build' });
      await collectGarbage(content, db);
      assert.deepEqual(db.snapshots().map((row) => row.key), ['extract-this', 'extract-parent', 'build-gone']);
    } finally {
      db.close();
    }
  });

  it('of a store made before they were recorded are taken from the old keys once, when it is opened', async () => {
    const path = join(await tempDir(), 'kiln.db');
    new MetaDb(path).close();
    // The store as the kiln before this schema left it: no owner columns, the owner's pid in the key.
    const raw = new Database(path);
    const version = raw.pragma('user_version', { simple: true }) as number;
    raw.exec('ALTER TABLE snapshots DROP COLUMN owner_pid; ALTER TABLE snapshots DROP COLUMN purpose');
    const insert = raw.prepare("INSERT INTO snapshots (key, dir, parent, kind, driver, created_at) VALUES (?, ?, NULL, ?, 'overlay', 0)");
    insert.run('extract-4321-0123456789ab', 1, 'active');
    insert.run('build-77-00ff00ff00ff', 2, 'active');
    insert.run('view-8-00ff00ff00ff', 3, 'view');
    insert.run(`overlay:sha256:${'a'.repeat(64)}`, 4, 'committed');
    insert.run('container:extract-5-x', 5, 'active');
    raw.pragma(`user_version = ${version - 1}`);
    raw.close();
    const db = new MetaDb(path);
    try {
      assert.equal(db.schemaVersion, version);
      assert.deepEqual(
        db.snapshots().map((row) => [row.key, row.owner]),
        [
          ['extract-4321-0123456789ab', { pid: 4321, purpose: 'extract' }],
          ['build-77-00ff00ff00ff', { pid: 77, purpose: 'build' }],
          ['view-8-00ff00ff00ff', { pid: 8, purpose: 'view' }],
          [`overlay:sha256:${'a'.repeat(64)}`, null],
          ['container:extract-5-x', null],
        ],
      );
    } finally {
      db.close();
    }
  });
});
