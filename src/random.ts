/**
 * Random hex digits for the names kiln gives its leases, scratch files, build directories, snapshots and
 * build containers, always beside its pid: they tell one process's names apart, so they must differ, not
 * be unguessable (all live under the store or the runtime's root-only state). Math.random, which V8 seeds
 * from the system's entropy in every process: node:crypto's randomBytes would cost a build loading
 * node:crypto (some 7 ms).
 */
export function randomHex(bytes: number): string {
  let hex = '';
  while (hex.length < bytes * 2) hex += Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0');
  return hex.slice(0, bytes * 2);
}
