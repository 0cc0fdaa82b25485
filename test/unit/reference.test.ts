import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { familiarName, familiarString, parseReference, referenceString, splitWrittenReference, storedReference, withDefaultTag } from '../../src/reference/reference.js';

const HEX = 'a'.repeat(64);

describe('reference: normalization (distribution/reference ParseNormalizedNamed)', () => {
  const cases: [string, string, string][] = [
    // input, normalized with default tag, familiar
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:lab', 'docker.io/library/busybox:lab', 'busybox:lab'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/library/busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['user/repo', 'docker.io/user/repo:latest', 'user/repo:latest'],
    ['library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest'],
    ['localhost/foo', 'localhost/foo:latest', 'localhost/foo:latest'],
    ['localhost:5000/a/b:t', 'localhost:5000/a/b:t', 'localhost:5000/a/b:t'],
    ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x:latest'],
    ['foo.com:8080/bar', 'foo.com:8080/bar:latest', 'foo.com:8080/bar:latest'],
    ['Foo.com/bar', 'Foo.com/bar:latest', 'Foo.com/bar:latest'],
    ['localhost:5000', 'docker.io/library/localhost:5000', 'localhost:5000'],
    ['a_b.c-d__e---f', 'docker.io/library/a_b.c-d__e---f:latest', 'a_b.c-d__e---f:latest'],
    [`busybox@sha256:${HEX}`, `docker.io/library/busybox@sha256:${HEX}`, `busybox@sha256:${HEX}`],
    [`ghcr.io/o/r:v1@sha256:${HEX}`, `ghcr.io/o/r:v1@sha256:${HEX}`, `ghcr.io/o/r:v1@sha256:${HEX}`],
  ];
  for (const [input, normalized, familiar] of cases) {
    it(`${input} → ${normalized}`, () => {
      const ref = withDefaultTag(parseReference(input));
      assert.equal(referenceString(ref), normalized);
      assert.equal(familiarString(ref), familiar);
      assert.equal(referenceString(withDefaultTag(parseReference(familiar))), normalized, 'familiar form round trips');
      // What kiln wrote itself splits without the grammar, to the same parts.
      assert.deepEqual(storedReference(normalized), ref, 'a stored name splits to the reference');
      const { name, ...rest } = splitWrittenReference(familiar);
      assert.deepEqual({ name, ...rest }, { name: familiarName(ref), ...(ref.tag !== undefined ? { tag: ref.tag } : {}), ...(ref.digest !== undefined ? { digest: ref.digest } : {}) }, 'a familiar name splits to its parts');
    });
  }

  it('keeps tag and digest and names the repository', () => {
    const ref = parseReference(`localhost:5000/a/b:t@sha256:${HEX}`);
    assert.deepEqual(ref, { domain: 'localhost:5000', path: 'a/b', tag: 't', digest: `sha256:${HEX}` });
    assert.equal(familiarName(ref), 'localhost:5000/a/b');
  });
});

describe('reference: invalid input gets Docker\'s message', () => {
  const cases: [string, RegExp][] = [
    ['', /at least one component/],
    ['Busybox', /repository name \(library\/Busybox\) must be lowercase/],
    ['docker.io/Foo/bar', /repository name \(Foo\/bar\) must be lowercase/],
    ['a:-bad', /invalid tag format/],
    [`a:${'t'.repeat(129)}`, /invalid tag format/],
    ['a@sha256:abc', /invalid digest format/],
    [`a@sha256:${'A'.repeat(64)}`, /invalid digest format/],
    ['::', /invalid reference format/],
    ['a/', /invalid reference format/],
    ['a//b', /invalid reference format/],
    ['../../evil:lab', /invalid reference format/],
    ['a..b', /invalid reference format/],
    ['-a', /invalid reference format/],
    [HEX, /64-byte hexadecimal/],
    [`a/${'b'.repeat(260)}`, /not be more than 255 characters/],
  ];
  for (const [input, message] of cases) {
    it(JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input), () => {
      assert.throws(() => parseReference(input), (err) => isKilnError(err, 'INVALID_REFERENCE') && message.test(err.message) && !err.message.includes('\n'));
    });
  }
});
