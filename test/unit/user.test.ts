import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../../src/errors.js';
import { resolveUser } from '../../src/runtime/spec.js';
import { tempDir } from '../helpers/paths.js';

async function rootfs(passwd: string, group: string): Promise<string> {
  const root = await tempDir('kiln-rootfs-');
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc', 'passwd'), passwd);
  await writeFile(join(root, 'etc', 'group'), group);
  return root;
}

describe('resolveUser', () => {
  it('resolves names and numbers through the image, as Docker does', async () => {
    const root = await rootfs('root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n', 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
    assert.deepEqual(resolveUser(root, 'app'), { uid: 1000, gid: 1000, home: '/home/app', additionalGids: [1000, 2000] });
    assert.deepEqual(resolveUser(root, '1000:extra'), { uid: 1000, gid: 2000, home: '/home/app', additionalGids: [2000] });
    assert.deepEqual(resolveUser(root, '4294967294:4294967294'), { uid: 4294967294, gid: 4294967294, home: '/', additionalGids: [4294967294] });
  });

  it('refuses IDs no uid_t holds (a huge --chown became an internal error) and ID fields that are not numbers', async () => {
    const root = await rootfs('bad:x:abc:1::/:/bin/sh\nbig:x:99999999999:1::/:/bin/sh\n', 'odd:x:-1:\n');
    const refused = (user: string, code: 'INVALID_ARGUMENT' | 'INVALID_INPUT', message: RegExp): void => {
      assert.throws(() => resolveUser(root, user), (err: unknown) => isKilnError(err, code) && message.test(err.message) && err.message.length < 300, user);
    };
    refused('4294967295', 'INVALID_ARGUMENT', /^user ID 4294967295 is out of range: IDs go from 0 to 4294967294$/);
    refused(`1:${'9'.repeat(400)}`, 'INVALID_ARGUMENT', /^group ID "9{64}…" is out of range/);
    refused('bad', 'INVALID_INPUT', /^the image's \/etc\/passwd gives bad the ID abc, which is not a number/);
    refused('big', 'INVALID_INPUT', /gives big the ID 99999999999/);
    refused('0:odd', 'INVALID_INPUT', /^the image's \/etc\/group gives odd the ID -1/);
    refused(`nosuch\x1b[2J${'x'.repeat(100)}`, 'INVALID_ARGUMENT', /^unable to find user "nosuch\\u001b\[2Jx+…": no matching entries/);
  });
});
