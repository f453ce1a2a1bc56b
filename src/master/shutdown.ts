import type { Master } from './master.js';
import { oldbinPath, removeIfOurs } from './pidfile.js';
import { clearGenerationTimers, maintainWorkerCount, stopWorker } from './supervise.js';
import { reopenWorkerLog } from './generation.js';
import { settleReload } from './tell.js';

/** TERM/INT: workers get TERM, and KILL if they are still there after this. */
const FAST_KILL_MS = 2000;

/** A stop (plans.ts): no generation respawns or times out any more; every worker is told to go. */
export function stopAllWorkers(m: Master, graceful: boolean): void {
  for (const gen of m.generations.values()) clearGenerationTimers(gen);
  for (const w of m.table.all()) stopWorker(m, w, graceful, graceful ? undefined : FAST_KILL_MS);
}

/** WINCH: the workers finish and exit; the master and its sockets stay. */
export function drainWorkers(m: Master): void {
  for (const gen of m.generations.values()) {
    gen.target = 0;
    if (gen.respawnTimer) clearTimeout(gen.respawnTimer);
    gen.respawnTimer = null;
  }
  for (const w of m.table.all()) stopWorker(m, w, true);
}

/** After WINCH: start the serving generation's workers again with its own config. */
export function restartWorkers(m: Master): void {
  const gen = m.generations.get(m.current);
  if (!gen) return;
  gen.target = gen.config.workerProcesses;
  maintainWorkerCount(m, gen);
}

/** USR1: the master's log, the workers' log files, and every Node worker's own reopen. */
export function reopenLogs(m: Master): void {
  // A log that cannot be opened now (a symlink or a FIFO planted there) keeps the old file.
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      m.log.alert(`reopen failed: ${(err as Error).message}`);
    }
  };
  attempt(() => {
    m.log.reopen();
    m.redirectStdio();
  });
  for (const gen of m.generations.values()) {
    attempt(() => {
      const alert = reopenWorkerLog(gen);
      if (alert) m.log.alert(alert);
    });
  }
  // A Node worker without its handlers yet would take USR1 as Node's own (the inspector).
  for (const w of m.table.all()) {
    if (w.handlers && m.generations.get(w.generation)?.config.worker.kind === 'app') w.child.kill('SIGUSR1');
  }
}

/** Stopping and no worker left: release everything and leave the loop. */
export function checkExit(m: Master): void {
  if (m.phase.name !== 'stopping' || m.table.size > 0) return;
  // A new master that inherited our unix sockets still serves on those paths.
  m.sockets.closeAll(m.upgrade === null);
  // A reload still under way never ends: its waiting clients hear why, nothing else does.
  settleReload(m, { event: 'reload-failed', reason: 'the master exited', serving: m.current });
  removeIfOurs(m.config.pid);
  removeIfOurs(oldbinPath(m.config.pid));
  // The old master of a finished upgrade stays systemd's main process to the end: its last
  // word makes the new one main (notify.ts). Sent by no other process, it is the only
  // MAINPID= the unit's NotifyAccess=main lets through.
  if (m.upgrade?.ready) m.notifier.handOver(m.upgrade.pid);
  m.log.notice('exit');
  m.exit(m.phase.code);
}
