// Continuous HTTP load from real clients that never retry: undici with keep-alive, and
// node:http with a new connection per request (Connection: close).
import http from 'node:http';
import { Pool } from 'undici';

export interface LoadResult {
  ok: number;
  non2xx: number;
  failed: number;
  errors: string[];
  /** When each failed request failed (ms since the epoch), to tell expected failures from others. */
  errorTimes: number[];
  bodies: Map<string, number>;
}

export interface Load {
  stop(): Promise<LoadResult>;
  result: LoadResult;
}

/** `concurrency` loops, each sending one request after another until stopped. */
export function startLoad(opts: { port: number; keepAlive: boolean; concurrency?: number; path?: string }): Load {
  const result: LoadResult = { ok: 0, non2xx: 0, failed: 0, errors: [], errorTimes: [], bodies: new Map() };
  let running = true;
  let stopped: Promise<LoadResult> | null = null;
  const pool = opts.keepAlive ? new Pool(`http://127.0.0.1:${opts.port}`, { connections: opts.concurrency ?? 4, pipelining: 1 }) : null;
  const record = (status: number, body: string) => {
    if (status >= 200 && status < 300) result.ok++;
    else result.non2xx++;
    const key = body.split(':')[0] ?? body;
    result.bodies.set(key, (result.bodies.get(key) ?? 0) + 1);
  };
  const fail = (err: unknown) => {
    result.failed++;
    result.errorTimes.push(Date.now());
    if (result.errors.length < 20) result.errors.push(String((err as Error).message ?? err));
  };
  const once = async (): Promise<void> => {
    if (pool) {
      const res = await pool.request({ path: opts.path ?? '/', method: 'GET' });
      record(res.statusCode, await res.body.text());
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: opts.port, path: opts.path ?? '/', agent: false, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          record(res.statusCode ?? 0, body);
          resolve();
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  };
  const loop = async () => {
    while (running) {
      try {
        await once();
      } catch (err) {
        fail(err);
      }
    }
  };
  const loops = Array.from({ length: opts.concurrency ?? 4 }, loop);
  return {
    result,
    stop() {
      if (!stopped) {
        running = false;
        stopped = Promise.all(loops).then(async () => {
          await pool?.close();
          return result;
        });
      }
      return stopped;
    },
  };
}
