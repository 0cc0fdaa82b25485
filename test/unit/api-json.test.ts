import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonNumber, JsonObject, array, bool, decodeJson, integer as goInteger, map, parseJson, pointer, strSlice, string, struct } from '../../src/api/json.js';
import { containerConfig, filtersParameter, flag, integer, jsonParameter } from '../../src/api/request.js';
import { isKilnError } from '../../src/errors.js';

/** Asserts that `run` fails with a KilnError whose message is exactly `message`. */
function fails(run: () => unknown, message: string): void {
  assert.throws(run, (err) => isKilnError(err) && err.message === message, message);
}

describe('the Engine API JSON decoder: Go encoding/json words', () => {
  it('parses JSON, keeping numbers as written and members in order', () => {
    const value = parseJson(' {"a": [1, -2.5e3, true, null, "x\\u00e9\\n"], "b": {}, "a": 0} ', 'whole');
    assert.ok(value instanceof JsonObject);
    assert.deepEqual(value.members.map(([key]) => key), ['a', 'b', 'a']);
    const list = value.members[0]?.[1] as readonly unknown[];
    assert.deepEqual(list.map((item) => (item instanceof JsonNumber ? item.text : item)), ['1', '-2.5e3', true, null, 'xé\n']);
  });

  it('answers each syntax error with the words of Go\'s scanner', () => {
    const cases: [string, string][] = [
      ['{not json', "invalid character 'n' looking for beginning of object key string"],
      ['{"a" "b"}', `invalid character '"' after object key`],
      ['{"a":"b" "x":1}', `invalid character '"' after object key:value pair`],
      ['[1 2]', "invalid character '2' after array element"],
      ['{"a":01}', "invalid character '1' after object key:value pair"],
      ['{"a":-}', "invalid character '}' in numeric literal"],
      ['[1.]', "invalid character ']' after decimal point in numeric literal"],
      ['[1e+]', "invalid character ']' in exponent of numeric literal"],
      ['{"a":tru}', "invalid character '}' in literal true (expecting 'e')"],
      ['nul', 'unexpected EOF'],
      ['notjson', "invalid character 'o' in literal null (expecting 'u')"],
      ['{"a":"b\\x"}', "invalid character 'x' in string escape code"],
      ['{"a":"\\u00zz"}', "invalid character 'z' in \\u hexadecimal character escape"],
      ['{"a":"b\x01"}', "invalid character '\\x01' in string literal"],
      ['{"a":"b\n"}', "invalid character '\\n' in string literal"],
      ["'a'", "invalid character '\\'' looking for beginning of value"],
      ['[1,]', "invalid character ']' looking for beginning of value"],
      ['{"a":1,}', "invalid character '}' looking for beginning of object key string"],
      ['{"a":', 'unexpected EOF'],
      ['', 'EOF'],
      ['  \n', 'EOF'],
      ['['.repeat(10_001), "invalid character '[' exceeded max depth"],
    ];
    for (const [text, message] of cases) fails(() => parseJson(text, 'stream'), message);
    // As a query parameter (json.Unmarshal): the text is one value, and its end is no EOF.
    fails(() => parseJson('{} x', 'whole'), "invalid character 'x' after top-level value");
    fails(() => parseJson('', 'whole'), 'unexpected end of JSON input');
    fails(() => parseJson('{"a":', 'whole'), 'unexpected end of JSON input');
    // A body (json.Decoder) is its first value: what follows is not read.
    assert.equal(parseJson('"a" trailing', 'stream'), 'a');
    // Deep nesting just within the limit parses, without recursion.
    assert.equal((parseJson(`${'['.repeat(10_000)}${']'.repeat(10_000)}`, 'stream') as unknown[]).length, 1);
  });

  it('decodes against a Go type, with Go\'s type errors naming the struct and the field path', () => {
    const config = (text: string) => decodeJson(text, containerConfig, 'stream');
    fails(() => config('{"Image":123,"Cmd":"notarray"}'), 'json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string');
    fails(() => config('[]'), 'json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper');
    fails(() => config('{"HostConfig":{"Binds":123}}'), 'json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Binds of type []string');
    fails(() => config('{"HostConfig":{"Binds":[1]}}'), 'json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Binds of type string');
    fails(() => config('{"HostConfig":{"RestartPolicy":{"Name":1}}}'), 'json: cannot unmarshal number into Go struct field RestartPolicy.HostConfig.RestartPolicy.Name of type string');
    fails(() => config('{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":1}]}}}'), 'json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string');
    fails(() => config('{"HostConfig":{"PortBindings":[]}}'), 'json: cannot unmarshal array into Go struct field HostConfig.HostConfig.PortBindings of type nat.PortMap');
    fails(() => config('{"HostConfig":{"Memory":1.5}}'), 'json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64');
    fails(() => config('{"HostConfig":{"Memory":1e30}}'), 'json: cannot unmarshal number 1e30 into Go struct field HostConfig.HostConfig.Memory of type int64');
    fails(() => config('{"HostConfig":{"ConsoleSize":[-1,2]}}'), 'json: cannot unmarshal number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint');
    fails(() => config('{"HostConfig":{"ConsoleSize":"x"}}'), 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.ConsoleSize of type [2]uint');
    fails(() => config('{"Cmd":[1]}'), 'json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Cmd of type string');
    fails(() => config('{"Tty":"yes"}'), 'json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool');
    fails(() => config('{"HostConfig":{"PidsLimit":"x"}}'), 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PidsLimit of type int64');
    // The first error in the document is the one reported.
    fails(() => config('{"Tty":1,"Image":2}'), 'json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Tty of type bool');
  });

  it('decodes as Go does: any case of a field name, null as unset, unknown fields ignored, a string as a StrSlice', () => {
    const decoded = decodeJson('{"image":"busybox","CMD":"true","Entrypoint":null,"Unknown":{"deep":[1]},"HostConfig":{"consolesize":[24,80,99],"Tmpfs":{"/t":null,"__proto__":"x"}}}', containerConfig, 'stream');
    assert.equal(decoded?.Image, 'busybox');
    assert.deepEqual(decoded?.Cmd, ['true']);
    assert.equal('Entrypoint' in (decoded ?? {}), false);
    assert.deepEqual(decoded?.HostConfig?.ConsoleSize, [24, 80]);
    assert.deepEqual(Object.entries(decoded?.HostConfig?.Tmpfs ?? {}), [['/t', ''], ['__proto__', 'x']]);
    assert.equal(Object.getPrototypeOf(decoded?.HostConfig?.Tmpfs), Object.prototype, 'a client key named __proto__ is data, not a prototype');
    assert.equal(decodeJson('null', containerConfig, 'stream'), undefined);
    assert.deepEqual(decodeJson('{"a":null,"b":"x"}', map(pointer(string())), 'whole'), { a: null, b: 'x' });
    assert.deepEqual(decodeJson('[1,null]', array(goInteger('uint16')), 'whole'), [1, 0]);
    fails(() => decodeJson('[65536]', array(goInteger('uint16')), 'whole'), 'json: cannot unmarshal number 65536 into Go value of type uint16');
    fails(() => decodeJson('{"A":1.0}', struct('x.T', { A: goInteger('int') }), 'whole'), 'json: cannot unmarshal number 1.0 into Go struct field T.A of type int');
    assert.deepEqual(decodeJson('[true]', array(bool), 'whole'), [true]);
    assert.deepEqual(decodeJson('["a",null]', strSlice, 'whole'), ['a', '']);
  });
});

describe('the Engine API query parameters', () => {
  const query = (text: string): URLSearchParams => new URLSearchParams(text);

  it('reads booleans by dockerd\'s rule: empty, 0, no, false and none are false, anything else true', () => {
    for (const value of ['1', 'true', 'True', 'TRUE', 'yes', 'maybe', ' 1 ']) assert.equal(flag(query(`all=${encodeURIComponent(value)}`), 'all'), true, value);
    for (const value of ['', '0', 'false', 'False', 'no', 'NONE', ' 0 ']) assert.equal(flag(query(`all=${encodeURIComponent(value)}`), 'all'), false, value);
    assert.equal(flag(query(''), 'all'), false);
    assert.equal(flag(query(''), 'quiet', true), true);
    assert.equal(flag(query('quiet=0'), 'quiet', true), false);
  });

  it('reads integers as strconv.Atoi does, with its words', () => {
    assert.equal(integer(query('t=-3'), 't'), -3);
    assert.equal(integer(query('t=%2B7'), 't'), 7);
    assert.equal(integer(query('t='), 't'), undefined);
    assert.equal(integer(query(''), 't'), undefined);
    fails(() => integer(query('t=abc'), 't'), 'strconv.Atoi: parsing "abc": invalid syntax');
    fails(() => integer(query('t=1.5'), 't'), 'strconv.Atoi: parsing "1.5": invalid syntax');
    fails(() => integer(query(''), 'h', { required: true }), 'strconv.Atoi: parsing "": invalid syntax');
    fails(() => integer(query('t=99999999999999999999'), 't'), 'strconv.Atoi: parsing "99999999999999999999": value out of range');
  });

  it('reads JSON parameters whole, prefixed as dockerd prefixes them', () => {
    fails(() => jsonParameter(query('buildargs=notjson'), 'buildargs', map(pointer(string())), 'build args'), "error reading build args: invalid character 'o' in literal null (expecting 'u')");
    fails(() => jsonParameter(query('buildargs=%7B%22A%22%3A1%7D'), 'buildargs', map(pointer(string())), 'build args'), 'error reading build args: json: cannot unmarshal number into Go value of type string');
    assert.equal(jsonParameter(query(''), 'buildargs', map(string())), undefined);
  });

  it('reads filters in both of Docker\'s forms, failing with the first form\'s error', () => {
    const filters = (json: string) => filtersParameter(query(`filters=${encodeURIComponent(json)}`), ['dangling', 'label']);
    assert.deepEqual([...filters('{"dangling":{"true":true},"label":{"a=b":true}}')], [['dangling', ['true']], ['label', ['a=b']]]);
    assert.deepEqual([...filters('{"label":["a","b"]}')], [['label', ['a', 'b']]]);
    assert.deepEqual([...filters('null')], []);
    assert.deepEqual([...filtersParameter(query(''), [])], []);
    fails(() => filters('[]'), 'json: cannot unmarshal array into Go value of type map[string]map[string]bool');
    fails(() => filters('{"dangling":[1]}'), 'json: cannot unmarshal array into Go value of type map[string]bool');
    fails(() => filters('{"dangling":{"true":1}}'), 'json: cannot unmarshal number into Go value of type bool');
    fails(() => filters('{"bogus":["1"]}'), "invalid filter 'bogus'");
  });
});
