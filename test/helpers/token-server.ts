import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './paths.js';

export interface TokenServer {
  readonly realm: string;
  readonly issuer: string;
  readonly service: string;
  /** The self-signed certificate (PEM) that signs the tokens and serves HTTPS. */
  readonly certificate: string;
  /** Tokens issued, with the scopes asked for and whether the caller authenticated. */
  readonly issued: { scope: string; authenticated: boolean }[];
  stop(): Promise<void>;
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * A Docker token service of the test suite's own (HTTPS, self-signed): Basic credentials of one user get
 * the pull and push they ask for; anonymous callers get nothing. Tokens are RS256 JWTs that carry their
 * certificate in `x5c`, which distribution checks against its `rootcertbundle`.
 */
export async function startTokenServer(user: { username: string; password: string }): Promise<TokenServer> {
  const dir = await tempDir('kiln-token-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=kiln-token', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const key = readFileSync(join(dir, 'key.pem'), 'utf8');
  const certificate = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const der = new X509Certificate(certificate).raw;
  const issuer = 'kiln-token-issuer';
  const service = 'kiln-test-registry';
  const issued: { scope: string; authenticated: boolean }[] = [];
  const server = createServer({ key, cert: certificate }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const expected = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    const given = req.headers.authorization;
    if (given !== undefined && given !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
      return;
    }
    const authenticated = given === expected;
    const scopes = url.searchParams.getAll('scope');
    issued.push({ scope: scopes.join(' '), authenticated });
    const access = authenticated
      ? scopes.flatMap((scope) => {
          const [type, name, actions] = scope.split(':');
          return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] }));
    const claims = base64url(JSON.stringify({ iss: issuer, sub: authenticated ? user.username : '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }));
    const signature = base64url(sign('sha256', Buffer.from(`${header}.${claims}`), createPrivateKey(key)));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `https://127.0.0.1:${port}/token`,
    issuer,
    service,
    certificate,
    issued,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
