import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildNetwork, credentialsByRegistry } from '../../src/engine/build-inputs.js';
import { isKilnError } from '../../src/errors.js';
import { registryHost, serverKey } from '../../src/registry/credentials.js';

describe('registry keys: one mapping between server addresses, registry hosts and config keys', () => {
  it('a server address names its registry, with or without scheme and API path; Docker Hub by any of its names', () => {
    const cases: [string, string][] = [
      ['https://index.docker.io/v1/', 'docker.io'],
      ['index.docker.io', 'docker.io'],
      ['registry-1.docker.io', 'docker.io'],
      ['docker.io', 'docker.io'],
      ['http://localhost:5000', 'localhost:5000'],
      ['localhost:5000/', 'localhost:5000'],
      ['https://reg.example/v2/', 'reg.example'],
      ['reg.example', 'reg.example'],
    ];
    for (const [server, host] of cases) assert.equal(registryHost(server), host, server);
    assert.equal(serverKey(registryHost('https://index.docker.io/v1/')), 'https://index.docker.io/v1/');
  });

  it("X-Registry-Config's entries: Docker Hub's under its v1 URL or its names, others under the host with or without a scheme", () => {
    const credentials = credentialsByRegistry({
      'https://index.docker.io/v1/': { username: 'hub', password: 'h' },
      'https://reg.example': { username: 'reg', password: 'r' },
      'tokens.example': { identitytoken: 't0ken' },
      'half.example': { username: 'nobody' },
    });
    assert.deepEqual(credentials('docker.io'), { username: 'hub', password: 'h' });
    assert.deepEqual(credentials('reg.example'), { username: 'reg', password: 'r' });
    assert.deepEqual(credentials('tokens.example'), { identityToken: 't0ken' });
    assert.equal(credentials('half.example'), undefined);
    assert.equal(credentials('other.example'), undefined);
    assert.deepEqual(credentialsByRegistry({ 'docker.io': { username: 'short', password: 's' } })('docker.io'), { username: 'short', password: 's' });
  });

  it("a build's network: default is the host's, none and host as asked, any other mode refused in the front end's words", () => {
    assert.equal(buildNetwork(undefined, '--network'), undefined);
    assert.equal(buildNetwork('default', '--network'), undefined);
    assert.equal(buildNetwork('none', '--network'), 'none');
    assert.equal(buildNetwork('host', 'networkmode'), 'host');
    assert.throws(() => buildNetwork('bridge', 'networkmode'), (err) => isKilnError(err) && err.code === 'INVALID_ARGUMENT' && err.message === 'invalid networkmode "bridge": use default, none or host');
  });
});
