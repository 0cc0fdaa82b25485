import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { dumpNode, parseDockerfile } from '../../src/dockerfile/parser.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceDir } from '../helpers/paths.js';

const corpus = join(conformanceDir, 'dockerfile-parser');

describe('Dockerfile parser (BuildKit conformance corpus)', () => {
  it('parses every testfiles case to its result', () => {
    const cases = readdirSync(join(corpus, 'testfiles'));
    assert.ok(cases.length >= 33, `only ${cases.length} cases found`);
    const failures: string[] = [];
    for (const name of cases) {
      const source = readFileSync(join(corpus, 'testfiles', name, 'Dockerfile'), 'utf8');
      const expected = readFileSync(join(corpus, 'testfiles', name, 'result'), 'utf8');
      try {
        const dump = parseDockerfile(source).nodes.map((node) => dumpNode(node) + '\n').join('');
        if (dump !== expected) failures.push(`${name}:\n--- expected\n${expected}--- got\n${dump}`);
      } catch (err) {
        failures.push(`${name}: ${String(err)}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('rejects every testfiles-negative case with a syntax error', () => {
    for (const name of readdirSync(join(corpus, 'testfiles-negative'))) {
      const source = readFileSync(join(corpus, 'testfiles-negative', name, 'Dockerfile'), 'utf8');
      assert.throws(() => parseDockerfile(source), (err) => isKilnError(err, 'INVALID_INPUT'), name);
    }
  });

  it('records the source lines of each instruction', () => {
    const parsed = parseDockerfile(readFileSync(join(corpus, 'testfile-line', 'Dockerfile'), 'utf8'));
    assert.deepEqual(
      parsed.nodes.map((node) => [node.startLine, node.endLine]),
      [
        [5, 5],
        [11, 12],
        [17, 31],
      ],
    );
  });
});

describe('Dockerfile heredocs', () => {
  it('reads bodies for RUN and COPY, quoted and chomped delimiters, several per line', () => {
    const parsed = parseDockerfile(
      [
        'FROM busybox',
        'RUN <<EOF',
        'echo $HOME',
        'EOF',
        'COPY <<-"A" <<B /dest/',
        '\t\tliteral $x',
        '\tA',
        'second',
        'B',
        'RUN cat <<EOF > /out',
        'EOF',
        'CMD ["sh"]',
      ].join('\n'),
    );
    const [from, run, copy, runEmpty, cmd] = parsed.nodes;
    assert.equal(from?.heredocs.length, 0);
    assert.deepEqual(run?.heredocs, [{ name: 'EOF', content: 'echo $HOME\n', expand: true, chomp: false, fileDescriptor: 0 }]);
    assert.deepEqual(
      copy?.heredocs.map((doc) => [doc.name, doc.content, doc.expand, doc.chomp]),
      [
        ['A', '\t\tliteral $x\n', false, true],
        ['B', 'second\n', true, false],
      ],
    );
    assert.deepEqual([copy?.startLine, copy?.endLine], [5, 9]);
    assert.equal(runEmpty?.heredocs[0]?.content, '');
    assert.equal(cmd?.startLine, 12);
  });

  it('rejects an unterminated heredoc with its line', () => {
    assert.throws(
      () => parseDockerfile('FROM busybox\nRUN <<EOF\necho hi\n'),
      (err) => isKilnError(err, 'INVALID_INPUT') && /unterminated heredoc/.test(err.message),
    );
  });

  it('ignores heredoc syntax in JSON form and in other instructions', () => {
    const parsed = parseDockerfile('FROM busybox\nRUN ["sh", "-c", "cat <<EOF"]\nENV A=<<EOF\n');
    assert.deepEqual(
      parsed.nodes.map((node) => node.heredocs.length),
      [0, 0, 0],
    );
  });

  it('reads directives only at the top', () => {
    assert.equal(parseDockerfile('# escape=`\nFROM a\n').directives.escape, '`');
    assert.equal(parseDockerfile('# hello\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.throws(() => parseDockerfile('# escape=x\nFROM a\n'), /invalid escape token/);
    assert.throws(() => parseDockerfile('# escape=`\n# escape=\\\nFROM a\n'), /only one escape/);
  });
});
