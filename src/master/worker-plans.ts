// What the master does about one worker: when it exits, cannot even be started, is ready,
// or is looked at by the periodic check (readiness by age, ready_timeout, heartbeat,
// worker_max_memory), and when a generation is whole. Decisions only, as plans.ts's, read
// from the model and made by execute.ts; tested in-process for every kind of worker and
// generation (test/worker-plans.test.ts).
import { describeExit } from '../proc.js';
import type { Effect } from './effects.js';
import { generationOf, servingOf, workerOf, workersOf, type GenerationModel, type Model, type WorkerModel } from './model.js';
import { planAsked } from './plans.js';
import { planReloadFailed, planReloadFinished } from './reload-plans.js';
import { stopWorker } from './stops.js';

/** A worker that served this long was healthy: its crash starts the backoff anew. */
export const STABLE_MS = 10_000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 30_000;

/** A heartbeat request: the worker answers with its figures (supervise.ts). */
function ping(m: Model, pid: number): Effect {
  return { do: 'send', to: pid, msg: { t: 'ping', seq: m.now } };
}

/** The model without a worker that has exited. */
function without(m: Model, pid: number): Model {
  return { ...m, workers: m.workers.filter((w) => w.pid !== pid) };
}

/**
 * A worker of a generation that has never been ready failed (`reason`): a reload fails at
 * once. So does the master's first generation: a start, or the new master of an upgrade
 * (the old one rolls back now), leaves nothing behind (no master, pidfile or open port);
 * systemd's Restart= is the retry loop. Null when the generation is to retry instead: it
 * was ready once, and its crashes get the backoff.
 */
function planFailedStart(m: Model, gen: GenerationModel, reason: string): Effect[] | null {
  if (gen.everReady) return null;
  if (gen.role === 'pending') return planReloadFailed(m, gen.id, reason);
  return [{ do: 'log', level: 'emerg', line: reason }, { do: 'send', to: 'parent', msg: { t: 'failed', pid: m.pid, lines: [reason] } }, ...planAsked(m, 'fast-stop', { code: 1 })];
}

/**
 * Exponential backoff per generation: crashes while a respawn is already scheduled join
 * that step, so a crash loop logs one line per step, not one per crash. No step (a stable
 * worker's crash): settle starts the missing workers at once.
 */
function planRespawn(m: Model, gen: GenerationModel, stable: boolean, why?: string): Effect[] {
  const fx: Effect[] = [];
  let backoff = gen.backoffMs;
  if (gen.respawning) {
    if (why) fx.push({ do: 'log', level: 'debug', line: `${why}; respawn already scheduled` });
  } else {
    backoff = stable ? 0 : Math.min(Math.max(gen.backoffMs * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
    fx.push({ do: 'set-generation', generation: gen.id, set: { backoffMs: backoff } });
    if (why) fx.push({ do: 'log', level: 'alert', line: `${why}; respawning in ${backoff}ms` });
  }
  // Also when the last one died after the step was scheduled (several workers crashing).
  if (servingOf(m, gen.id).length === 0) fx.push({ do: 'log', level: 'alert', line: `no worker process of generation ${gen.id} is running; the listening sockets stay open` });
  if (!gen.respawning && backoff > 0) fx.push({ do: 'timer', timer: { kind: 'respawn', generation: gen.id }, ms: backoff });
  return fx;
}

/** A worker that could not be started (spawn failed): fail as above, or retry after a backoff step. */
export function planNotStarted(m: Model, generation: number, why: string): Effect[] {
  const gen = generationOf(m, generation);
  if (!gen || gen.role === 'retiring') return [{ do: 'log', level: 'alert', line: why }];
  return planFailedStart(m, gen, why) ?? [{ do: 'log', level: 'alert', line: why }, ...planRespawn(m, gen, false)];
}

/** A worker exited: out of the table, and what its exit means. */
export function planWorkerExit(model: Model, pid: number, code: number | null, signal: NodeJS.Signals | null): Effect[] {
  const w = workerOf(model, pid);
  if (!w) return [];
  // A shell that left on its stop signal may have children still finishing: they keep the stop's deadline.
  const groupMs = w.group ? (w.state === 'draining' && w.stopDeadline !== null ? w.stopDeadline - model.now : 0) : null;
  const m = without(model, pid);
  return [{ do: 'forget-worker', pid, groupMs }, ...meaningOfExit(m, w, describeExit(code, signal))];
}

function meaningOfExit(m: Model, w: WorkerModel, how: string): Effect[] {
  const gen = generationOf(m, w.generation);
  const killed = w.killedFor ? ` (${w.killedFor})` : '';
  if (w.state === 'draining' || !gen || gen.role === 'retiring') return [{ do: 'log', level: 'notice', line: `worker process ${w.pid} ${how}` }];
  // The app's own reason, as its worker said it: what the CLI of the start, reload or upgrade prints.
  const why = w.startError ? `: ${w.startError}` : killed;
  if (gen.role === 'pending' && !gen.everReady) {
    return [{ do: 'log', level: 'alert', line: `worker process ${w.pid} ${how}${killed}` }, ...planFailedStart(m, gen, `worker process ${w.pid} of generation ${gen.id} ${how} before it was ready${why}`)!];
  }
  const failed = planFailedStart(m, gen, `worker process ${w.pid} ${how} before it was ready${why}`);
  if (failed) return failed;
  // A serving generation's worker died: count it, say it, and start another in its slot.
  const plan: Effect[] = [{ do: 'count-restart', restart: { generation: gen.id, slot: w.slot }, metric: w.recycling ? null : (w.killReason ?? 'crash') }];
  if (w.recycling) return [...plan, { do: 'log', level: 'alert', line: `worker process ${w.pid} ${how} while being replaced` }];
  const stable = w.readyAt !== null && m.now - w.readyAt >= STABLE_MS;
  return [...plan, ...planRespawn(m, gen, stable, `worker process ${w.pid} ${how}${killed}`)];
}

/** An exec worker that never uses NOTIFY_SOCKET is taken as ready after this long alive. */
export const EXEC_ALIVE_READY_MS = 2000;

/** KILL, once, saying why; `reason` is the metric's label of the restart that follows. */
function killWorker(w: WorkerModel, why: string, reason: WorkerModel['killReason'] & string): Effect[] {
  if (w.killedFor) return [];
  return [
    { do: 'set-worker', pid: w.pid, set: { killedFor: why, killReason: reason } },
    { do: 'log', level: 'alert', line: `worker process ${w.pid}: ${why}, killing it` },
    { do: 'signal', pid: w.pid, signal: 'SIGKILL' },
  ];
}

/** The periodic verdict on one worker: readiness by age, ready_timeout, heartbeat, memory; then a ping. */
export function planCheck(m: Model, w: WorkerModel): Effect[] {
  const g = generationOf(m, w.generation);
  if (!g) return [];
  const cfg = g.config;
  const now = m.now;
  // No verdicts on a worker that is leaving; its heartbeats say what it still holds.
  if (w.state === 'draining') return [ping(m, w.pid)];
  if (w.state === 'starting') {
    if (cfg.worker.kind === 'exec' && !w.notified && now - w.startedAt >= EXEC_ALIVE_READY_MS) return planWorkerReady(m, w.pid);
    if (now - w.startedAt > cfg.readyTimeoutMs) return killWorker(w, `not ready within ${cfg.readyTimeoutMs}ms`, 'ready_timeout');
    return [];
  }
  if (!w.connected) return [];
  const heartbeat = cfg.workerHeartbeatTimeoutMs;
  if (heartbeat !== null && now - w.lastPong > heartbeat) return killWorker(w, `no heartbeat for ${now - w.lastPong}ms`, 'heartbeat');
  const plan: Effect[] = [];
  const max = cfg.workerMaxMemory;
  if (max !== null && w.rss > max && !w.recycling && g.role === 'active') {
    if (w.startRss !== null && w.startRss > max) {
      // A replacement would be over the limit at once: recycling would never end.
      if (!g.memoryWarned) {
        plan.push(
          { do: 'log', level: 'warn', line: `worker_max_memory ${max} is below what a fresh worker uses (${w.startRss} bytes): not replacing workers for memory` },
          { do: 'set-generation', generation: g.id, set: { memoryWarned: true } },
        );
      }
    } else {
      // Replaced by a new worker in its slot (settle starts it; it goes once that is ready).
      plan.push(
        { do: 'log', level: 'warn', line: `worker process ${w.pid} uses ${w.rss} bytes, over worker_max_memory ${max}: replacing it` },
        { do: 'set-worker', pid: w.pid, set: { recycling: true } },
        { do: 'count-restart', restart: null, metric: 'memory' },
      );
    }
  }
  plan.push(ping(m, w.pid));
  return plan;
}

/** The tick: every worker looked at. */
export function planChecks(m: Model): Effect[] {
  return m.workers.flatMap((w) => planCheck(m, w));
}

/** A worker said it is ready (or was taken as ready): what follows, in order. */
export function planWorkerReady(m: Model, pid: number): Effect[] {
  const w = workerOf(m, pid);
  // Said twice, or after it was told to go: nothing changes.
  if (!w || w.state !== 'starting') return [];
  const replaced = workersOf(m, w.generation).filter((o) => o.recycling && o.slot === w.slot);
  return [
    { do: 'set-worker', pid, set: { state: 'ready', readyAt: m.now, lastPong: m.now } },
    { do: 'log', level: 'notice', line: `worker process ${pid} is ready (generation ${w.generation})` },
    // A replacement is ready: the worker it replaces (worker_max_memory) may go.
    ...replaced.flatMap((o) => stopWorker(m, o, 'graceful')),
  ];
}

/** The master's first generation is whole: the master is ready (pidfile, READY=1, the launcher). */
function planFirstReady(m: Model): Effect[] {
  return [
    { do: 'serve-metrics', on: true },
    { do: 'set', set: { ready: true } },
    // A new master publishes its pid only now; it says READY=1 to systemd once it is main (settle.ts).
    ...(m.oldMaster !== null ? ([{ do: 'pidfile', op: 'write' }] satisfies Effect[]) : []),
    { do: 'notify', fields: ['READY=1'], status: '' },
    { do: 'send', to: 'parent', msg: { t: 'ready', pid: m.pid } },
  ];
}

/**
 * Whether every worker of a generation is ready for the first time: a reload's generation
 * then takes over, and a master's first one says the master is ready.
 */
export function planGenerationReady(m: Model, g: GenerationModel): Effect[] {
  const serving = servingOf(m, g.id);
  if (g.everReady || g.role === 'retiring' || g.target === 0 || serving.length < g.target || serving.some((w) => w.state !== 'ready')) return [];
  return [
    { do: 'set-generation', generation: g.id, set: { everReady: true } },
    { do: 'timer', timer: { kind: 'ready', generation: g.id }, ms: null },
    { do: 'tell', outcome: { event: 'generation-ready', generation: g.id, workers: g.target } },
    ...(g.role === 'pending' ? planReloadFinished(m, g.id) : g.id === m.firstGeneration ? planFirstReady(m) : []),
  ];
}
