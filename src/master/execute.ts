// The one executor of plans.ts: each effect a decision returned, made in order. An effect
// that fails (a rename, a signal) is said and the plan goes on: the others do not depend on
// it, and a plan left half-made would leave the master in no phase of the table.
import type { Master } from './master.js';
import type { Effect } from './plans.js';
import { reopenLogs, checkExit, drainWorkers, restartWorkers, stopAllWorkers } from './shutdown.js';
import { startReload } from './reload.js';
import { changeWorkerCount } from './supervise.js';
import { tell } from './tell.js';
import { armUpgradeTimer, endUpgrade, startUpgrade } from './upgrade.js';
import { restoreAllSlots } from './upgrade-batches.js';

export function execute(m: Master, effects: readonly Effect[]): void {
  for (const e of effects) {
    try {
      apply(m, e);
    } catch (err) {
      m.log.alert(`${e.do} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function apply(m: Master, e: Effect): void {
  switch (e.do) {
    case 'log':
      return m.log.log(e.level, e.line);
    case 'tell':
      return tell(m, e.outcome);
    case 'notify':
      return m.notifier.send(...e.fields);
    case 'set-state':
      m.state = e.state;
      if (e.stopMode !== undefined) m.stopMode = e.stopMode;
      if (e.stopCode !== undefined) m.stopCode = e.stopCode;
      // Nothing of a batched reload or upgrade goes on once the master stops.
      if (e.state === 'stopping') m.rollout = m.incoming = null;
      return;
    case 'stop-workers':
      return stopAllWorkers(m, e.graceful);
    case 'drain-workers':
      return drainWorkers(m);
    case 'restart-workers':
      return restartWorkers(m);
    case 'check-exit':
      return checkExit(m);
    case 'reload':
      return startReload(m);
    case 'reopen-logs':
      return reopenLogs(m);
    case 'worker-count':
      return changeWorkerCount(m, e.delta);
    case 'start-upgrade':
      return startUpgrade(m);
    case 'upgrade-progress':
      if (!m.upgrade) return;
      if (e.ready) m.upgrade.ready = true;
      if (e.killing) m.upgrade.killing = true;
      return;
    case 'upgrade-timer':
      return armUpgradeTimer(m, e.ms);
    case 'signal-new-master':
      m.upgrade?.child.kill(e.signal);
      return;
    case 'end-upgrade':
      return endUpgrade(m);
    case 'restore-slots':
      return restoreAllSlots(m);
    case 'serve-metrics':
      return m.serveMetrics(e.on);
    case 'watchdog':
      return e.main ? m.watchdog.takeOver() : m.watchdog.handOver();
  }
}
