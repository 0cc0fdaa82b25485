/**
 * The certificate authorities kiln's TLS clients (registries, ADD's downloads) trust beyond Node's own.
 *
 * NODE_EXTRA_CA_CERTS adds a file of CAs to Node's roots, but Node 20 reads and parses that file, and its
 * own roots with it, as every process starts, before any of kiln runs: some 50 ms on a machine that sets
 * it, most of a cached build. So bin/kiln, run as a program, hands the file to kiln as
 * KILN_EXTRA_CA_CERTS instead (Node then starts without it), and the roots are read here, the first time
 * a TLS connection is made. A user may set KILN_EXTRA_CA_CERTS too; it means the same.
 */
import { readFileSync } from 'node:fs';

/** The one reading of the extra CAs, shared by every TLS client of the process (they may ask at once). */
let reading: Promise<readonly string[] | undefined> | undefined;

/**
 * Node's roots and the CAs of KILN_EXTRA_CA_CERTS, as a TLS `ca` option; undefined when there are none
 * to add (Node's defaults stand). A file that cannot be read is left out with a warning, as Node does
 * with NODE_EXTRA_CA_CERTS.
 */
export function extraCaCertificates(): Promise<readonly string[] | undefined> {
  reading ??= (async () => {
    const file = process.env.KILN_EXTRA_CA_CERTS;
    if (!file) return undefined;
    try {
      // node:tls is loaded here, not with this module: some ms that commands making no TLS connection skip.
      const { rootCertificates } = await import('node:tls');
      return [...rootCertificates, readFileSync(file, 'utf8')];
    } catch (err) {
      process.stderr.write(`kiln: warning: ignoring the extra CA certificates of ${file} (KILN_EXTRA_CA_CERTS, or NODE_EXTRA_CA_CERTS as bin/kiln passes it on): ${(err as Error).message}\n`);
      return undefined;
    }
  })();
  return reading;
}
