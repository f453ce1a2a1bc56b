// What the master does about one worker: when it exits, cannot even be started, is ready,
// or is looked at by the periodic check (readiness by age, ready_timeout, heartbeat,
// worker_max_memory), and when a generation is whole. Decisions only, as plans.ts's, read
// from a snapshot of the worker and its generation and made by execute.ts; tested
// in-process for every kind of worker and generation (test/worker-plans.test.ts).
import type { Effect } from './plans.js';
import type { GenerationRole } from './generation.js';
import type { RestartReason, WorkerState } from './process-table.js';

/** A worker that served this long was healthy: its crash starts the backoff anew. */
export const STABLE_MS = 10_000;

export interface GenerationView {
  id: number;
  role: GenerationRole;
  /** All its workers have been ready at least once. */
  everReady: boolean;
}

export interface ExitView {
  worker: {
    pid: number;
    slot: number;
    state: WorkerState;
    /** Being replaced (worker_max_memory): its replacement is already starting. */
    recycling: boolean;
    readyAt: number | null;
    killedFor: string | null;
    killReason: RestartReason | null;
  };
  /** Its generation; null when that is gone already. */
  gen: GenerationView | null;
  /** `exited with code 1`, `exited on signal SIGKILL`. */
  how: string;
  /** This master was started by USR2 and its old master still waits for it. */
  newMaster: boolean;
  now: number;
}

/**
 * A worker of a generation that has never been ready failed (`reason`): a reload fails at
 * once, and so does a new master of an upgrade (so that the old one rolls back now). Null
 * when the generation is to retry instead.
 */
export function planFailedStart(gen: GenerationView, newMaster: boolean, reason: string): Effect[] | null {
  if (gen.everReady) return null;
  if (gen.role === 'pending') return [{ do: 'fail-reload', generation: gen.id, reason }];
  if (!newMaster) return null;
  return [
    { do: 'log', level: 'emerg', line: reason },
    { do: 'tell-parent-failed', lines: [reason] },
    { do: 'command', command: 'fast-stop', code: 1 },
  ];
}

/** A worker that could not be started (spawn failed): fail as above, or retry after a backoff step. */
export function planNotStarted(gen: GenerationView, newMaster: boolean, why: string): Effect[] {
  return planFailedStart(gen, newMaster, why) ?? [{ do: 'log', level: 'alert', line: why }, { do: 'respawn', generation: gen.id, stable: false }];
}

export function planWorkerExit(x: ExitView): Effect[] {
  const { worker: w, gen, how } = x;
  const killed = w.killedFor ? ` (${w.killedFor})` : '';
  // Whatever the exit meant, the generation may be gone now, a batch may move on, a stop may end.
  const after: Effect = { do: 'after-worker-exit', generation: gen?.id ?? null };
  if (w.state === 'draining' || !gen || gen.role === 'retiring') {
    return [{ do: 'log', level: 'notice', line: `worker process ${w.pid} ${how}` }, after];
  }
  if (gen.role === 'pending' && !gen.everReady) {
    return [
      { do: 'log', level: 'alert', line: `worker process ${w.pid} ${how}${killed}` },
      ...planFailedStart(gen, x.newMaster, `worker process ${w.pid} of generation ${gen.id} ${how} before it was ready`)!,
      after,
    ];
  }
  const failed = planFailedStart(gen, x.newMaster, `worker process ${w.pid} ${how} before it was ready`);
  if (failed) return [...failed, after];
  // A serving generation's worker died: count it, say it, and start another in its slot.
  const plan: Effect[] = [{ do: 'count-restart', generation: gen.id, slot: w.slot, reason: w.recycling ? null : (w.killReason ?? 'crash') }];
  if (!gen.everReady) plan.push({ do: 'tell-parent-failed', lines: [`worker process ${w.pid} ${how} before it was ready; the master keeps its sockets and retries`] });
  if (w.recycling) {
    plan.push({ do: 'log', level: 'alert', line: `worker process ${w.pid} ${how} while being replaced` });
  } else {
    const stable = w.readyAt !== null && x.now - w.readyAt >= STABLE_MS;
    plan.push({ do: 'respawn', generation: gen.id, stable, why: `worker process ${w.pid} ${how}${killed}` });
  }
  plan.push(after);
  return plan;
}

/** An exec worker that never uses NOTIFY_SOCKET is taken as ready after this long alive. */
export const EXEC_ALIVE_READY_MS = 2000;

/** One worker, as the master's periodic check reads it. */
export interface CheckView {
  worker: {
    pid: number;
    state: WorkerState;
    exec: boolean;
    /** An exec worker has used NOTIFY_SOCKET (it will say READY=1 itself). */
    notified: boolean;
    startedAt: number;
    lastPong: number;
    /** A Node worker's channel is open (heartbeats come and go on it). */
    connected: boolean;
    rss: number;
    /** Its RSS when it became ready. */
    startRss: number | null;
    recycling: boolean;
  };
  gen: {
    id: number;
    role: GenerationRole;
    memoryWarned: boolean;
    readyTimeoutMs: number;
    heartbeatTimeoutMs: number | null;
    maxMemory: number | null;
  };
  now: number;
}

/** The periodic verdict on one worker: readiness by age, ready_timeout, heartbeat, memory; then a ping. */
export function planCheck(x: CheckView): Effect[] {
  const { worker: w, gen: g, now } = x;
  // No verdicts on a worker that is leaving; its heartbeats say what it still holds.
  if (w.state === 'draining') return [{ do: 'ping', pid: w.pid }];
  if (w.state === 'starting') {
    if (w.exec && !w.notified && now - w.startedAt >= EXEC_ALIVE_READY_MS) return [{ do: 'worker-ready', pid: w.pid }];
    if (now - w.startedAt > g.readyTimeoutMs) return [{ do: 'kill-worker', pid: w.pid, why: `not ready within ${g.readyTimeoutMs}ms`, reason: 'ready_timeout' }];
    return [];
  }
  if (!w.connected) return [];
  if (g.heartbeatTimeoutMs !== null && now - w.lastPong > g.heartbeatTimeoutMs) {
    return [{ do: 'kill-worker', pid: w.pid, why: `no heartbeat for ${now - w.lastPong}ms`, reason: 'heartbeat' }];
  }
  const plan: Effect[] = [];
  if (g.maxMemory !== null && w.rss > g.maxMemory && !w.recycling && g.role === 'active') {
    if (w.startRss !== null && w.startRss > g.maxMemory) {
      // A replacement would be over the limit at once: recycling would never end.
      if (!g.memoryWarned) {
        plan.push(
          { do: 'log', level: 'warn', line: `worker_max_memory ${g.maxMemory} is below what a fresh worker uses (${w.startRss} bytes): not replacing workers for memory` },
          { do: 'memory-warned', generation: g.id },
        );
      }
    } else {
      plan.push(
        { do: 'log', level: 'warn', line: `worker process ${w.pid} uses ${w.rss} bytes, over worker_max_memory ${g.maxMemory}: replacing it` },
        { do: 'recycle', pid: w.pid },
      );
    }
  }
  plan.push({ do: 'ping', pid: w.pid });
  return plan;
}

/** A worker said it is ready (or was taken as ready): what follows, in order. */
export function planWorkerReady(x: { worker: { pid: number; generation: number; state: WorkerState }; replaced: number[] }): Effect[] {
  const w = x.worker;
  // Said twice, or after it was told to go: nothing changes.
  if (w.state !== 'starting') return [];
  return [
    { do: 'mark-ready', pid: w.pid },
    { do: 'log', level: 'notice', line: `worker process ${w.pid} is ready (generation ${w.generation})` },
    // A replacement is ready: the worker it replaces (worker_max_memory) may go.
    ...x.replaced.map((pid): Effect => ({ do: 'stop-worker', pid })),
    { do: 'after-worker-ready', generation: w.generation },
  ];
}

/**
 * Whether every worker of a generation is ready for the first time: a reload's generation
 * then takes over, and a master's first one says the master is ready.
 */
export function planGenerationReady(x: { gen: GenerationView & { target: number }; serving: WorkerState[]; first: boolean }): Effect[] {
  const g = x.gen;
  if (g.everReady || x.serving.length < g.target || x.serving.some((s) => s !== 'ready')) return [];
  return [
    { do: 'generation-ever-ready', generation: g.id },
    { do: 'tell', outcome: { event: 'generation-ready', generation: g.id, workers: g.target } },
    ...(g.role === 'pending' ? [{ do: 'finish-reload', generation: g.id } satisfies Effect] : x.first ? [{ do: 'first-ready' } satisfies Effect] : []),
  ];
}
