import type { Config } from '../config/types.js';
import type { Generation } from './generation.js';
import { Logger } from '../log/logger.js';
import type { Master } from './master.js';
import { execute } from './execute.js';
import { planReloadFailed, planReloadFinished, planReloadSettled, type ReloadView } from './reload-plans.js';
import { tell } from './tell.js';
import { advanceRollout, batchSize, rolloutStatus, rolloutText, startRollout, type Rollout, type RolloutEffects } from './rollout.js';
import {
  armReadyTimer,
  checkGenerationReady,
  clearGenerationTimers,
  closeSocketsNoGenerationUses,
  maintainWorkerCount,
  prepareGeneration,
  releaseUnservedSockets,
  slotState,
  startGeneration,
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

/** Nothing was started: the serving generation serves on, as if there had been no reload. */
function rejectReload(m: Master, err: unknown): void {
  tell(m, { event: 'reload-failed', reason: err instanceof Error ? err.message : String(err), serving: m.current });
}

/**
 * Start a generation from `config` beside the serving one; it takes over once all its
 * workers are ready. Also how TTIN/TTOU change the count when reuseport sockets are shared
 * out per worker.
 */
export function replaceGeneration(m: Master, config: Config): void {
  const old = m.generations.get(m.current);
  const batch = old && old.target > 0 ? batchSize(config, Math.max(old.target, config.workerProcesses)) : null;
  // Prepare everything that can fail before anything changes: a failure here leaves the
  // master as it was (the error_log used to fail only once the new workers were ready).
  let gen: Generation;
  try {
    gen = prepareReload(m, config, batch);
  } catch (err) {
    closeSocketsNoGenerationUses(m);
    releaseUnservedSockets(m, null);
    rejectReload(m, err);
    return;
  }
  // Commit: from here a worker that cannot start fails the reload like one that exits.
  m.phase = { name: 'reloading', returnTo: m.phase.name === 'draining' ? 'draining' : 'running' };
  startGeneration(m, gen);
  if (gen.role !== 'pending') return;
  m.log.notice(`reload: generation ${gen.id} starting with ${gen.target} worker(s)${batch ? `, ${batch} at a time` : ''}`);
  if (batch) startRollout(old!, gen, batch, rolloutEffects(m), (r) => (m.rollout = r));
}

/** The new generation's sockets, logs and pinned app, or the reason the reload fails (thrown). */
function prepareReload(m: Master, config: Config, batch: number | null): Generation {
  // The master's own metrics socket never goes to workers, whatever a new config says.
  const clash = config.listens.find((l) => l.key === m.metricsKey);
  if (clash) throw new Error(`listen "${clash.name}" is this master's metrics_listen socket in ${clash.source.file}:${clash.source.line}`);
  const sockets = m.sockets.acquire(config.listens, config.workerProcesses);
  const was = m.config.errorLog;
  const masterLog = was.path !== config.errorLog.path || was.level !== config.errorLog.level ? new Logger(config.errorLog.path, config.errorLog.level) : null;
  try {
    return prepareGeneration(config, sockets, 'pending', batch ? new Set() : null, masterLog);
  } catch (err) {
    masterLog?.close();
    throw err;
  }
}

/** What reload-plans.ts reads of the master about a reload's generation. */
function reloadView(m: Master, gen: Generation): ReloadView {
  return {
    generation: gen.id,
    current: m.current,
    phase: m.phase,
    rollout: m.rollout ? { to: m.rollout.to, back: m.rollout.back } : null,
    others: [...m.generations.values()].filter((g) => g.id !== gen.id && g.role !== 'retiring').map((g) => g.id),
  };
}

export function finishReload(m: Master, gen: Generation): void {
  execute(m, planReloadFinished(reloadView(m, gen)));
}

export function failReload(m: Master, gen: Generation, reason: string): void {
  execute(m, planReloadFailed(reloadView(m, gen), reason));
}

/** The reload's generation serves now: current, with its config; its batches, if any, are over. */
export function activateGeneration(m: Master, gen: Generation): void {
  m.rollout = null;
  gen.slots = null;
  gen.role = 'active';
  m.current = gen.id;
  m.config = gen.config;
}

/** The master writes to the error_log the reload prepared (already open), its stdio too. */
export function takeOverLog(m: Master, gen: Generation): void {
  const log = gen.masterLog;
  if (!log) return;
  gen.masterLog = null;
  m.log.close();
  m.log = log;
  try {
    m.redirectStdio();
  } catch (err) {
    m.log.alert(`stdout and stderr stay where they were: ${(err as Error).message}`);
  }
}

/**
 * A batched reload failed part-way: the new workers that do not serve yet stop now, and the
 * old generation takes its slots back batch by batch, each new worker stopping once the old
 * one for its slot is ready. The reload's outcome is told when that is done.
 */
export function rollBack(m: Master, gen: Generation, r: Rollout, reason: string): void {
  const old = m.generations.get(r.from);
  const why = `${reason} (in ${rolloutText(rolloutStatus(r))})`;
  gen.role = 'retiring';
  clearGenerationTimers(gen);
  for (const w of m.table.ofGeneration(gen.id)) if (w.state !== 'ready') stopWorker(m, w, true);
  if (!old) {
    m.rollout = null;
    execute(m, planReloadSettled(m, gen.id, why));
    return;
  }
  tell(m, { event: 'reload-rolling-back', reason: why, serving: old.id, batch: r.batch });
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
      execute(m, planReloadSettled(m, m.generations.has(r.from) ? r.from : null, r.reason));
    },
  };
}
