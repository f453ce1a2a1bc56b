// Deploy cost: what a reload of 4 workers costs in memory and time, all at once against
// worker_reload_batch 1, side by side under the same non-retrying load; and how long each
// step of `tsmaster -s upgrade` takes under load. Run alone: `node scripts/bench/deploy.js`.
import { startNodeClient } from './load.js';
import { childPids, cleanup, installHandlers, rssKb, sleep } from './procs.js';
import { Tsmaster } from './servers.js';
import { median } from './stats.js';

/** Total RSS (kB) of a master and its children, sampled every 20 ms while `during` runs. */
async function peakRss(masterPid, during) {
  const total = () => [masterPid, ...childPids(masterPid)].reduce((s, p) => s + (rssKb(p) ?? 0), 0);
  let peak = total();
  let peakProcs = 1 + childPids(masterPid).length;
  const timer = setInterval(() => {
    peak = Math.max(peak, total());
    peakProcs = Math.max(peakProcs, 1 + childPids(masterPid).length);
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
async function underLoad(opts, concurrency, measure) {
  const tsm = new Tsmaster({ reuseport: false, ...opts });
  await tsm.start();
  const load = startNodeClient({ port: tsm.port, mode: 'ka', concurrency, maxSec: 120 });
  try {
    await sleep(1000);
    const runs = await measure(tsm);
    const client = await load.stop();
    return { runs, failed: client.failed ?? 0, requests: client.ok };
  } finally {
    await load.stop().catch(() => undefined);
    await tsm.stop();
  }
}

async function reloadCost(label, extra, log) {
  const r = await underLoad({ key: `deploy-${label.replace(/\W+/g, '-')}`, label, workers: 4, extra }, 8, async (tsm) => {
    const runs = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await peakRss(tsm.managerPid(), () => tsm.tsm('-s', 'reload'));
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
async function upgradeSteps(log) {
  const r = await underLoad({ key: 'deploy-upgrade', label: 'upgrade', workers: 2 }, 40, async (tsm) => {
    const runs = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await tsm.tsm('-s', 'upgrade');
      const wall = performance.now() - t0;
      if (r.code !== 0) throw new Error(`-s upgrade exited ${r.code}: ${r.stderr}`);
      const step = (re) => Number(re.exec(r.stdout)?.[1] ?? NaN);
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
  const med = (k) => median(r.runs.map((x) => x[k]));
  return { runs: r.runs, median: { readyMs: med('readyMs'), drainedMs: med('drainedMs'), exitedMs: med('exitedMs'), totalMs: med('totalMs'), wallMs: med('wallMs') }, failed: r.failed };
}

export async function deployCost(log) {
  return {
    reload: [await reloadCost('all at once', [], log), await reloadCost('worker_reload_batch 1', ['worker_reload_batch 1;'], log)],
    upgrade: await upgradeSteps(log),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installHandlers();
  try {
    console.log(JSON.stringify(await deployCost((m) => process.stderr.write(`${m}\n`)), null, 2));
  } finally {
    await cleanup();
  }
}
