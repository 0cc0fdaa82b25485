import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyChanges } from '../../src/builder/changes.js';
import { isKilnError } from '../../src/errors.js';

describe('import/commit changes', () => {
  it('applies the instructions Docker accepts, in order', () => {
    const config = applyChanges({}, [
      'CMD ["sh"]',
      'ENV PATH=/usr/bin:/bin',
      'ENV A="one two" B=3',
      'ENV PATH=/bin',
      'ENTRYPOINT /entry.sh',
      'EXPOSE 80 53/udp',
      'LABEL org.example="hello world"',
      'USER 1000:1000',
      'VOLUME ["/data", "/cache"]',
      'WORKDIR /srv',
      'WORKDIR app',
      'STOPSIGNAL SIGTERM',
    ]);
    assert.deepEqual(config.Cmd, ['sh']);
    assert.deepEqual(config.Env, ['PATH=/bin', 'A=one two', 'B=3']);
    assert.deepEqual(config.Entrypoint, ['/bin/sh', '-c', '/entry.sh']);
    assert.deepEqual(config.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
    assert.deepEqual(config.Labels, { 'org.example': 'hello world' });
    assert.equal(config.User, '1000:1000');
    assert.deepEqual(config.Volumes, { '/data': {}, '/cache': {} });
    assert.equal(config.WorkingDir, '/srv/app');
    assert.equal(config.StopSignal, 'SIGTERM');
  });

  it('takes the legacy ENV form and shell-form CMD', () => {
    const config = applyChanges({}, ['ENV GREETING hello there', 'CMD echo hi']);
    assert.deepEqual(config.Env, ['GREETING=hello there']);
    assert.deepEqual(config.Cmd, ['/bin/sh', '-c', 'echo hi']);
  });

  it('refuses instructions that are not changes, with the list of valid ones', () => {
    assert.throws(() => applyChanges({}, ['RUN rm -rf /']), (err) => isKilnError(err, 'INVALID_ARGUMENT') && /RUN is not a valid change command/.test(err.message));
    assert.throws(() => applyChanges({}, ['EXPOSE eighty']), (err) => isKilnError(err, 'INVALID_ARGUMENT'));
    assert.throws(() => applyChanges({}, ['LABEL "unterminated']), (err) => isKilnError(err, 'INVALID_ARGUMENT'));
  });
});
