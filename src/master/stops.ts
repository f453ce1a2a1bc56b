// How a worker or a generation is told to stop, as effects: shared by the plans of commands,
// reloads, batches and upgrades.
import type { Effect } from './effects.js';
import { generationOf, workersOf, type Model, type WorkerModel } from './model.js';

/** TERM/INT: workers get TERM, and KILL if they are still there after this. */
export const FAST_KILL_MS = 2000;

/**
 * QUIT (graceful) or TERM (fast), and KILL if it is still there after the timeout (the kill timer): by
 * default the worker_shutdown_timeout of its own generation's config. A graceful stop of a
 * worker already leaving changes nothing.
 */
export function stopWorker(m: Model, w: WorkerModel, how: 'graceful' | 'fast', timeoutMs?: number): Effect[] {
  const graceful = how === 'graceful';
  if (w.state === 'draining' && graceful) return [];
  const cfg = generationOf(m, w.generation)?.config;
  const exec = cfg?.worker.kind === 'exec';
  const signal = !graceful || (!exec && !w.handlers) ? 'SIGTERM' : exec ? cfg!.workerStopSignal : 'SIGQUIT';
  const ms = timeoutMs ?? cfg?.workerShutdownTimeoutMs ?? m.config.workerShutdownTimeoutMs;
  return [
    { do: 'set-worker', pid: w.pid, set: { state: 'draining', stopDeadline: m.now + ms } },
    { do: 'signal', pid: w.pid, signal },
    { do: 'timer', timer: { kind: 'kill', pid: w.pid }, ms },
  ];
}

/** A generation retires: its workers stop gracefully, and no respawn or ready timeout of it is left. */
export function stopGeneration(m: Model, generation: number): Effect[] {
  return [
    { do: 'set-generation', generation, set: { role: 'retiring' } },
    ...clearTimers(generation),
    ...workersOf(m, generation).flatMap((w) => stopWorker(m, w, 'graceful')),
  ];
}

export function clearTimers(generation: number): Effect[] {
  return [
    { do: 'timer', timer: { kind: 'respawn', generation }, ms: null },
    { do: 'timer', timer: { kind: 'ready', generation }, ms: null },
  ];
}

