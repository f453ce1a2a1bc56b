import type { Config } from '../config/types.js';
import { answers, askStatus, isSocket } from '../control/client.js';
import type { MasterStatus } from '../control/protocol.js';
import { oldbinPath } from '../protocol.js';
import { decide, type MasterPhase, type UpgradePhase } from '../master/phase.js';
import { sleep } from './log-watch.js';

const EVERY_MS = 100;

/**
 * An upgrade under way, as the old master on PATH.oldbin tells it (the pidfile is moved
 * away meanwhile, so this is asked first); undefined when there is none or no socket.
 */
export async function upgradeUnderWay(config: Config): Promise<string | undefined> {
  if (!config.controlSocket || !isSocket(oldbinPath(config.controlSocket))) return undefined;
  try {
    const st = await askStatus(oldbinPath(config.controlSocket), 2000);
    return st.upgrade.role === 'old' ? `an upgrade is under way (new master process ${st.upgrade.newPid})` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `-s upgrade` watching the old master on its control socket: it answers on PATH, and on
 * PATH.oldbin from USR2 until it exits or rolls back. Polls in the background, so that the
 * synchronous checks of the upgrade dance read the latest status; null when there is no
 * control socket (the dance then follows the pidfile and the error log).
 */
export class OldMasterProbe {
  /** The old master's latest status; null until it answered once, or after it is gone. */
  latest: MasterStatus | null = null;
  private stopped = false;

  private constructor(
    private readonly path: string,
    private readonly pid: number,
  ) {}

  static async start(config: Config, pid: number): Promise<OldMasterProbe | null> {
    if (!config.controlSocket || !(await answers(config.controlSocket, pid))) return null;
    const probe = new OldMasterProbe(config.controlSocket, pid);
    await probe.poll();
    void probe.loop();
    return probe;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Why a USR2 now would be ignored, in the master's words; undefined when it would not. */
  refusal(): string | undefined {
    const st = this.latest;
    if (!st) return undefined;
    // The master's own table, read from its status: the same reasons its log would give.
    const u = st.upgrade;
    const upgrade: UpgradePhase = u.role === 'old' ? (u.newReady ? 'ready' : 'starting') : u.role;
    const partner = u.role === 'old' ? u.newPid : u.role === 'new' ? u.oldPid : undefined;
    const phase = (st.state === 'stopping' ? 'stopping-graceful' : st.state) as MasterPhase;
    const d = decide({ phase, upgrade, ...(partner !== undefined ? { partner } : {}), pid1: st.pid === 1 }, 'upgrade');
    return 'refuse' in d ? d.refuse.reason : undefined;
  }

  /** The new master's pid once the old master says all its workers are ready. */
  newReady(): number | undefined {
    const u = this.latest?.upgrade;
    return u?.role === 'old' && u.newReady ? u.newPid : undefined;
  }

  /** The old master's account of a rollback that happened at or after `since` (ms since the epoch). */
  rolledBack(since: number): string | undefined {
    const u = this.latest?.upgrade;
    return u?.role === 'none' && u.lastRollback && u.lastRollback.at >= since ? `${u.lastRollback.reason}; rolled back` : undefined;
  }

  /** Why the old master ignored a USR2 sent at or after `since`, in its own words. */
  refusedSince(since: number): string | undefined {
    const u = this.latest?.upgrade;
    return u?.role === 'none' && u.lastRefusal && u.lastRefusal.at >= since ? u.lastRefusal.reason : undefined;
  }

  /** How many workers the old master still has; undefined when unknown. */
  workersLeft(): number | undefined {
    return this.latest?.workers.length;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await sleep(EVERY_MS);
      await this.poll();
    }
  }

  private async poll(): Promise<void> {
    for (const p of [oldbinPath(this.path), this.path]) {
      try {
        const st = await askStatus(p, 2000);
        if (st.pid === this.pid) {
          this.latest = st;
          return;
        }
      } catch {
        // Not there (yet, or any more): try the other path.
      }
    }
  }
}
