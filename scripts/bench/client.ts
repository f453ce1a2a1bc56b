// A load client that never retries, run as a child process by the benchmark (so its own
// work does not share the bench's event loop): `concurrency` loops send GET / one after
// another, with a keep-alive agent ("ka") or a new connection and `Connection: close` per
// request ("close"), until SIGINT. It prints one JSON object: counts, errors by code,
// answers slower than 1 s, latency percentiles, and a timeline of 100 ms buckets
// [startMs, answered, maxLatencyMs, failed] by completion time, so the benchmark can find
// the worst latency while a reload was under way.
import http from 'node:http';
import { get } from '../../test/helpers/http.js';
import { runLoops } from '../../test/helpers/loops.js';

export interface ClientOptions {
  port: number;
  mode: 'ka' | 'close';
  concurrency?: number;
  maxSec?: number;
  timeoutMs?: number;
}

/** [startMs, answered, maxLatencyMs, failed] */
export type Bucket = [number, number, number, number];

export interface ClientResult {
  tool: 'client.js';
  mode: 'ka' | 'close';
  seconds: number;
  ok: number;
  non2xx: number;
  slowerThan1s: number;
  errors: number;
  failed: number;
  errorKinds: Record<string, number>;
  /** [when (ms since the epoch), error code] of the first 2000 errors. */
  errorTimes: Array<[number, string]>;
  rps: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  timeline: Bucket[];
}

const BUCKET_MS = 100;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(opts: ClientOptions): Promise<ClientResult> {
  const { port, mode = 'ka', concurrency = 8, maxSec = 300, timeoutMs = 10_000 } = opts;
  const agent = mode === 'ka' ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : undefined;
  const started = Date.now();
  const latencies: number[] = [];
  const buckets = new Map<number, Bucket>();
  const errorKinds: Record<string, number> = {};
  const errorTimes: Array<[number, string]> = [];
  let ok = 0;
  let slow = 0;
  let non2xx = 0;
  let failed = 0;

  const bucket = (now: number): Bucket => {
    const key = Math.floor(now / BUCKET_MS) * BUCKET_MS;
    let b = buckets.get(key);
    if (!b) buckets.set(key, (b = [key, 0, 0, 0]));
    return b;
  };
  const once = async (): Promise<void> => {
    const t0 = performance.now();
    try {
      const { status } = await get({ port, ...(agent ? { agent } : {}), timeoutMs });
      const ms = performance.now() - t0;
      const b = bucket(Date.now());
      latencies.push(ms);
      if (ms > 1000) slow++;
      b[1]++;
      if (ms > b[2]) b[2] = ms;
      if (status >= 200 && status < 300) ok++;
      else {
        non2xx++;
        b[3]++;
      }
    } catch (err) {
      const now = Date.now();
      failed++;
      bucket(now)[3]++;
      const code = String((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      errorKinds[code] = (errorKinds[code] ?? 0) + 1;
      if (errorTimes.length < 2000) errorTimes.push([now, code]);
    }
  };

  const loops = runLoops(concurrency, once);
  process.on('SIGINT', loops.stop);
  process.on('SIGTERM', loops.stop);
  setTimeout(loops.stop, maxSec * 1000).unref();
  // The benchmark died without stopping us: stop on our own.
  const orphanCheck = setInterval(() => {
    if (process.ppid === 1) loops.stop();
  }, 500);
  await loops.done;
  clearInterval(orphanCheck);
  agent?.destroy();
  latencies.sort((a, b) => a - b);
  const seconds = (Date.now() - started) / 1000;
  return {
    tool: 'client.js',
    mode,
    seconds,
    ok,
    non2xx,
    slowerThan1s: slow,
    errors: failed,
    failed: failed + non2xx,
    errorKinds,
    errorTimes,
    rps: ok / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1]! : null,
    timeline: [...buckets.values()].sort((a, b) => a[0] - b[0]),
  };
}

process.stdout.write(JSON.stringify(await main(JSON.parse(process.argv[2] ?? '{}') as ClientOptions)));
