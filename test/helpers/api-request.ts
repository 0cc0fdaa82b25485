import { request } from 'node:http';

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One request to an API socket (a JSON content type when a body is given, unless told otherwise). */
export function send(socket: string, method: string, path: string, body?: string, headers: Readonly<Record<string, string>> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, timeout: 60_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
