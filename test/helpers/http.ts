// One HTTP request at a time, never retried: what the tests ask a master and what the bench's
// load client sends.
import http from 'node:http';
import net from 'node:net';
import { waitFor } from './wait.js';

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** An error with the `code` the load clients count failures by. */
function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * One GET on 127.0.0.1 (or `socketPath`), on a fresh connection unless `agent` is given.
 * Fails with code TIMEOUT after `timeoutMs`, and with ABORTED when the connection closes
 * in the middle of the answer.
 */
export function get(target: { port?: number; socketPath?: string; path?: string; agent?: http.Agent; timeoutMs?: number }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        ...(target.socketPath ? { socketPath: target.socketPath } : { port: target.port }),
        path: target.path ?? '/',
        agent: target.agent ?? false,
        headers: target.agent ? {} : { connection: 'close' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('aborted', () => reject(failure('aborted', 'ABORTED')));
        res.on('error', reject);
      },
    );
    req.setTimeout(target.timeoutMs ?? 20_000, () => req.destroy(failure('request timed out', 'TIMEOUT')));
    req.on('error', reject);
    req.end();
  });
}

/** The body of the first GET on `port` that gets an answer (workers may be starting). */
export async function waitForAnswer(port: number, timeoutMs = 20_000): Promise<string> {
  return waitFor(`an answer on port ${port}`, () => get({ port }).then((r) => r.body, () => undefined), timeoutMs);
}

/** A port nobody listens on right now (bound and released by the caller itself). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
