import pidusage from 'pidusage';
import type { Master } from '../master/master.js';
import { batchesStatus } from '../master/batches.js';
import type { MasterStatus, UpgradeStatus } from './protocol.js';

/**
 * pidusage keeps a sample per pid this long, CPU % is measured from it, and it holds the
 * pid's /proc/PID/stat open as long (even after the pid is gone): short, so that workers
 * replaced under a status poller do not pile up open files in the master.
 */
const SAMPLE_MAXAGE_MS = 5000;

/** When each pid was last sampled here: a CPU % from pidusage needs a previous sample. */
const sampled = new Map<number, number>();

interface Usage {
  cpu: number;
  rss: number;
}

/**
 * CPU and RSS of every worker with one pidusage call (one /proc sweep for 64 workers, not
 * 64 calls). CPU %: since the previous sample if pidusage still has it, else (the first
 * sample of a pid, which pidusage reports as 0) the lifetime average, as ps.
 */
async function usageOf(pids: number[]): Promise<Map<number, Usage>> {
  const out = new Map<number, Usage>();
  if (pids.length === 0) return out;
  let stats: Awaited<ReturnType<typeof pidusage>>;
  try {
    stats = await pidusage(pids, { maxage: SAMPLE_MAXAGE_MS });
  } catch {
    // Every pid vanished meanwhile (a lone failure is dropped by pidusage itself).
    return out;
  }
  const now = Date.now();
  for (const pid of pids) {
    const s = stats[pid];
    if (!s) continue;
    const previous = sampled.get(pid);
    // pidusage drops a sample SAMPLE_MAXAGE_MS after its last use, not before.
    const fresh = previous !== undefined && now - previous < SAMPLE_MAXAGE_MS - 1000;
    out.set(pid, { cpu: fresh ? s.cpu : s.elapsed > 0 ? (s.ctime / s.elapsed) * 100 : 0, rss: s.memory });
    sampled.set(pid, now);
  }
  for (const pid of sampled.keys()) if (!pids.includes(pid)) sampled.delete(pid);
  return out;
}

function upgradeOf(m: Master): UpgradeStatus {
  const phase = m.upgradePhase();
  if (phase !== 'none') return { phase, partner: m.upgrade?.pid ?? m.oldMaster ?? 0 };
  return {
    phase,
    ...(m.lastRollback ? { lastRollback: { ...m.lastRollback } } : {}),
    ...(m.lastRefusal ? { lastRefusal: { ...m.lastRefusal } } : {}),
  };
}

/** What `-s status` shows of one master: itself, its upgrade partner, its workers. */
export async function snapshot(m: Master): Promise<MasterStatus> {
  const workers = m.table.all();
  const usage = await usageOf(workers.map((w) => w.pid));
  // Read after the await: the table may have changed meanwhile, the answer is as of now.
  const now = Date.now();
  return {
    pid: process.pid,
    generation: m.current,
    state: m.state,
    rollout: m.batches && m.batches.giver !== 'old-master' ? batchesStatus(m.batches) : null,
    uptimeMs: now - m.startedAt,
    upgrade: upgradeOf(m),
    totals: { requests: m.totals.requests, restarts: m.totals.restarts },
    workers: m.table.all().map((w) => ({
      pid: w.pid,
      generation: w.generation,
      slot: w.slot,
      state: w.state,
      uptimeMs: now - w.startedAt,
      restarts: m.generations.get(w.generation)?.slotRestarts[w.slot] ?? 0,
      cpu: usage.get(w.pid)?.cpu ?? null,
      rss: usage.get(w.pid)?.rss ?? null,
      connections: w.connections,
      requests: w.requests,
      loopDelayMs: w.loopDelay ? { p50: w.loopDelay.p50 * 1000, p99: w.loopDelay.p99 * 1000 } : null,
    })),
  };
}
