import type { Config } from '../config/types.js';
import type { Generation } from './generation.js';
import { Logger } from '../log/logger.js';
import type { Master } from './master.js';
import { advanceRollout, batchSize, rolloutStatus, rolloutText, startRollout, type Rollout, type RolloutEffects } from './rollout.js';
import {
  armReadyTimer,
  checkGenerationReady,
  clearGenerationTimers,
  closeSocketsNoGenerationUses,
  maintainWorkerCount,
  releaseUnservedSockets,
  slotState,
  startGeneration,
  stopGeneration,
  stopSlots,
  stopWorker,
} from './supervise.js';

/**
 * HUP: read the config again; if it is valid, bind the new sockets and start a new
 * generation. The old one keeps serving until every new worker is ready (finishReload);
 * any failure leaves it serving as if nothing happened (failReload).
 */
export function startReload(m: Master): void {
  m.notifier.reloading('reloading configuration');
  let config;
  try {
    config = m.readConfig();
  } catch (err) {
    rejectReload(m, err);
    return;
  }
  replaceGeneration(m, config);
}

function rejectReload(m: Master, err: unknown): void {
  const why = err instanceof Error ? err.message : String(err);
  m.log.emerg(why);
  m.log.alert(`reload failed: generation ${m.current} keeps serving`);
  m.settleReload(why);
  m.metrics?.changed('reload', 'failed');
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
}

/**
 * Start a generation from `config` beside the serving one; it takes over once all its
 * workers are ready. Also how TTIN/TTOU change the count when reuseport sockets are shared
 * out per worker.
 */
export function replaceGeneration(m: Master, config: Config): void {
  // The master's own metrics socket never goes to workers, whatever a new config says.
  const clash = config.listens.find((l) => l.key === m.metricsKey);
  if (clash) {
    rejectReload(m, new Error(`listen "${clash.name}" is this master's metrics_listen socket in ${clash.source.file}:${clash.source.line}`));
    return;
  }
  let sockets;
  try {
    sockets = m.sockets.acquire(config.listens, config.workerProcesses);
  } catch (err) {
    rejectReload(m, err);
    return;
  }
  m.stateBeforeReload = m.state;
  m.state = 'reloading';
  const old = m.generations.get(m.current);
  const batch = old && old.target > 0 ? batchSize(config, Math.max(old.target, config.workerProcesses)) : null;
  // Prepared before anything starts: a log that cannot be opened fails the reload here, not
  // when the new generation is ready and half of the switch is done.
  let masterLog: Logger | null = null;
  try {
    const was = m.config.errorLog;
    if (was.path !== config.errorLog.path || was.level !== config.errorLog.level) masterLog = new Logger(config.errorLog.path, config.errorLog.level);
    const gen = startGeneration(m, config, sockets, 'pending', batch ? new Set() : null, masterLog);
    m.log.notice(`reload: generation ${gen.id} starting with ${gen.target} worker(s)${batch ? `, ${batch} at a time` : ''}`);
    if (batch) startRollout(old!, gen, batch, rolloutEffects(m), (r) => (m.rollout = r));
  } catch (err) {
    // e.g. the error_log or worker_log cannot be opened: nothing was started, the old generation serves.
    masterLog?.close();
    m.state = m.stateBeforeReload;
    closeSocketsNoGenerationUses(m);
    releaseUnservedSockets(m, null);
    rejectReload(m, err);
  }
}

export function finishReload(m: Master, gen: Generation): void {
  const previous = m.current;
  m.rollout = null;
  gen.slots = null;
  gen.role = 'active';
  m.current = gen.id;
  m.config = gen.config;
  if (gen.masterLog) {
    m.log.close();
    m.log = gen.masterLog;
    gen.masterLog = null;
    m.redirectStdio();
  }
  for (const old of [...m.generations.values()]) if (old.id !== gen.id && old.role !== 'retiring') stopGeneration(m, old);
  m.state = 'running';
  m.log.notice(`reload finished: generation ${gen.id} serves, generation ${previous} is stopping`);
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}`);
  m.settleReload(null);
  m.metrics?.changed('reload', 'ok');
}

export function failReload(m: Master, gen: Generation, reason: string): void {
  const r = m.rollout;
  if (r && !r.back && r.to === gen.id) return rollBack(m, gen, r, reason);
  m.log.alert(`reload failed: ${reason}; generation ${m.current} keeps serving`);
  stopGeneration(m, gen);
  settleFailedReload(m, gen, reason);
}

function settleFailedReload(m: Master, gen: Generation | null, reason: string): void {
  releaseUnservedSockets(m, gen);
  m.state = m.stateBeforeReload;
  m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
  m.settleReload(reason);
  m.metrics?.changed('reload', 'failed');
}

/**
 * A batched reload failed part-way: the new workers that do not serve yet stop now, and the
 * old generation takes its slots back batch by batch, each new worker stopping once the old
 * one for its slot is ready. The reload's outcome is told when that is done.
 */
function rollBack(m: Master, gen: Generation, r: Rollout, reason: string): void {
  const old = m.generations.get(r.from);
  const why = `${reason} (in ${rolloutText(rolloutStatus(r))})`;
  gen.role = 'retiring';
  clearGenerationTimers(gen);
  for (const w of m.table.ofGeneration(gen.id)) if (w.state !== 'ready') stopWorker(m, w, true, gen.config.workerShutdownTimeoutMs);
  if (!old) {
    m.rollout = null;
    m.log.alert(`reload failed: ${why}`);
    stopGeneration(m, gen);
    settleFailedReload(m, gen, why);
    return;
  }
  m.log.alert(`reload failed: ${why}; generation ${old.id} takes its slots back ${r.batch} at a time`);
  startRollout(gen, old, r.batch, rolloutEffects(m), (plan) => (m.rollout = plan), true, why);
}

/** After a worker is ready or has exited: the rollout under way may take its next step. */
export function stepRollout(m: Master): void {
  const r = m.rollout;
  if (!r) return;
  const to = m.generations.get(r.to);
  if (!to) {
    m.rollout = null;
    return;
  }
  advanceRollout(r, m.generations.get(r.from), to, (generation, slot) => slotState(m, generation, slot), rolloutEffects(m));
}

function rolloutEffects(m: Master): RolloutEffects {
  return {
    spawn: (gen) => maintainWorkerCount(m, gen),
    drain: (gen, slots) => stopSlots(m, gen, slots),
    armReadyTimer: (gen) => armReadyTimer(m, gen),
    log: (msg) => m.log.notice(msg),
    finished: (r) => {
      m.rollout = null;
      const to = m.generations.get(r.to);
      if (to) to.slots = null;
      if (!r.back) {
        if (to) checkGenerationReady(m, to);
        return;
      }
      const failed = m.generations.get(r.from) ?? null;
      if (failed) stopGeneration(m, failed);
      m.log.alert(`reload failed: ${r.reason}; generation ${r.to} serves again on all ${to?.target ?? 0} slot(s)`);
      settleFailedReload(m, failed, r.reason);
    },
  };
}
