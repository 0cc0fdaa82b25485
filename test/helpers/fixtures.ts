import { join } from 'node:path';
import { fixturesDir } from './paths.js';

/** The image fixtures the tests use. */
export type FixtureName =
  | 'busybox-rootfs.tar'
  | 'busybox-docker20-save.tar'
  | 'whiteouts-docker20-save.tar'
  | 'whiteouts-oci-layout'
  | 'whiteouts-oci-zstd'
  | 'whiteouts-oci-archive.tar'
  | 'whiteouts-expected-rootfs.json';

/** The path of a fixture, made if need be (see the fixture makers). */
export async function fixture(name: FixtureName): Promise<string> {
  return Promise.resolve(join(fixturesDir, name));
}
