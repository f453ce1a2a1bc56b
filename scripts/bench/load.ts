// Load generators: wrk (when installed), autocannon, and client.ts (our own non-retrying
// node:http client that keeps a timeline, for the reload tests).
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { get } from '../../test/helpers/http.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { ClientOptions, ClientResult } from './client.js';
import { tempDir, track } from './procs.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** What every load generator reports; times in ms. */
export interface LoadResult {
  tool: string;
  seconds: number;
  ok: number;
  rps: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  failed: number;
  errorKinds?: Record<string, number>;
}

export interface WrkResult extends LoadResult {
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
  errorKinds: { connect: number; read: number; write: number; timeout: number; status: number };
}

// wrk's done() hook prints one JSON line: no parsing of its human output.
const WRK_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
`;

let wrkScript: string | null = null;
export function wrkVersion(): string | null {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (r.error) return null;
  const m = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1]! : 'unknown';
}

export function autocannonVersion(): string {
  return (JSON.parse(fs.readFileSync(require.resolve('autocannon/package.json'), 'utf8')) as { version: string }).version;
}

function parseWrk(stdout: string, stderr: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk gave no result: ${stderr.trim() || stdout.trim()}`);
  const j = JSON.parse(line.slice(8)) as Record<'requests' | 'duration_us' | 'connect' | 'read' | 'write' | 'status' | 'timeout' | 'p50_us' | 'p99_us' | 'max_us', number>;
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

/** A child whose result is known once it exits: `done`, or stop() it first with `signal`. */
export interface Running<R> {
  done: Promise<R>;
  stop(): Promise<R>;
}

/** Collect a child's output; at its exit, `parse` it into the result. */
function collect<R>(child: ChildProcess, parse: (stdout: string, stderr: string, code: number | null) => R, killAfterMs: number): Running<R> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const done = new Promise<R>((resolve, reject) => {
    child.once('exit', (code) => {
      try {
        resolve(parse(stdout, stderr, code));
      } catch (err) {
        reject(err);
      }
    });
  });
  return {
    done,
    stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      return done.finally(() => clearTimeout(t));
    },
  };
}

export interface WrkOptions {
  port: number;
  close?: boolean;
  connections?: number;
  threads?: number;
  /** Run that long; 0: until stop() (SIGINT makes wrk print its summary). */
  seconds?: number;
  timeoutSec?: number;
  /** Run wrk pinned to that CPU (taskset), away from the server under test. */
  cpu?: number | null;
}

/** wrk against 127.0.0.1:port. */
export function startWrk({ port, close = false, connections = 50, threads = 1, seconds = 0, timeoutSec = 5, cpu = null }: WrkOptions): Running<WrkResult> {
  if (!wrkScript) {
    wrkScript = path.join(tempDir('wrk'), 'report.lua');
    fs.writeFileSync(wrkScript, WRK_LUA);
  }
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds || 600}s`, '--timeout', `${timeoutSec}s`, '-s', wrkScript];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/`);
  const [cmd, argv] = cpu === null ? ['wrk', args] : ['taskset', ['-c', String(cpu), 'wrk', ...args]];
  const child = track(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }, 'wrk');
  return collect(child, (stdout, stderr) => parseWrk(stdout, stderr), 5000);
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  return startWrk(opts).done;
}

interface AutocannonJson {
  duration: number;
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number; max: number };
  requests: { sent: number; total: number };
}

/**
 * autocannon's CLI with --json, keep-alive only: autocannon 9 mishandles `Connection: close`
 * (it writes the next request on the connection the server is closing, and stalls).
 */
export async function runAutocannon({ port, connections = 50, seconds }: { port: number; connections?: number; seconds: number }): Promise<LoadResult & { errors: number; non2xx: number; unanswered: number }> {
  const bin = require.resolve('autocannon/autocannon.js');
  // -W: one second of warm-up first (autocannon's own JIT), not counted.
  const args = [bin, '-j', '-W', '[', '-c', String(connections), '-d', '1', ']', '-c', String(connections), '-d', String(seconds), `http://127.0.0.1:${port}/`];
  const child = track(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }, 'autocannon');
  const j = await collect(
    child,
    (stdout, stderr, code) => {
      try {
        return JSON.parse(stdout.trim().split('\n').pop()!) as AutocannonJson;
      } catch {
        throw new Error(`autocannon failed (exit ${code}): ${stderr.trim().slice(-500)}`);
      }
    },
    0,
  ).done;
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

/** client.ts in a child process until stop(); its result includes a latency timeline. */
export function startNodeClient({ port, mode, concurrency = 8, maxSec = 300 }: Omit<ClientOptions, 'timeoutMs'>): Running<ClientResult> {
  const opts: ClientOptions = { port, mode, concurrency, maxSec };
  const child = track(process.execPath, [path.join(here, 'client.js'), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] }, 'client');
  return collect(
    child,
    (stdout, stderr, code) => {
      try {
        return JSON.parse(stdout) as ClientResult;
      } catch {
        throw new Error(`client.js failed (exit ${code}): ${stderr.trim().slice(-500)}`);
      }
    },
    15_000,
  );
}

/** One GET / on a fresh connection: the status code, or null. */
export function probe(port: number, timeoutMs = 1000): Promise<number | null> {
  return get({ port, timeoutMs }).then(
    (r) => r.status,
    () => null,
  );
}

/** Wait until GET / answers 200, or throw. */
export async function waitHttp(port: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`a 200 answer on port ${port}`, async () => (await probe(port)) === 200, timeoutMs, 100);
}
