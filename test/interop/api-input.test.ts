import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Answer, send } from '../helpers/api-request.js';
import { type Dockerd, dockerdUnavailable, startDockerd } from '../helpers/dockerd.js';
import { type Served, startServe } from '../helpers/serve.js';

const messageOf = (answer: Answer): string => {
  try {
    return (JSON.parse(answer.body) as { message?: string }).message ?? answer.body;
  } catch {
    return answer.body.trim();
  }
};

/** dockerd 20.10 answers these decoding errors with 500 on most routes; it is the client's mistake (dockerd's exec routes, and Docker since 23, answer 400). */
const DOCKERD_500 = { status: 500, why: 'dockerd 20.10 answers a request it cannot decode with 500 on this route' } as const;

/**
 * A hostile request, kiln's answer to it, and how dockerd 20.10 answers the same (by default: the same
 * status and message), or why the two cannot be compared.
 */
interface Case {
  readonly what: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly status: number;
  readonly message?: string | RegExp;
  readonly dockerd?: { readonly status?: number; readonly message?: string | RegExp; readonly why: string } | { readonly skip: string };
}

const q = (json: string): string => encodeURIComponent(json);

const b64 = (json: string): string => Buffer.from(json).toString('base64url');
const IGNORED_HEADER = { skip: 'dockerd ignores a credentials header it cannot decode, and goes on without credentials' } as const;

const CASES: readonly Case[] = [
  // POST /containers/create: a ContainerConfigWrapper.
  { what: 'create: a number for Image, a string for Cmd', method: 'POST', path: '/containers/create', body: '{"Image":123,"Cmd":"notarray"}', status: 400, message: 'json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string', dockerd: DOCKERD_500 },
  { what: 'create: null', method: 'POST', path: '/containers/create', body: 'null', status: 400, message: 'Config cannot be empty in order to create a container' },
  { what: 'create: {}', method: 'POST', path: '/containers/create', body: '{}', status: 400, message: 'Config cannot be empty in order to create a container' },
  { what: 'create: an array', method: 'POST', path: '/containers/create', body: '[]', status: 400, message: 'json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper', dockerd: DOCKERD_500 },
  { what: 'create: a string', method: 'POST', path: '/containers/create', body: '"x"', status: 400, message: 'json: cannot unmarshal string into Go value of type runconfig.ContainerConfigWrapper', dockerd: DOCKERD_500 },
  { what: 'create: Binds:123', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"Binds":123}}', status: 400, message: 'json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Binds of type []string', dockerd: DOCKERD_500 },
  { what: 'create: HostConfig:123', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":123}', status: 400, message: 'json: cannot unmarshal number into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig', dockerd: DOCKERD_500 },
  { what: 'create: Tty:"yes"', method: 'POST', path: '/containers/create', body: '{"Image":"x","Tty":"yes"}', status: 400, message: 'json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool', dockerd: DOCKERD_500 },
  { what: 'create: Env:[1]', method: 'POST', path: '/containers/create', body: '{"Image":"x","Env":[1]}', status: 400, message: 'json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string', dockerd: DOCKERD_500 },
  { what: 'create: Cmd:{}', method: 'POST', path: '/containers/create', body: '{"Image":"x","Cmd":{}}', status: 400, message: 'json: cannot unmarshal object into Go struct field ContainerConfigWrapper.Cmd of type string', dockerd: DOCKERD_500 },
  { what: 'create: ConsoleSize:["a",1]', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"ConsoleSize":["a",1]}}', status: 400, message: 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.ConsoleSize of type uint', dockerd: DOCKERD_500 },
  { what: 'create: Memory:1.5', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"Memory":1.5}}', status: 400, message: 'json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64', dockerd: DOCKERD_500 },
  { what: 'create: Memory:"1g"', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"Memory":"1g"}}', status: 400, message: 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64', dockerd: DOCKERD_500 },
  { what: 'create: RestartPolicy.Name:1', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"RestartPolicy":{"Name":1}}}', status: 400, message: 'json: cannot unmarshal number into Go struct field RestartPolicy.HostConfig.RestartPolicy.Name of type string', dockerd: DOCKERD_500 },
  { what: 'create: PortBindings of a string', method: 'POST', path: '/containers/create', body: '{"Image":"x","HostConfig":{"PortBindings":{"80/tcp":"x"}}}', status: 400, message: 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PortBindings of type []nat.PortBinding', dockerd: DOCKERD_500 },
  { what: 'create: not JSON', method: 'POST', path: '/containers/create', body: '{not json', status: 400, message: "invalid character 'n' looking for beginning of object key string", dockerd: DOCKERD_500 },
  { what: 'create: cut short', method: 'POST', path: '/containers/create', body: '{"Image":"x",', status: 400, message: 'unexpected EOF', dockerd: DOCKERD_500 },
  { what: 'create: a bad escape', method: 'POST', path: '/containers/create', body: '{"Image":"x\\q"}', status: 400, message: "invalid character 'q' in string escape code", dockerd: DOCKERD_500 },
  { what: 'create: a broken literal', method: 'POST', path: '/containers/create', body: '{"Image":tru}', status: 400, message: "invalid character '}' in literal true (expecting 'e')", dockerd: DOCKERD_500 },
  { what: 'create: 20,000 nested arrays', method: 'POST', path: '/containers/create', body: `${'['.repeat(20_000)}${']'.repeat(20_000)}`, status: 400, message: "invalid character '[' exceeded max depth", dockerd: DOCKERD_500 },
  { what: 'create: no body', method: 'POST', path: '/containers/create', body: '', status: 400, message: 'EOF', dockerd: DOCKERD_500 },
  { what: 'create: a body that is not said to be JSON', method: 'POST', path: '/containers/create', body: '{"Image":"x"}', headers: { 'content-type': 'text/plain' }, status: 400, message: "Content-Type specified (text/plain) must be 'application/json'" },
  { what: 'create: field names in any case, trailing bytes after the value', method: 'POST', path: '/containers/create', body: '{"image":"nothing-here","cmd":"true"} trailing', status: 404, message: /^No such image: nothing-here/ },
  {
    what: 'create: a body over the bound (5 MiB)',
    method: 'POST',
    path: '/containers/create',
    body: `{"Image":"nothing-here","Env":["A=${'a'.repeat(5 << 20)}"]}`,
    status: 400,
    message: 'the request body is larger than 4 MiB, the most kiln reads for a JSON request',
    dockerd: { status: 404, message: /^No such image: nothing-here/, why: 'dockerd reads a body of any size into memory; kiln bounds JSON bodies' },
  },
  // POST /containers/{id}/exec: an ExecConfig.
  { what: 'exec: Cmd:1', method: 'POST', path: '/containers/nothing-here/exec', body: '{"Cmd":1}', status: 400, message: 'json: cannot unmarshal number into Go struct field ExecConfig.Cmd of type []string' },
  { what: 'exec: Cmd:"true" (no StrSlice here)', method: 'POST', path: '/containers/nothing-here/exec', body: '{"Cmd":"true"}', status: 400, message: 'json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string' },
  { what: 'exec: Env:"x"', method: 'POST', path: '/containers/nothing-here/exec', body: '{"Cmd":["true"],"Env":"x"}', status: 400, message: 'json: cannot unmarshal string into Go struct field ExecConfig.Env of type []string' },
  { what: 'exec: null', method: 'POST', path: '/containers/nothing-here/exec', body: 'null', status: 400, message: 'No exec command specified' },
  { what: 'exec: an array', method: 'POST', path: '/containers/nothing-here/exec', body: '[]', status: 400, message: 'json: cannot unmarshal array into Go value of type types.ExecConfig' },
  { what: 'exec: not JSON', method: 'POST', path: '/containers/nothing-here/exec', body: '{bad', status: 400, message: "invalid character 'b' looking for beginning of object key string" },
  { what: 'exec: no body', method: 'POST', path: '/containers/nothing-here/exec', body: '', status: 400, message: 'got EOF while reading request body' },
  { what: 'exec: a form body', method: 'POST', path: '/containers/nothing-here/exec', body: '{"Cmd":["a"]}', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 400, message: "Content-Type specified (application/x-www-form-urlencoded) must be 'application/json'" },
  { what: 'exec: a good body, no container', method: 'POST', path: '/containers/nothing-here/exec', body: '{"Cmd":["true"]}', status: 404, message: 'No such container: nothing-here' },
  // POST /exec/{id}/start: an ExecStartCheck, plain and hijacked.
  { what: 'exec start: Detach:"x"', method: 'POST', path: '/exec/nothing-here/start', body: '{"Detach":"x"}', status: 400, message: 'json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool' },
  { what: 'exec start: null', method: 'POST', path: '/exec/nothing-here/start', body: 'null', status: 404, message: 'No such exec instance: nothing-here' },
  { what: 'exec start: no body', method: 'POST', path: '/exec/nothing-here/start', body: '', status: 400, message: 'got EOF while reading request body' },
  { what: 'exec start, hijacked: Detach:"x"', method: 'POST', path: '/exec/nothing-here/start', body: '{"Detach":"x"}', headers: { connection: 'Upgrade', upgrade: 'tcp' }, status: 400, message: 'json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool' },
  { what: 'exec start, hijacked: not JSON', method: 'POST', path: '/exec/nothing-here/start', body: '{bad', headers: { connection: 'Upgrade', upgrade: 'tcp' }, status: 400, message: "invalid character 'b' looking for beginning of object key string" },
  { what: 'exec start, hijacked: a good body', method: 'POST', path: '/exec/nothing-here/start', body: '{}', headers: { connection: 'Upgrade', upgrade: 'tcp' }, status: 404, message: 'No such exec instance: nothing-here' },
  // POST /auth: an AuthConfig.
  { what: 'auth: username:1', method: 'POST', path: '/auth', body: '{"username":1}', status: 400, message: 'json: cannot unmarshal number into Go struct field AuthConfig.username of type string', dockerd: DOCKERD_500 },
  { what: 'auth: an array', method: 'POST', path: '/auth', body: '[]', status: 400, message: 'json: cannot unmarshal array into Go value of type types.AuthConfig', dockerd: DOCKERD_500 },
  { what: 'auth: not JSON', method: 'POST', path: '/auth', body: '{bad', status: 400, message: "invalid character 'b' looking for beginning of object key string", dockerd: DOCKERD_500 },
  { what: 'auth: no body', method: 'POST', path: '/auth', body: '', status: 400, message: 'EOF', dockerd: DOCKERD_500 },
  { what: 'auth: null', method: 'POST', path: '/auth', body: 'null', status: 400, message: 'auth needs a username and a password', dockerd: { skip: 'dockerd 20.10 panics on a null body and drops the connection' } },
  // Query parameters: integers, booleans, JSON.
  { what: 'ps: limit=abc', method: 'GET', path: '/containers/json?limit=abc', status: 400, message: 'strconv.Atoi: parsing "abc": invalid syntax', dockerd: DOCKERD_500 },
  { what: 'ps: limit out of range', method: 'GET', path: '/containers/json?limit=99999999999999999999', status: 400, message: 'strconv.Atoi: parsing "99999999999999999999": value out of range', dockerd: DOCKERD_500 },
  { what: 'ps: all=maybe is true', method: 'GET', path: '/containers/json?all=maybe', status: 200 },
  { what: 'ps: filters not JSON', method: 'GET', path: '/containers/json?filters=notjson', status: 400, message: "invalid character 'o' in literal null (expecting 'u')", dockerd: DOCKERD_500 },
  { what: 'ps: filters an array', method: 'GET', path: `/containers/json?filters=${q('[]')}`, status: 400, message: 'json: cannot unmarshal array into Go value of type map[string]map[string]bool', dockerd: DOCKERD_500 },
  { what: 'ps: a filter of a number', method: 'GET', path: `/containers/json?filters=${q('{"status":1}')}`, status: 400, message: 'json: cannot unmarshal number into Go value of type map[string]bool', dockerd: DOCKERD_500 },
  { what: 'ps: filters with bytes after', method: 'GET', path: `/containers/json?filters=${q('{} x')}`, status: 400, message: "invalid character 'x' after top-level value", dockerd: DOCKERD_500 },
  { what: 'ps: an unknown filter', method: 'GET', path: `/containers/json?filters=${q('{"bogus":["1"]}')}`, status: 400, message: "invalid filter 'bogus'", dockerd: { message: "Invalid filter 'bogus'", why: "kiln's engine words, which its CLI shares" } },
  { what: 'images: all=YES is true', method: 'GET', path: '/images/json?all=YES', status: 200 },
  { what: 'images: a filter of a bad set', method: 'GET', path: `/images/json?filters=${q('{"dangling":{"true":1}}')}`, status: 400, message: 'json: cannot unmarshal number into Go value of type bool', dockerd: DOCKERD_500 },
  { what: 'images: a bad URL escape', method: 'GET', path: '/images/%zz/json', status: 400, message: 'invalid URL escape in "%zz"', dockerd: { message: '400 Bad Request', why: "dockerd's HTTP server refuses the URL in plain text" } },
  { what: 'search: limit=abc', method: 'GET', path: '/images/search?term=x&limit=abc', status: 400, message: 'strconv.Atoi: parsing "abc": invalid syntax', dockerd: DOCKERD_500 },
  { what: 'image prune: filters not JSON', method: 'POST', path: `/images/prune?filters=${q('{bad')}`, status: 400, message: "invalid character 'b' looking for beginning of object key string", dockerd: DOCKERD_500 },
  { what: 'rmi: force=maybe', method: 'DELETE', path: '/images/nothing-here?force=maybe&noprune=1', status: 404, message: /^No such image: nothing-here/ },
  { what: 'pull: an upper-case name', method: 'POST', path: '/images/create?fromImage=UPPER', status: 400, message: /^invalid reference format: repository name .*must be lowercase$/ },
  { what: 'pull: X-Registry-Auth of an array', method: 'POST', path: '/images/create?fromImage=nothing-here', headers: { 'x-registry-auth': b64('[]') }, status: 400, message: 'invalid X-Registry-Auth header: json: cannot unmarshal array into Go value of type types.AuthConfig', dockerd: IGNORED_HEADER },
  { what: 'push: X-Registry-Auth with a number', method: 'POST', path: '/images/nothing-here/push', headers: { 'x-registry-auth': b64('{"username":1}') }, status: 400, message: 'invalid X-Registry-Auth header: json: cannot unmarshal number into Go struct field AuthConfig.username of type string', dockerd: IGNORED_HEADER },
  { what: 'build: X-Registry-Config of a number', method: 'POST', path: '/build', headers: { 'x-registry-config': b64('{"registry.example":1}') }, status: 400, message: 'invalid X-Registry-Config header: json: cannot unmarshal number into Go value of type types.AuthConfig', dockerd: IGNORED_HEADER },
  { what: 'build: networkmode=bridge', method: 'POST', path: '/build?networkmode=bridge', status: 400, message: 'invalid networkmode "bridge": use default, none or host', dockerd: { skip: "dockerd's builder runs RUN on its bridge; kiln has the host's network or none, and refuses other modes as kiln build --network does" } },
  { what: 'container prune: filters not JSON', method: 'POST', path: `/containers/prune?filters=${q('{bad')}`, status: 400, message: "invalid character 'b' looking for beginning of object key string" },
  { what: 'container prune: a filter kiln cannot apply', method: 'POST', path: `/containers/prune?filters=${q('{"until":["1h"]}')}`, status: 501, message: 'container prune with filters (until) is not supported: kiln removes every stopped container', dockerd: { status: 200, message: /ContainersDeleted/, why: 'kiln cannot prune by time or label, and must not prune more than it was asked to' } },
  { what: 'stop: t=abc', method: 'POST', path: '/containers/nothing-here/stop?t=abc', status: 400, message: 'strconv.Atoi: parsing "abc": invalid syntax', dockerd: DOCKERD_500 },
  { what: 'restart: t=1.5', method: 'POST', path: '/containers/nothing-here/restart?t=1.5', status: 400, message: 'strconv.Atoi: parsing "1.5": invalid syntax', dockerd: DOCKERD_500 },
  { what: 'resize: h=abc', method: 'POST', path: '/containers/nothing-here/resize?h=abc&w=1', status: 400, message: 'strconv.Atoi: parsing "abc": invalid syntax' },
  { what: 'resize: no size', method: 'POST', path: '/containers/nothing-here/resize', status: 400, message: 'strconv.Atoi: parsing "": invalid syntax' },
  { what: 'resize: a size no terminal has', method: 'POST', path: '/containers/nothing-here/resize?h=70000&w=1', status: 400, message: 'resize needs h and w, whole numbers from 0 to 65535', dockerd: { status: 404, message: 'No such container: nothing-here', why: 'dockerd passes any size on; kiln refuses one no terminal has' } },
  { what: 'exec resize: h=abc', method: 'POST', path: '/exec/nothing-here/resize?h=abc&w=1', status: 400, message: 'strconv.Atoi: parsing "abc": invalid syntax' },
  { what: 'logs: no stream chosen', method: 'GET', path: '/containers/nothing-here/logs', status: 400, message: 'Bad parameters: you must choose at least one stream' },
  { what: 'logs: tail=abc', method: 'GET', path: '/containers/nothing-here/logs?stdout=1&tail=abc', status: 400, message: /^invalid value for "tail"/, dockerd: { status: 404, message: 'No such container: nothing-here', why: 'dockerd reads a tail that is no number as "all"; kiln refuses it' } },
  { what: 'rm: force=maybe', method: 'DELETE', path: '/containers/nothing-here?force=maybe', status: 404, message: 'No such container: nothing-here' },
  { what: 'rename: no name', method: 'POST', path: '/containers/nothing-here/rename', status: 400, message: 'Neither old nor new names may be empty' },
  { what: 'archive: no path', method: 'GET', path: '/containers/nothing-here/archive', status: 400, message: 'the archive routes need a path', dockerd: { message: 'bad parameter: pathcannot be empty', why: "dockerd's words run two words together" } },
  { what: 'build: buildargs not JSON', method: 'POST', path: '/build?buildargs=notjson', status: 400, message: "error reading build args: invalid character 'o' in literal null (expecting 'u')" },
  { what: 'build: buildargs an array', method: 'POST', path: `/build?buildargs=${q('[]')}`, status: 400, message: 'error reading build args: json: cannot unmarshal array into Go value of type map[string]*string' },
  { what: 'build: a build arg of a number', method: 'POST', path: `/build?buildargs=${q('{"A":1}')}`, status: 400, message: 'error reading build args: json: cannot unmarshal number into Go value of type string' },
  { what: 'build: labels an array', method: 'POST', path: `/build?labels=${q('[]')}`, status: 400, message: 'error reading labels: json: cannot unmarshal array into Go value of type map[string]string' },
  { what: 'build: cachefrom not JSON', method: 'POST', path: '/build?cachefrom=x', status: 400, message: "invalid character 'x' looking for beginning of value", dockerd: DOCKERD_500 },
  { what: 'build: cachefrom an object', method: 'POST', path: `/build?cachefrom=${q('{}')}`, status: 400, message: 'json: cannot unmarshal object into Go value of type []string', dockerd: DOCKERD_500 },
  { what: 'build: an upper-case tag', method: 'POST', path: '/build?t=UPPER', status: 400, message: /^invalid reference format: repository name .*must be lowercase$/, dockerd: DOCKERD_500 },
];

const dockerdSkip = await dockerdUnavailable();

const matches = (actual: string, expected: string | RegExp): boolean => (typeof expected === 'string' ? actual === expected : expected.test(actual));

describe('kiln serve: requests of the wrong shape are 400s with dockerd\'s words, and the server keeps serving', () => {
  let dir: string;
  let socket: string;
  let served: Served | undefined;
  let dockerd: Dockerd | undefined;
  let dockerdFailed: string | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-api-input-'));
    socket = join(dir, 'kiln.sock');
    served = await startServe(join(dir, 'store'), ['-H', `unix://${socket}`]);
    if (!dockerdSkip) dockerd = await startDockerd().catch((err: Error) => ((dockerdFailed = `dockerd did not start: ${err.message.split('\n')[0] ?? ''}`), undefined));
  });
  after(async () => {
    await served?.stop();
    await dockerd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers each hostile shape on each route that reads a body or parameters', async () => {
    for (const c of CASES) {
      const answer = await send(socket, c.method, `/v1.41${c.path}`, c.body, c.headers);
      assert.equal(answer.status, c.status, `${c.what}: ${answer.body}`);
      if (c.message !== undefined) assert.ok(matches(messageOf(answer), c.message), `${c.what}: ${messageOf(answer)}`);
      else if (answer.status >= 400) assert.notEqual(messageOf(answer), '', `${c.what}: an error says what is wrong`);
      assert.equal((await send(socket, 'GET', '/_ping')).body, 'OK', `${c.what}: the server keeps serving`);
    }
  });

  it('a body over the bound is refused as it comes, not kept: the client reads the 400 while it still sends', async () => {
    // 2 GiB announced (refused before reading), or sent in chunks without a length (refused at 4 MiB):
    // the answer comes while the client is still sending, and the server goes on.
    for (const head of ['Content-Length: 2147483648', 'Transfer-Encoding: chunked']) {
      const chunked = head.startsWith('Transfer');
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        const client = connect(socket, () => {
          client.write(`POST /v1.41/containers/create HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n${head}\r\n\r\n`);
          const chunk = Buffer.alloc(1 << 20, 0x20);
          for (let i = 0; i < 8; i++) client.write(chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk);
        });
        client.on('data', (data: Buffer) => {
          text += data.toString('latin1');
          if (!text.includes('\r\n\r\n{')) return;
          client.destroy();
          resolve(text);
        });
        client.on('error', reject);
        setTimeout(() => reject(new Error(`no answer in 30 s; read: ${text}`)), 30_000).unref();
      });
      assert.match(answer, /^HTTP\/1\.1 400 /, head);
      assert.match(answer, /the request body is larger than 4 MiB/, head);
      assert.equal((await send(socket, 'GET', '/_ping')).body, 'OK');
    }
  });

  it('dockerd 20.10 answers the same requests with the same status and words, but where noted', async (t) => {
    const skip = dockerdSkip ?? dockerdFailed;
    if (skip || !dockerd) {
      t.skip(skip ?? 'dockerd did not start');
      return;
    }
    const dockerdSocket = dockerd.host.replace(/^unix:\/\//, '');
    let compared = 0;
    for (const c of CASES) {
      if (c.dockerd && 'skip' in c.dockerd) continue;
      compared++;
      const answer = await send(dockerdSocket, c.method, `/v1.41${c.path}`, c.body, c.headers);
      const expected = { status: c.dockerd?.status ?? c.status, message: c.dockerd?.message ?? c.message };
      assert.equal(answer.status, expected.status, `${c.what}: dockerd said ${answer.body}${c.dockerd ? ` (${c.dockerd.why})` : ''}`);
      if (expected.message !== undefined) assert.ok(matches(messageOf(answer), expected.message), `${c.what}: dockerd said ${messageOf(answer)}`);
    }
    assert.ok(compared > 70, `${compared} requests compared`);
  });
});
