// Load generators: wrk (when installed), autocannon, and client.js (our own non-retrying
// node:http client that keeps a timeline, for the reload tests).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, tempDir, track } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// wrk's done() hook prints one JSON line: no parsing of its human output.
const WRK_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
`;

let wrkScript = null;
export function wrkVersion() {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (r.error) return null;
  const m = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : 'unknown';
}

export function autocannonVersion() {
  return JSON.parse(fs.readFileSync(require.resolve('autocannon/package.json'), 'utf8')).version;
}

function parseWrk(stdout, stderr) {
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk gave no result: ${stderr.trim() || stdout.trim()}`);
  const j = JSON.parse(line.slice(8));
  const secs = j.duration_us / 1e6;
  const errors = j.connect + j.read + j.write + j.timeout;
  return {
    tool: 'wrk',
    seconds: secs,
    ok: j.requests - j.status,
    rps: (j.requests - j.status) / secs,
    p50: j.p50_us / 1000,
    p99: j.p99_us / 1000,
    max: j.max_us / 1000,
    errors,
    non2xx: j.status,
    failed: errors + j.status,
    errorKinds: { connect: j.connect, read: j.read, write: j.write, timeout: j.timeout, status: j.status },
  };
}

/**
 * wrk against 127.0.0.1:port. With `seconds` it runs that long; without, until stop()
 * (SIGINT makes wrk print its summary). Returns { stop(): Promise<result>, done }.
 */
/** `cpu`: run wrk pinned to that CPU (taskset), away from the server under test. */
export function startWrk({ port, close = false, connections = 50, threads = 1, seconds = 0, timeoutSec = 5, cpu = null }) {
  if (!wrkScript) {
    wrkScript = path.join(tempDir('wrk'), 'report.lua');
    fs.writeFileSync(wrkScript, WRK_LUA);
  }
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds || 600}s`, '--timeout', `${timeoutSec}s`, '-s', wrkScript];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/`);
  const child = cpu === null ? track('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] }, 'wrk') : track('taskset', ['-c', String(cpu), 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }, 'wrk');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve, reject) => {
    child.once('exit', () => {
      try {
        resolve(parseWrk(stdout, stderr));
      } catch (err) {
        reject(err);
      }
    });
  });
  return {
    done,
    stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      return done.finally(() => clearTimeout(t));
    },
  };
}

export function runWrk(opts) {
  return startWrk(opts).done;
}

/**
 * autocannon's CLI with --json, keep-alive only: autocannon 9 mishandles `Connection: close`
 * (it writes the next request on the connection the server is closing, and stalls).
 */
export async function runAutocannon({ port, connections = 50, seconds }) {
  const bin = require.resolve('autocannon/autocannon.js');
  // -W: one second of warm-up first (autocannon's own JIT), not counted.
  const args = [bin, '-j', '-W', '[', '-c', String(connections), '-d', '1', ']', '-c', String(connections), '-d', String(seconds), `http://127.0.0.1:${port}/`];
  const child = track(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }, 'autocannon');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  let j;
  try {
    j = JSON.parse(stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`autocannon failed (exit ${code}): ${stderr.trim().slice(-500)}`);
  }
  const ok = j['2xx'];
  return {
    tool: 'autocannon',
    seconds: j.duration,
    ok,
    rps: ok / j.duration,
    p50: j.latency.p50,
    p99: j.latency.p99,
    max: j.latency.max,
    errors: j.errors + j.timeouts,
    non2xx: j.non2xx,
    failed: j.errors + j.timeouts + j.non2xx,
    // autocannon reconnects silently when a server closes a connection with a request
    // in flight: such a request is neither answered nor counted as an error.
    unanswered: Math.max(0, j.requests.sent - j.requests.total - connections),
  };
}

/** client.js in a child process until stop(); its result includes a latency timeline. */
export function startNodeClient({ port, mode, concurrency = 8, maxSec = 300 }) {
  const child = track(process.execPath, [path.join(here, 'client.js'), JSON.stringify({ port, mode, concurrency, maxSec })], { stdio: ['ignore', 'pipe', 'pipe'] }, 'client');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`client.js failed (exit ${code}): ${stderr.trim().slice(-500)}`));
      }
    });
  });
  return {
    done,
    async stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      return done.finally(() => clearTimeout(t));
    },
  };
}

/** One GET / on a fresh connection: the status code, or null. */
export function probe(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Wait until GET / answers 200, or throw. */
export async function waitHttp(port, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await probe(port)) !== 200) {
    if (Date.now() > deadline) throw new Error(`nothing answers on port ${port} after ${timeoutMs}ms`);
    await sleep(100);
  }
}
