// Deploy cost: what a reload of 4 workers costs in memory and time, all at once against
// worker_reload_batch 1, side by side under the same non-retrying load; how long each
// step of `tsmaster -s upgrade` takes under load; and batched deploys of 4 workers holding
// 300 WebSockets. A stage of `npm run bench`; alone, after
// `npm run bench` has built it: `node build/bench/scripts/bench/deploy.js`.
import fs from 'node:fs';
import path from 'node:path';
import { childrenOf } from '../../src/proc.js';
import { root } from '../../test/helpers/paths.js';
import { ReconnectingClient } from '../../test/helpers/ws-clients.js';
import { rssKb } from '../../test/helpers/proc.js';
import { sleep, waitFor } from '../../test/helpers/wait.js';
import { startNodeClient } from './load.js';
import { runAlone, type Log } from './procs.js';
import { Tsmaster, type TsmasterOptions } from './servers.js';
import { median } from './stats.js';

export interface ReloadRun {
  ms: number;
  beforeKb: number;
  peakKb: number;
  peakProcs: number;
}

export interface UpgradeRun {
  readyMs: number;
  drainedMs: number;
  exitedMs: number;
  totalMs: number;
  wallMs: number;
}

/** One batched change with the WebSockets held: the command's time, then until every client is connected again. */
export interface WebSocketRun {
  cmd: 'reload' | 'upgrade';
  ms: number;
  reconnectedMs: number;
}

export interface WebSocketDeploys {
  clients: number;
  runs: WebSocketRun[];
  median: { reload: number | null; upgrade: number | null };
  /** Close codes the clients got, with how many; every one should be 1001 (the app's goodbye). */
  closes: Record<string, number>;
  /** Handshakes a draining worker answered 503, which the clients retried. */
  refused: number;
  errors: number;
  /** Old workers killed at worker_shutdown_timeout (their WebSockets cut). */
  killedAtDeadline: number;
}

export interface DeployCost {
  reload: Array<{ label: string; runs: ReloadRun[]; failed: number; requests: number }>;
  upgrade: { runs: UpgradeRun[]; median: Record<keyof UpgradeRun, number | null>; failed: number };
  webSockets: WebSocketDeploys;
}

/** Total RSS (kB) of a master and its children, sampled every 20 ms while `during` runs. */
async function peakRss<R>(masterPid: number, during: () => Promise<R>): Promise<{ before: number; peak: number; peakProcs: number; result: R }> {
  const total = () => [masterPid, ...childrenOf(masterPid)].reduce((s, p) => s + (rssKb(p) ?? 0), 0);
  let peak = total();
  let peakProcs = 1 + childrenOf(masterPid).length;
  const timer = setInterval(() => {
    peak = Math.max(peak, total());
    peakProcs = Math.max(peakProcs, 1 + childrenOf(masterPid).length);
  }, 20);
  try {
    const before = total();
    const result = await during();
    return { before, peak: Math.max(peak, total()), peakProcs, result };
  } finally {
    clearInterval(timer);
  }
}

/**
 * A tsmaster under `concurrency` keep-alive clients for as long as `measure` runs; resolves
 * with what `measure` returns and how the clients fared. Everything is stopped at the end.
 */
async function underLoad<R>(opts: Omit<TsmasterOptions, 'reuseport'>, concurrency: number, measure: (tsm: Tsmaster) => Promise<R>): Promise<{ runs: R; failed: number; requests: number }> {
  const tsm = new Tsmaster({ reuseport: false, ...opts });
  await tsm.start();
  const load = startNodeClient({ port: tsm.port, mode: 'ka', concurrency, maxSec: 120 });
  try {
    await sleep(1000);
    const runs = await measure(tsm);
    const client = await load.stop();
    return { runs, failed: client.failed, requests: client.ok };
  } finally {
    await load.stop().catch(() => undefined);
    await tsm.stop();
  }
}

function masterOf(tsm: Tsmaster): number {
  const pid = tsm.managerPid();
  if (!pid) throw new Error(`${tsm.label}: no master in the pidfile`);
  return pid;
}

async function reloadCost(label: string, extra: string[], log: Log): Promise<DeployCost['reload'][number]> {
  const r = await underLoad({ key: `deploy-${label.replace(/\W+/g, '-')}`, label, workers: 4, extra }, 8, async (tsm) => {
    const runs: ReloadRun[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await peakRss(masterOf(tsm), () => tsm.tsm('-s', 'reload'));
      const ms = performance.now() - t0;
      if (r.result.code !== 0) throw new Error(`${label}: -s reload exited ${r.result.code}: ${r.result.stderr}`);
      runs.push({ ms, beforeKb: r.before, peakKb: r.peak, peakProcs: r.peakProcs });
      log(`${label}: reload ${i + 1}: ${ms.toFixed(0)} ms, RSS ${(r.before / 1024).toFixed(0)} -> peak ${(r.peak / 1024).toFixed(0)} MB, ${r.peakProcs} processes at most`);
      await sleep(1500);
    }
    return runs;
  });
  return { label, ...r };
}

/** `-s upgrade` 5 times under keep-alive load: the step timings it prints, and the whole. */
async function upgradeSteps(log: Log): Promise<DeployCost['upgrade']> {
  const r = await underLoad({ key: 'deploy-upgrade', label: 'upgrade', workers: 2 }, 40, async (tsm) => {
    const runs: UpgradeRun[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await tsm.tsm('-s', 'upgrade');
      const wall = performance.now() - t0;
      if (r.code !== 0) throw new Error(`-s upgrade exited ${r.code}: ${r.stderr}`);
      const step = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
      runs.push({
        readyMs: step(/is ready \((\d+) ms\)/),
        drainedMs: step(/old workers have exited \((\d+) ms\)/),
        exitedMs: step(/old master exited \((\d+) ms\)/),
        totalMs: step(/\((\d+) ms in all\)/),
        wallMs: wall,
      });
      log(`upgrade ${i + 1}: ${JSON.stringify(runs.at(-1))}`);
      await sleep(1000);
    }
    return runs;
  });
  const med = (k: keyof UpgradeRun) => median(r.runs.map((x) => x[k]));
  return { runs: r.runs, median: { readyMs: med('readyMs'), drainedMs: med('drainedMs'), exitedMs: med('exitedMs'), totalMs: med('totalMs'), wallMs: med('wallMs') }, failed: r.failed };
}

const wsApp = path.join(root, 'test', 'fixtures', 'apps', 'websocket.mjs');

/**
 * `-s upgrade` then `-s reload`, 3 times, with worker_reload_batch 1 on 4 workers holding
 * `clients` WebSockets that reconnect at once when told 1001 (the app's goodbye on drain).
 * A batch waits for its old worker to exit: as long as its clients take to close.
 */
async function webSocketDeploys(log: Log, clients = 300): Promise<WebSocketDeploys> {
  const tsm = new Tsmaster({ key: 'deploy-ws', label: 'websockets', workers: 4, reuseport: false, app: wsApp, extra: ['worker_reload_batch 1;', 'worker_shutdown_timeout 20s;'] });
  await tsm.start();
  const all = Array.from({ length: clients }, () => new ReconnectingClient(tsm.port));
  const connected = () => waitFor(`all ${clients} WebSocket clients connected`, () => all.every((c) => c.open), 60_000);
  try {
    await connected();
    const runs: WebSocketRun[] = [];
    for (let i = 0; i < 3; i++) {
      for (const cmd of ['upgrade', 'reload'] as const) {
        const t0 = performance.now();
        const r = await tsm.tsm('-s', cmd);
        const ms = performance.now() - t0;
        if (r.code !== 0) throw new Error(`-s ${cmd} exited ${r.code}: ${r.stderr}`);
        await connected();
        runs.push({ cmd, ms, reconnectedMs: performance.now() - t0 });
        log(`websockets: -s ${cmd} ${i + 1}: ${ms.toFixed(0)} ms, all ${clients} connected again at ${runs.at(-1)!.reconnectedMs.toFixed(0)} ms`);
      }
    }
    const closes: Record<string, number> = {};
    for (const c of all) for (const [code, n] of c.closes) closes[code] = (closes[code] ?? 0) + n;
    const errorLog = fs.readFileSync(tsm.errorLogPath(), 'utf8');
    return {
      clients,
      runs,
      median: { reload: median(runs.filter((r) => r.cmd === 'reload').map((r) => r.ms)), upgrade: median(runs.filter((r) => r.cmd === 'upgrade').map((r) => r.ms)) },
      closes,
      refused: all.reduce((n, c) => n + c.refused, 0),
      errors: all.reduce((n, c) => n + c.errors.length, 0),
      killedAtDeadline: errorLog.split('\n').filter((l) => /did not exit in time/.test(l)).length,
    };
  } finally {
    for (const c of all) c.stop();
    await tsm.stop();
  }
}

export async function deployCost(log: Log): Promise<DeployCost> {
  return {
    reload: [await reloadCost('all at once', [], log), await reloadCost('worker_reload_batch 1', ['worker_reload_batch 1;'], log)],
    upgrade: await upgradeSteps(log),
    webSockets: await webSocketDeploys(log),
  };
}

await runAlone(import.meta.url, deployCost);
