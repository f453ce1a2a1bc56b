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

async function reloadCost(label, extra, log) {
  const tsm = new Tsmaster({ key: `deploy-${label.replace(/\W+/g, '-')}`, label, workers: 4, reuseport: false, extra });
  await tsm.start();
  const load = startNodeClient({ port: tsm.port, mode: 'ka', concurrency: 8, maxSec: 120 });
  try {
    await sleep(1000);
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
    const client = await load.stop();
    return { label, runs, failed: client.failed ?? 0, requests: client.ok };
  } finally {
    await load.stop().catch(() => undefined);
    await tsm.stop();
  }
}

/** `-s upgrade` 3 times under keep-alive load: the step timings it prints, and the whole. */
async function upgradeSteps(log) {
  const tsm = new Tsmaster({ key: 'deploy-upgrade', label: 'upgrade', workers: 2, reuseport: false });
  await tsm.start();
  const load = startNodeClient({ port: tsm.port, mode: 'ka', concurrency: 40, maxSec: 120 });
  try {
    await sleep(1000);
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
    const client = await load.stop();
    const med = (k) => median(runs.map((x) => x[k]));
    return { runs, median: { readyMs: med('readyMs'), drainedMs: med('drainedMs'), exitedMs: med('exitedMs'), totalMs: med('totalMs'), wallMs: med('wallMs') }, failed: client.failed ?? 0 };
  } finally {
    await load.stop().catch(() => undefined);
    await tsm.stop();
  }
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
