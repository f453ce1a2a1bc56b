// The one executor of plans.ts: each effect a decision returned, made in order. An effect
// that fails (a rename, a signal) is said and the plan goes on: the others do not depend on
// it, and a plan left half-made would leave the master in no phase of the table.
import type { Master } from './master.js';
import type { Effect } from './plans.js';
import { reopenLogs, checkExit, drainWorkers, restartWorkers, stopAllWorkers } from './shutdown.js';
import { activateGeneration, failReload, finishReload, rollBack, startReload, takeOverLog } from './reload.js';
import {
  afterWorkerExit,
  afterWorkerReady,
  changeWorkerCount,
  countRestart,
  killWorker,
  markReady,
  ping,
  recycle,
  releaseUnservedSockets,
  scheduleRespawn,
  stopGeneration,
  stopSlots,
  stopWorker,
} from './supervise.js';
import { tell } from './tell.js';
import { armUpgradeTimer, endUpgrade, startUpgrade } from './upgrade.js';
import { checkBatchDrained, giveUpSlots, restoreAllSlots } from './upgrade-batches.js';

type WorkerEffect = Extract<Effect, { do: 'ping' | 'worker-ready' | 'kill-worker' | 'recycle' | 'mark-ready' | 'stop-worker' }>;

/** An effect on one worker: none when it is gone meanwhile. */
function applyToWorker(m: Master, e: WorkerEffect): void {
  const w = m.table.get(e.pid);
  if (!w) return;
  switch (e.do) {
    case 'ping':
      return ping(w);
    case 'worker-ready':
      return markReady(m, w);
    case 'kill-worker':
      return killWorker(m, w, e.why, e.reason);
    case 'recycle':
      return recycle(m, w);
    case 'mark-ready':
      w.state = 'ready';
      w.readyAt = w.lastPong = Date.now();
      return;
    case 'stop-worker':
      return stopWorker(m, w, true);
  }
}

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
    case 'set-phase':
      m.phase = e.phase;
      // Nothing of a batched reload or upgrade goes on once the master stops.
      if (e.phase.name === 'stopping') m.rollout = m.incoming = null;
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
    case 'give-up-slots':
      return giveUpSlots(m, e.slots);
    case 'drain-slots': {
      const gen = m.generations.get(m.current);
      return gen ? stopSlots(m, gen, e.slots) : undefined;
    }
    case 'check-batch-drained':
      return checkBatchDrained(m);
    case 'serve-metrics':
      return m.serveMetrics(e.on);
    case 'fail-reload': {
      const gen = m.generations.get(e.generation);
      return gen ? failReload(m, gen, e.reason) : undefined;
    }
    case 'tell-parent-failed':
      return m.tellParent({ t: 'failed', pid: process.pid, lines: e.lines });
    case 'command':
      m.command(e.command, undefined, e.code);
      return;
    case 'count-restart':
      return countRestart(m, e.generation, e.slot, e.reason);
    case 'respawn': {
      const gen = m.generations.get(e.generation);
      return gen ? scheduleRespawn(m, gen, e.stable, e.why) : undefined;
    }
    case 'after-worker-exit':
      return afterWorkerExit(m, e.generation);
    case 'memory-warned': {
      const gen = m.generations.get(e.generation);
      if (gen) gen.memoryWarned = true;
      return;
    }
    case 'ping':
    case 'worker-ready':
    case 'kill-worker':
    case 'recycle':
    case 'mark-ready':
    case 'stop-worker':
      return applyToWorker(m, e);
    case 'after-worker-ready':
      return afterWorkerReady(m, e.generation);
    case 'generation-ever-ready': {
      const gen = m.generations.get(e.generation);
      if (!gen) return;
      gen.everReady = true;
      if (gen.readyTimer) clearTimeout(gen.readyTimer);
      gen.readyTimer = null;
      return;
    }
    case 'finish-reload': {
      const gen = m.generations.get(e.generation);
      return gen ? finishReload(m, gen) : undefined;
    }
    case 'first-ready':
      return m.onFirstReady();
    case 'activate-generation':
    case 'stop-generation':
    case 'take-over-log':
    case 'roll-back': {
      const gen = m.generations.get(e.generation);
      if (!gen) return;
      if (e.do === 'activate-generation') return activateGeneration(m, gen);
      if (e.do === 'stop-generation') return stopGeneration(m, gen);
      if (e.do === 'take-over-log') return takeOverLog(m, gen);
      const r = m.rollout;
      return r ? rollBack(m, gen, r, e.reason) : undefined;
    }
    case 'release-unserved':
      return releaseUnservedSockets(m, e.generation === null ? null : (m.generations.get(e.generation) ?? null));
  }
}
