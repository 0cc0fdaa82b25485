/**
 * An HTTP(S) GET as a build makes one (`ADD <URL>`, a build context's URL): redirects followed, the
 * machine's extra CA certificates trusted, one agent per process (made at the first download: undici
 * loads only then, as it costs every command 50 ms).
 */
import type { Dispatcher } from 'undici';
import { KilnError } from '../errors.js';
import { extraCaCertificates } from '../tls-trust.js';
import { withoutCredentials } from './git.js';

let redirecting: Dispatcher | undefined;

/**
 * The answer to a GET of `url` when it is 200; else a NOT_FOUND error that says `downloading <subject>
 * failed` with the status (or why it could not be asked), or an INVALID_INPUT one when `url` is no
 * URL at all, after `what: ` when given. A URL's credentials are not shown.
 */
export async function getUrl(url: string, what: string | undefined, subject = withoutCredentials(url)): Promise<Dispatcher.ResponseData> {
  const prefix = what === undefined ? '' : `${what}: `;
  if (!URL.canParse(url)) throw new KilnError('INVALID_INPUT', `${prefix}${subject} is not a valid URL`);
  const { Agent, interceptors, request } = await import('undici');
  if (!redirecting) {
    const ca = await extraCaCertificates();
    redirecting = new Agent(ca ? { connect: { ca: [...ca] } } : {}).compose(interceptors.redirect({ maxRedirections: 10 }));
  }
  // undici refuses some URLs before it returns a promise: both ways of failing are caught here.
  const response = await Promise.resolve()
    .then(() => request(url, { dispatcher: redirecting }))
    .catch((err: Error) => {
      throw new KilnError('NOT_FOUND', `${prefix}cannot download ${subject}: ${err.message}`);
    });
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new KilnError('NOT_FOUND', `${prefix}downloading ${subject} failed: HTTP ${response.statusCode}`);
  }
  return response;
}
