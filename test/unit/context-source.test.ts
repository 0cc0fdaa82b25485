import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isGitUrl, withoutCredentials } from '../../src/builder/git.js';
import { contextSource } from '../../src/engine/context-source.js';

describe('build context sources, as docker build tells them apart', () => {
  it('git URLs by Docker\'s rule: a git transport, github.com/, or an HTTP(S) path ending in .git before the fragment', () => {
    for (const url of ['git://example.com/r', 'git@github.com:o/r.git', 'github.com/o/r', 'https://example.com/o/r.git', 'https://example.com/o/r.git#main:dir', 'http://127.0.0.1:8080/r.git']) assert.equal(isGitUrl(url), true, url);
    for (const url of ['https://example.com/ctx.tar.gz', 'https://example.com/r.git/file', 'ftp://example.com/r.git', 'dir.git', './github.com/x']) assert.equal(isGitUrl(url), false, url);
  });

  it('PATH: - is stdin, a URL is fetched, anything else is a directory', () => {
    const stdin = (async function* () {})();
    assert.equal(contextSource('-', () => stdin).kind, 'stream');
    assert.deepEqual(contextSource('https://example.com/ctx.tar', () => stdin), { kind: 'url', url: 'https://example.com/ctx.tar' });
    assert.deepEqual(contextSource('github.com/o/r', () => stdin), { kind: 'url', url: 'github.com/o/r' });
    assert.deepEqual(contextSource('example/hello', () => stdin), { kind: 'directory', path: 'example/hello' });
  });

  it('messages show no user or password of a URL, wherever it stands in them', () => {
    assert.equal(withoutCredentials('https://user:token@example.com/o/r.git#main'), 'https://***@example.com/o/r.git#main');
    assert.equal(withoutCredentials("fatal: unable to access 'https://x-access-token:ghp_abc@github.com/o/r.git/': 403"), "fatal: unable to access 'https://***@github.com/o/r.git/': 403");
    assert.equal(withoutCredentials('https://example.com/a@b'), 'https://example.com/a@b');
    assert.equal(withoutCredentials('git@github.com:o/r.git'), 'git@github.com:o/r.git');
  });
});
