// A chatty app: what ~100,000 log lines a second from the workers cost the master, which is
// out of their data path (its /healthz latency and CPU), with the workers' log a file, and a
// pipe nobody reads (a stuck log shipper: lines are dropped, counted, and cost no memory).
// A stage of `npm run bench`; alone, after `npm run bench` has built it:
// `node build/bench/scripts/bench/chatty.js`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenOf, cpuSeconds } from '../../src/proc.js';
import { freePort, get } from '../../test/helpers/http.js';
import { cli } from '../../test/helpers/paths.js';
import { rssKb } from '../../test/helpers/proc.js';
import { sleep, waitFor } from '../../test/helpers/wait.js';
import { runAlone, tempDir, track, type Log } from './procs.js';
import { max, median } from './stats.js';

const app = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'scripts', 'bench', 'chatty-app.cjs');
const SECONDS = 5;
const WORKERS = 2;
/** Lines a second, all workers together. */
const RATE = 100_000;

export interface ChattyRun {
  label: string;
  /** Lines the app was asked to write a second, all workers together. */
  rate: number;
  healthzMs: { p50: number | null; p99: number | null; max: number | null; probes: number; failed: number };
  masterCpuPct: number;
  /** Lines that reached the log file a second (null: a pipe). */
  writtenPerSec: number | null;
  lost: number;
  workersRssMb: number;
}

export interface Chatty {
  seconds: number;
  runs: ChattyRun[];
}

function p99(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!;
}

/** Lines in `file` after byte `from`. */
function newlines(file: string, from: number): number {
  const buf = fs.readFileSync(file).subarray(from);
  let n = 0;
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

async function one(label: string, rate: number, sink: 'file' | 'stuck pipe', log: Log): Promise<ChattyRun> {
  const dir = tempDir(`chatty-${label.replace(/\W+/g, '-')}`);
  const port = await freePort();
  const metrics = await freePort();
  const workerLog = path.join(dir, 'worker.log');
  const conf = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(
    conf,
    [
      'daemon off;',
      `pid ${dir}/tsmaster.pid;`,
      `error_log ${dir}/error.log notice;`,
      sink === 'file' ? `worker_log ${workerLog};` : 'worker_log stderr;',
      `worker_processes ${WORKERS};`,
      `env CHATTY_LINES=${rate / WORKERS};`,
      `metrics_listen 127.0.0.1:${metrics};`,
      `listen 127.0.0.1:${port};`,
      `app ${app};`,
      '',
    ].join('\n'),
  );
  // The stuck pipe: the master's stdout and stderr, which this process never reads.
  const child = track(process.execPath, [cli, '-p', dir, '-c', conf], { detached: true, stdio: ['ignore', sink === 'file' ? 'ignore' : 'pipe', sink === 'file' ? 'ignore' : 'pipe'] }, `chatty ${label}`);
  try {
    const master = child.pid!;
    await waitFor('the chatty master serves', async () => (await get({ port, timeoutMs: 1000 }).catch(() => null))?.status === 200, 30_000);
    await sleep(1000);
    const cpu0 = cpuSeconds(master) ?? 0;
    const size0 = sink === 'file' ? fs.statSync(workerLog).size : 0;
    const t0 = performance.now();
    const ms: number[] = [];
    let failed = 0;
    while (performance.now() - t0 < SECONDS * 1000) {
      const s = performance.now();
      const r = await get({ port: metrics, path: '/healthz', timeoutMs: 2000 }).catch(() => null);
      if (r?.status === 200) ms.push(performance.now() - s);
      else failed++;
      await sleep(20);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = ((cpuSeconds(master) ?? 0) - cpu0) / secs;
    const written = sink === 'file' ? Math.round(newlines(workerLog, size0) / secs) : null;
    const body = (await get({ port: metrics, path: '/metrics', timeoutMs: 5000 })).body;
    const lost = Number(/^tsmaster_log_lines_lost_total (\d+)$/m.exec(body)?.[1] ?? NaN);
    const rss = childrenOf(master).reduce((s, p) => s + (rssKb(p) ?? 0), 0) / 1024;
    const run: ChattyRun = {
      label,
      rate,
      healthzMs: { p50: median(ms), p99: p99(ms), max: max(ms), probes: ms.length, failed },
      masterCpuPct: Math.round(cpu * 1000) / 10,
      writtenPerSec: written,
      lost,
      workersRssMb: Math.round(rss),
    };
    log(`chatty ${label}: ${JSON.stringify(run)}`);
    return run;
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export async function chattyApp(log: Log): Promise<Chatty> {
  return {
    seconds: SECONDS,
    runs: [await one('quiet, worker_log a file', 0, 'file', log), await one('chatty, worker_log a file', RATE, 'file', log), await one('chatty, a pipe nobody reads', RATE, 'stuck pipe', log)],
  };
}

await runAlone(import.meta.url, chattyApp);
