// Continuous HTTP load from real clients that never retry: undici with keep-alive, and
// node:http with a new connection per request (Connection: close).
import { Pool } from 'undici';
import { get } from './http.js';
import { runLoops } from './loops.js';

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
  const request = async (): Promise<{ status: number; body: string }> => {
    if (!pool) return get({ port: opts.port, path: opts.path ?? '/' });
    const res = await pool.request({ path: opts.path ?? '/', method: 'GET' });
    return { status: res.statusCode, body: await res.body.text() };
  };
  const loops = runLoops(opts.concurrency ?? 4, () => request().then((r) => record(r.status, r.body), fail));
  return {
    result,
    stop() {
      if (!stopped) {
        loops.stop();
        stopped = loops.done.then(async () => {
          await pool?.close();
          return result;
        });
      }
      return stopped;
    },
  };
}
