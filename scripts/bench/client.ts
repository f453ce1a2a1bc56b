// A plain node:http load client that never retries, run as a child process by the
// benchmark: `concurrency` loops send GET / one after another, with a keep-alive agent
// ("ka") or a new connection and `Connection: close` per request ("close"), until SIGINT.
// It prints one JSON object: counts, errors by code, answers slower than 1 s, latency
// percentiles, and a timeline of
// 100 ms buckets [startMs, answered, maxLatencyMs, failed] by completion time, so the
// benchmark can find the worst latency while a reload was under way.
import http from 'node:http';

const opts = JSON.parse(process.argv[2] ?? '{}');
const { port, mode = 'ka', concurrency = 8, maxSec = 300, timeoutMs = 10_000 } = opts;
const BUCKET_MS = 100;

const agent = mode === 'ka' ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : false;
const headers = mode === 'ka' ? {} : { connection: 'close' };
const started = Date.now();
const latencies = [];
const buckets = new Map();
const errors = {};
const errorTimes = [];
let ok = 0;
let slow = 0;
let non2xx = 0;
let failed = 0;
let running = true;

function bucket(now) {
  const key = Math.floor(now / BUCKET_MS) * BUCKET_MS;
  let b = buckets.get(key);
  if (!b) buckets.set(key, (b = [key, 0, 0, 0]));
  return b;
}

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let settled = false;
    const finish = (err, status) => {
      if (settled) return;
      settled = true;
      const now = Date.now();
      const b = bucket(now);
      if (err) {
        failed++;
        b[3]++;
        const code = err.code ?? err.message;
        errors[code] = (errors[code] ?? 0) + 1;
        if (errorTimes.length < 2000) errorTimes.push([now, code]);
      } else {
        const ms = performance.now() - t0;
        latencies.push(ms);
        if (ms > 1000) slow++;
        b[1]++;
        if (ms > b[2]) b[2] = ms;
        if (status >= 200 && status < 300) ok++;
        else {
          non2xx++;
          b[3]++;
        }
      }
      resolve();
    };
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent, headers }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => finish(null, res.statusCode));
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(Object.assign(new Error('aborted'), { code: 'ABORTED' })));
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => finish(err));
    req.end();
  });
}

async function loop() {
  while (running) await once();
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const stop = () => {
  running = false;
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setTimeout(stop, maxSec * 1000).unref();
// The benchmark died without stopping us: stop on our own.
const orphanCheck = setInterval(() => {
  if (process.ppid === 1) stop();
}, 500);

await Promise.all(Array.from({ length: concurrency }, loop));
clearInterval(orphanCheck);
agent && agent.destroy();
latencies.sort((a, b) => a - b);
const seconds = (Date.now() - started) / 1000;
process.stdout.write(
  JSON.stringify({
    tool: 'client.js',
    mode,
    seconds,
    ok,
    non2xx,
    slowerThan1s: slow,
    errors: failed,
    failed: failed + non2xx,
    errorKinds: errors,
    errorTimes,
    rps: ok / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1] : null,
    timeline: [...buckets.values()].sort((a, b) => a[0] - b[0]),
  }),
);
