import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DockerfileSyntaxError, dumpNode, parseDockerfile } from '../../src/dockerfile/parser.js';
import { isKilnError } from '../../src/errors.js';
import { conformanceCorpus } from '../helpers/paths.js';

/** The source, dumped as BuildKit's Node.Dump prints each instruction. */
function dump(source: string): string[] {
  return parseDockerfile(source).nodes.map((node) => dumpNode(node));
}

/** Expects `source` to be refused with a one-line INVALID_INPUT error matching `message`. */
function refuses(source: string, message: RegExp): void {
  assert.throws(() => parseDockerfile(source), (err) => isKilnError(err, 'INVALID_INPUT') && message.test(err.message) && !err.message.includes('\n'), JSON.stringify(source));
}

// BuildKit's parser cases (frontend/dockerfile/parser/testfiles): an optional external corpus, read in place.
const corpus = conformanceCorpus('dockerfile-parser');

describe('Dockerfile parser (BuildKit conformance corpus)', { skip: corpus.skip }, () => {
  it('parses every testfiles case to its result', () => {
    const cases = readdirSync(corpus.path('testfiles'));
    assert.ok(cases.length >= 33, `only ${cases.length} cases found`);
    const failures: string[] = [];
    for (const name of cases) {
      const source = readFileSync(corpus.path('testfiles', name, 'Dockerfile'), 'utf8');
      const expected = readFileSync(corpus.path('testfiles', name, 'result'), 'utf8');
      try {
        const got = dump(source).map((line) => line + '\n').join('');
        if (got !== expected) failures.push(`${name}:\n--- expected\n${expected}--- got\n${got}`);
      } catch (err) {
        failures.push(`${name}: ${String(err)}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('rejects every testfiles-negative case with a syntax error', () => {
    for (const name of readdirSync(corpus.path('testfiles-negative'))) {
      const source = readFileSync(corpus.path('testfiles-negative', name, 'Dockerfile'), 'utf8');
      assert.throws(() => parseDockerfile(source), (err) => isKilnError(err, 'INVALID_INPUT'), name);
    }
  });

  it('records the source lines of each instruction', () => {
    const parsed = parseDockerfile(readFileSync(corpus.path('testfile-line', 'Dockerfile'), 'utf8'));
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

/*
 * The project's own cases, written from BuildKit's parser rules (frontend/dockerfile/parser: parser.go,
 * line_parsers.go, split_command.go) and Docker's Dockerfile reference. Each expectation is the dump BuildKit
 * prints (Node.Dump: the keyword lowercased, flags as a Go-quoted list, each argument Go-quoted). The ones
 * marked "BuildKit live" were also built with dockerd 20.10's BuildKit (FROM scratch) and the image config
 * it wrote checked against them.
 */
describe('Dockerfile parser: line handling', () => {
  it('joins continued lines: the escape and the blanks after it go, continued lines keep their indentation (BuildKit live)', () => {
    assert.deepEqual(dump('FROM a\nRUN echo one \\\n    two\nLABEL x="a\\ \t\n    b"\n'), ['(from "a")', '(run "echo one     two")', '(label "x" "\\"a    b\\"" "=")']);
  });

  it('keeps an escaped escape at the end of a line as text, not a continuation', () => {
    assert.deepEqual(dump('FROM a\nRUN echo a\\\\\nRUN echo b\n'), ['(from "a")', '(run "echo a\\\\\\\\")', '(run "echo b")']);
  });

  it('takes a line that is only the escape as an empty piece of the instruction', () => {
    assert.deepEqual(dump('FROM a\nRUN a \\\n\\\n b\n'), ['(from "a")', '(run "a  b")']);
  });

  it('ends an instruction continued on the last line at the end of the file', () => {
    assert.deepEqual(dump('FROM a\nRUN echo end \\'), ['(from "a")', '(run "echo end")']);
  });

  it('skips comment lines inside a continuation, indented or not, and keeps # inside an instruction (BuildKit live)', () => {
    const source = '# leading comment\nFROM a\n    # indented comment\nRUN echo \\\n# inside\n   # indented inside\n  hello\nRUN echo a # not a comment\n';
    assert.deepEqual(dump(source), ['(from "a")', '(run "echo   hello")', '(run "echo a # not a comment")']);
  });

  it('skips blank lines inside a continuation, with a warning that names the instruction and its first line', () => {
    const parsed = parseDockerfile('FROM a\nRUN echo a \\\n\n   \t\n    b\n');
    assert.deepEqual(parsed.nodes.map((node) => dumpNode(node)), ['(from "a")', '(run "echo a     b")']);
    assert.deepEqual(parsed.warnings, [{ line: 2, message: 'Empty continuation line found in: RUN echo a     b' }]);
    assert.deepEqual(parseDockerfile('FROM a\nRUN b \\\n c\n').warnings, []);
  });

  it('reads CRLF line endings, a byte-order mark, indentation and blank lines between instructions', () => {
    assert.deepEqual(dump('\uFEFFFROM a\r\nRUN echo a \\\r\n  b\r\n'), ['(from "a")', '(run "echo a   b")']);
    assert.deepEqual(dump('\n  FROM a  \n\t\n\n   RUN   b   \n'), ['(from "a")', '(run "b")']);
  });

  it('records the first and last source line of each instruction, counting comments, blanks and heredoc bodies', () => {
    const source = ['# comment', '', 'FROM a', 'RUN one \\', '# inside', '', '    two', 'COPY <<EOF /x', 'body', 'EOF', 'CMD ["x"]'].join('\n');
    assert.deepEqual(
      parseDockerfile(source).nodes.map((node) => [node.keyword, node.startLine, node.endLine]),
      [
        ['from', 3, 3],
        ['run', 4, 7],
        ['copy', 8, 10],
        ['cmd', 11, 11],
      ],
    );
  });
});

describe('Dockerfile parser: parser directives', () => {
  it('the escape directive makes ` the escape: it continues lines, and \\ is plain text (BuildKit live)', () => {
    const parsed = parseDockerfile('# escape=`\nFROM a\nRUN echo a `\n    b\nCOPY C:\\src C:\\dst\\\nRUN dir c:\\\n');
    assert.equal(parsed.directives.escape, '`');
    assert.deepEqual(parsed.nodes.map((node) => dumpNode(node)), ['(from "a")', '(run "echo a     b")', '(copy "C:\\\\src" "C:\\\\dst\\\\")', '(run "dir c:\\\\")']);
  });

  it('reads directives only in the unbroken run of them at the very top (BuildKit live)', () => {
    // After a comment, a blank line or an unknown directive, `# escape=` is a comment: \ stays the escape.
    for (const before of ['# a comment\n', '\n', '# unknown=1\n']) {
      const parsed = parseDockerfile(`${before}# escape=\`\nFROM a\nRUN echo \`\n`);
      assert.equal(parsed.directives.escape, '\\', JSON.stringify(before));
      assert.deepEqual(parsed.nodes.map((node) => dumpNode(node)), ['(from "a")', '(run "echo `")']);
    }
    assert.equal(parseDockerfile('FROM a\n# escape=`\nRUN b\n').directives.escape, '\\', 'not after an instruction');
  });

  it('takes directive names in any case, with blanks around = and the value', () => {
    const parsed = parseDockerfile('#  ESCAPE = `  \n#Syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n');
    assert.deepEqual(parsed.directives, { escape: '`', syntax: 'docker/dockerfile:1', check: 'skip=all' });
    assert.deepEqual(dump('# syntax=docker/dockerfile:1\nFROM a\n'), ['(from "a")'], 'a directive is no instruction');
  });

  it('reads a directive after a byte-order mark', () => {
    assert.deepEqual(dump('\uFEFF# escape=`\nFROM a\nRUN a `\n b\n'), ['(from "a")', '(run "a  b")']);
  });

  it('refuses a second directive of a name and an escape that is not \\ or `, with the line', () => {
    refuses('# escape=\\\n# escape=`\nFROM a\n', /only one escape parser directive can be used/);
    refuses('# syntax=a\n# syntax=b\nFROM a\n', /only one syntax parser directive can be used/);
    refuses('# escape=x\nFROM a\n', /invalid escape token 'x' does not match ` or \\/);
    assert.throws(() => parseDockerfile('# escape=\\\n# escape=`\nFROM a\n'), (err) => err instanceof DockerfileSyntaxError && err.startLine === 2);
  });
});

describe('Dockerfile parser: exec (JSON) and shell forms', () => {
  it('takes a JSON array of strings as the exec form, JSON escapes decoded (BuildKit live)', () => {
    assert.deepEqual(dump('FROM a\nRUN ["/bin/sh", "-c", "echo \\"q\\" \\u00e9"]\nCMD [ "x" ,"y" ]\nENTRYPOINT ["e"]\nSHELL ["pwsh", "-command"]\n'), [
      '(from "a")',
      '(run "/bin/sh" "-c" "echo \\"q\\" é")',
      '(cmd "x" "y")',
      '(entrypoint "e")',
      '(shell "pwsh" "-command")',
    ]);
    const [, run] = parseDockerfile('FROM a\nRUN ["a"]\nRUN a\n').nodes;
    assert.equal(run?.json, true);
  });

  it('takes an empty JSON array as no arguments', () => {
    assert.deepEqual(dump('FROM a\nCMD []\nENTRYPOINT [ ]\n'), ['(from "a")', '(cmd)', '(entrypoint)']);
  });

  it('takes whatever is not a JSON array as the shell form, spacing and quotes untouched (BuildKit live)', () => {
    assert.deepEqual(dump("FROM a\nRUN  echo  \"a  b\"   'c'  \nCMD ['single', 'quotes']\nENTRYPOINT [\"unterminated\nRUN [\"a\", \"b\"\nRUN [ -f /x ] && echo yes\nCMD \"[\\\"in a string\\\"]\"\n"), [
      '(from "a")',
      '(run "echo  \\"a  b\\"   \'c\'")',
      '(cmd "[\'single\', \'quotes\']")',
      '(entrypoint "[\\"unterminated")',
      '(run "[\\"a\\", \\"b\\"")',
      '(run "[ -f /x ] && echo yes")',
      '(cmd "\\"[\\\\\\"in a string\\\\\\"]\\"")',
    ]);
    const [, run] = parseDockerfile('FROM a\nRUN [ -f /x ]\n').nodes;
    assert.equal(run?.json, false);
  });

  it('refuses a JSON array that holds anything but strings (BuildKit live)', () => {
    refuses('FROM a\nCMD ["a", ["b"]]\n', /JSON array .*only strings/);
    refuses('FROM a\nRUN ["a", 1]\n', /JSON array .*only strings/);
    refuses('FROM a\nVOLUME ["/a", true]\n', /JSON array .*only strings/);
  });

  it('splits ADD, COPY and VOLUME on blanks, without quote handling, unless they are JSON (BuildKit live for VOLUME)', () => {
    assert.deepEqual(dump('FROM a\nCOPY  a   b\tc  /dst/\nADD ["with space.txt", "/dst/"]\nVOLUME /data /logs\nVOLUME ["/v"]\nCOPY "a b" /dst\n'), [
      '(from "a")',
      '(copy "a" "b" "c" "/dst/")',
      '(add "with space.txt" "/dst/")',
      '(volume "/data" "/logs")',
      '(volume "/v")',
      '(copy "\\"a" "b\\"" "/dst")',
    ]);
  });
});

describe('Dockerfile parser: each instruction\'s arguments', () => {
  it('lowercases the keyword in any case and splits FROM and EXPOSE on blanks', () => {
    assert.deepEqual(dump('from  alpine:3.19   AS   build\nExPoSe 80/tcp  443 53/udp\n'), ['(from "alpine:3.19" "AS" "build")', '(expose "80/tcp" "443" "53/udp")']);
  });

  it('takes leading --flags off, quotes removed and \\ escaping, up to the first other word or a bare --', () => {
    assert.deepEqual(dump('FROM --platform=$BUILDPLATFORM golang AS b\nRUN --mount=type=cache,target=/root/.cache --network=none make\nCOPY --chown="app user" --from=b /src --chmod=644 /dst\nRUN --network=none -- --not-a-flag\nCOPY --chown=a\\ b x y\n'), [
      '(from ["--platform=$BUILDPLATFORM"] "golang" "AS" "b")',
      '(run ["--mount=type=cache,target=/root/.cache" "--network=none"] "make")',
      '(copy ["--chown=app user" "--from=b"] "/src" "--chmod=644" "/dst")',
      '(run ["--network=none"] "--not-a-flag")',
      '(copy ["--chown=a b"] "x" "y")',
    ]);
  });

  it('ENV and LABEL: name=value pairs with quotes and escapes kept for later, or the old NAME value form (BuildKit live)', () => {
    assert.deepEqual(dump('FROM a\nENV A=1 B="two words" C=three\\ words D=\nLABEL "com.example.vendor"="ACME Inc" say="he said \\"hi\\"" version=1.0\nENV NAME  value with   spaces\nLABEL maintainer someone@example.com\n'), [
      '(from "a")',
      '(env "A" "1" "=" "B" "\\"two words\\"" "=" "C" "three\\\\ words" "=" "D" "" "=")',
      '(label "\\"com.example.vendor\\"" "\\"ACME Inc\\"" "=" "say" "\\"he said \\\\\\"hi\\\\\\"\\"" "=" "version" "1.0" "=")',
      '(env "NAME" "value with   spaces" "")',
      '(label "maintainer" "someone@example.com" "")',
    ]);
    assert.deepEqual(dump('FROM a\nENV\nLABEL\n'), ['(from "a")', '(env)', '(label)']);
  });

  it('refuses an ENV or LABEL pair without = and an old-form ENV without a value (BuildKit live)', () => {
    refuses('FROM a\nLABEL a=b c\n', /can't find = in "c"\. Must be of the form: name=value/);
    refuses('FROM a\nENV A=1 B\n', /can't find = in "B"/);
    refuses('FROM a\nENV ONLYNAME\n', /ENV must have two arguments/);
    refuses('FROM a\nLABEL ONLYNAME   \n', /LABEL must have two arguments/);
    assert.throws(() => parseDockerfile('FROM a\n\nENV ONLYNAME\n'), (err) => err instanceof DockerfileSyntaxError && err.startLine === 3);
  });

  it('ARG: one argument per quote-aware word, quotes kept', () => {
    assert.deepEqual(dump('FROM a\nARG VERSION\nARG A=1 B="x y" C\n'), ['(from "a")', '(arg "VERSION")', '(arg "A=1" "B=\\"x y\\"" "C")']);
  });

  it('MAINTAINER, USER, WORKDIR and STOPSIGNAL: the rest of the line, trimmed (BuildKit live for USER, WORKDIR and STOPSIGNAL)', () => {
    assert.deepEqual(dump('FROM a\nMAINTAINER Jane Doe <jane@example.com>\nUSER  app:app  \nWORKDIR /path with  spaces\nSTOPSIGNAL SIGTERM\n'), [
      '(from "a")',
      '(maintainer "Jane Doe <jane@example.com>")',
      '(user "app:app")',
      '(workdir "/path with  spaces")',
      '(stopsignal "SIGTERM")',
    ]);
  });

  it('HEALTHCHECK: its type word, then a command in exec or shell form (BuildKit live)', () => {
    assert.deepEqual(dump('FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/ || exit 1\nHEALTHCHECK CMD ["/bin/check", "--quick"]\nHEALTHCHECK\n'), [
      '(from "a")',
      '(healthcheck "NONE")',
      '(healthcheck ["--interval=5s" "--retries=3"] "CMD" "curl -f http://localhost/ || exit 1")',
      '(healthcheck "CMD" "/bin/check" "--quick")',
      '(healthcheck)',
    ]);
  });

  it('ONBUILD: the instruction it holds, parsed as an instruction', () => {
    assert.deepEqual(dump('FROM a\nONBUILD RUN ["make", "install"]\nONBUILD COPY --chown=1:1 . /app\nonbuild env A=1\nONBUILD\n'), [
      '(from "a")',
      '(onbuild (run "make" "install"))',
      '(onbuild (copy ["--chown=1:1"] "." "/app"))',
      '(onbuild (env "A" "1" "="))',
      '(onbuild)',
    ]);
  });

  it('keeps an unknown keyword with one empty argument, for a later layer to refuse', () => {
    assert.deepEqual(dump('FROM a\nFOO bar baz\n'), ['(from "a")', '(foo "")']);
  });

  it('quotes arguments as Go does: control characters, DEL and invisible code points escaped, printable Unicode as is', () => {
    assert.deepEqual(dump('FROM a\nLABEL tab="a\tb" heart=♥ korean=한국어\nRUN echo \u0001\u007f \u00a0x \u200b\n'), [
      '(from "a")',
      '(label "tab" "\\"a\\tb\\"" "=" "heart" "♥" "=" "korean" "한국어" "=")',
      '(run "echo \\x01\\x7f \\u00a0x \\u200b")',
    ]);
  });
});

describe('Dockerfile parser: what it refuses', () => {
  it('a file with no instruction: empty, only comments, only directives or blanks', () => {
    for (const source of ['', '# only\n# comments\n', '# escape=`\n', '\n \n\t\n']) refuses(source, /file with no instructions/);
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
