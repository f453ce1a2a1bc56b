import pidusage from 'pidusage';
import type { Master } from '../master/master.js';
import { isAlive } from '../master/pidfile.js';
import type { MasterStatus } from './protocol.js';

/** What `-s status` shows: the master, its upgrade partner, its workers, with CPU and RSS. */
export async function snapshot(m: Master): Promise<MasterStatus> {
  const now = Date.now();
  const workers = m.table.all();
  // One pidusage call for every worker: 64 workers cost one /proc sweep, not 64.
  let usage: Record<number, { cpu: number; memory: number }> = {};
  if (workers.length > 0) {
    try {
      usage = await pidusage(workers.map((w) => w.pid));
    } catch {
      // A worker exited between the table read and /proc: report without usage.
    }
  }
  const upgrade: MasterStatus['upgrade'] = m.upgrade
    ? { role: 'old', newPid: m.upgrade.pid, newReady: m.upgrade.ready }
    : m.oldMaster !== null
      ? { role: 'new', oldPid: m.oldMaster, oldAlive: isAlive(m.oldMaster) }
      : { role: 'none' };
  return {
    pid: process.pid,
    generation: m.current,
    state: m.state,
    uptimeMs: now - m.startedAt,
    upgrade,
    totals: { ...m.totals },
    workers: workers.map((w) => ({
      pid: w.pid,
      generation: w.generation,
      slot: w.slot,
      state: w.state,
      uptimeMs: now - w.startedAt,
      restarts: m.generations.get(w.generation)?.slotRestarts[w.slot] ?? 0,
      cpu: usage[w.pid]?.cpu ?? null,
      rss: usage[w.pid]?.memory ?? null,
      connections: w.connections,
      requests: w.requests,
    })),
  };
}
