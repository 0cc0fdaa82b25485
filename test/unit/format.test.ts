import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { goJson } from '../../src/cli/format/gojson.js';
import { renderRows, tabwrite } from '../../src/cli/format/table.js';
import { renderTemplate } from '../../src/cli/format/template.js';
import { goTimeString, humanDuration, humanSize, humanSizeWithPrecision, rfc3339Local, truncateDisplay } from '../../src/cli/format/units.js';

describe('go-units sizes and durations', () => {
  it('HumanSizeWithPrecision(size, 3) and (size, 4)', () => {
    const cases: [number, string][] = [[0, '0B'], [999, '999B'], [1000, '1kB'], [1024, '1.02kB'], [1500, '1.5kB'], [2129920, '2.13MB'], [1985581, '1.99MB'], [123456789, '123MB'], [2.14e9, '2.14GB'], [1e15, '1PB']];
    for (const [bytes, text] of cases) assert.equal(humanSize(bytes), text, String(bytes));
    assert.equal(humanSizeWithPrecision(1985581, 4), '1.986MB');
    assert.equal(humanSizeWithPrecision(5, 4), '5B');
  });

  it('HumanDuration thresholds', () => {
    const s = 1000;
    const h = 3600 * s;
    const cases: [number, string][] = [[0, 'Less than a second'], [s, '1 second'], [59 * s, '59 seconds'], [60 * s, 'About a minute'], [47 * 60 * s, '47 minutes'], [h, 'About an hour'], [90 * 60 * s, '2 hours'], [47 * h, '47 hours'], [48 * h, '2 days'], [14 * 24 * h, '2 weeks'], [60 * 24 * h, '2 months'], [2 * 365 * 24 * h, '2 years']];
    for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, String(ms));
  });

  it("Go's time formats (TZ=UTC in tests) and Docker's ellipsis", () => {
    const t = Date.parse('2026-11-22T10:53:39Z');
    if (new Date(t).getTimezoneOffset() === 0) {
      assert.equal(goTimeString(t), '2026-11-22 10:53:39 +0000 UTC');
      assert.equal(rfc3339Local(t), '2026-11-22T10:53:39Z');
    }
    assert.equal(truncateDisplay('abcdef', 4), 'abc…');
    assert.equal(truncateDisplay('abcd', 4), 'abcd');
  });
});

describe('Go encoding/json', () => {
  it('escapes <, > and & and keeps Go indentation', () => {
    assert.equal(goJson({ a: '<none> & more' }), '{"a":"\\u003cnone\\u003e \\u0026 more"}');
    assert.equal(goJson({ a: [], b: {}, c: [1] }, '    '), '{\n    "a": [],\n    "b": {},\n    "c": [\n        1\n    ]\n}');
    assert.equal(goJson(undefined), 'null');
  });
});

describe('Go text/template subset', () => {
  const data = { Name: 'busybox', Tags: ['a', 'b'], Labels: { z: '1', a: '2' }, Size: 1985581, Empty: '', Nested: { Deep: { Value: 7 } }, Nil: null };
  const cases: [string, string][] = [
    ['{{.Name}}', 'busybox'],
    ['{{.Nested.Deep.Value}}', '7'],
    ['{{.Missing}}', '<no value>'],
    ['{{.Nil}}', '<nil>'],
    ['{{.Tags}}', '[a b]'],
    ['{{.Labels}}', 'map[a:2 z:1]'],
    ['{{json .Tags}}', '["a","b"]'],
    ['{{.Labels | json}}', '{"z":"1","a":"2"}'],
    ['{{join .Tags ", "}}', 'a, b'],
    ['{{index .Labels "z"}}', '1'],
    ['{{index .Tags 1}}', 'b'],
    ['{{upper .Name}} {{lower "ABC"}} {{title "hello world"}}', 'BUSYBOX abc Hello World'],
    ['{{split "a,b,c" ","}}', '[a b c]'],
    ['{{len .Tags}} {{len .Name}}', '2 7'],
    ['{{printf "%s=%d|%-5s|%5s|%q" .Name .Size "x" "y" .Name}}', 'busybox=1985581|x    |    y|"busybox"'],
    ['{{println .Name}}', 'busybox\n'],
    ['{{truncate .Name 3}}', 'bus'],
    ['{{pad .Name 1 2}}', ' busybox  '],
    ['{{if .Empty}}yes{{else}}no{{end}}', 'no'],
    ['{{if eq .Name "x"}}x{{else if eq .Name "busybox" "y"}}bb{{else}}other{{end}}', 'bb'],
    ['{{if and .Name (not .Empty)}}ok{{end}}', 'ok'],
    ['{{if or .Empty .Name}}{{.Name}}{{end}}', 'busybox'],
    ['{{if gt .Size 1000}}big{{end}}{{if lt 1 2}} lt{{end}}{{if ne 1 2}} ne{{end}}', 'big lt ne'],
    ['{{range .Tags}}<{{.}}>{{end}}', '<a><b>'],
    ['{{range $i, $t := .Tags}}{{$i}}={{$t}} {{end}}', '0=a 1=b '],
    ['{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}', 'a:2;z:1;'],
    ['{{range .Nil}}x{{else}}none{{end}}', 'none'],
    ['{{with .Nested.Deep}}{{.Value}}{{end}}', '7'],
    ['{{$n := .Name}}{{range .Tags}}{{$n}}{{.}}{{end}}', 'busyboxabusyboxb'],
    ['{{range .Tags}}{{$.Name}}{{end}}', 'busyboxbusybox'],
    ['a  {{- .Name -}}  b', 'abusyboxb'],
    ['{{/* a comment */}}x', 'x'],
    ['{{`raw\\n`}}{{"q\\t"}}', 'raw\\nq\t'],
    ['{{true}} {{1.5}} {{nil}}', 'true 1.5 <nil>'],
  ];
  for (const [template, expected] of cases) {
    it(template, () => assert.equal(renderTemplate(template, data), expected));
  }

  it('reports bad templates as one-line INVALID_ARGUMENT errors', () => {
    for (const bad of ['{{.Name', '{{nosuchfunc .Name}}', '{{if .Name}}open', '{{end}}', '{{"unterminated}}']) {
      assert.throws(() => renderTemplate(bad, data), (err) => isKilnError(err, 'INVALID_ARGUMENT') && !err.message.includes('\n'), bad);
    }
  });
});

describe("tables as docker's formatter prints them", () => {
  const headers = { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', Size: 'SIZE' };
  const row = { Repository: 'busybox', Tag: 'lab', ID: '6ecc29ffc19e', CreatedSince: '2 days ago', Size: '2.13MB' };

  it('aligns the default images table with minwidth 10 and padding 3', () => {
    const out = renderRows('table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}', headers, [row]);
    assert.equal(out, 'REPOSITORY   TAG       IMAGE ID       CREATED      SIZE\nbusybox      lab       6ecc29ffc19e   2 days ago   2.13MB\n');
  });

  it('prints only the header for no rows, one line per row for plain templates, and JSON lines', () => {
    assert.equal(renderRows('table {{.Tag}}\t{{.Size}}', headers, []), 'TAG       SIZE\n');
    assert.equal(renderRows('{{.Tag}}', headers, [row, row]), 'lab\nlab\n');
    assert.equal(renderRows('{{.Nope}}', headers, [row]), '<no value>\n');
    assert.equal(renderRows('json', headers, [{ b: '<1>', a: 'x' }]), '{"a":"x","b":"\\u003c1\\u003e"}\n');
  });

  it("implements tabwriter's column blocks", () => {
    assert.equal(tabwrite('a\tb\tc\nlonger-cell\tx\nno tabs here\nq\tr'), 'a             b         c\nlonger-cell   x\nno tabs here\nq         r');
    // Widths in characters: nine emoji (eighteen UTF-16 units) are nine wide.
    const emoji = '\u{1f600}'.repeat(9);
    assert.equal(tabwrite(`${emoji}\tb\nab\tc`), `${emoji}   b\nab          c`);
  });
});
