// One event, one plan: what the master does about a signal, a child's exit or message, a
// timer or a control request, from the model and (for a reload or an upgrade) what preparing
// it gave. Master.handle makes the effects, then settle.ts looks again. Facts an event only
// records (a heartbeat's figures, a handover's counts) are written down before (master.ts).
import os from 'node:os';
import { batchSlots } from '../protocol.js';
import { planBatchDrained, planIncoming } from './batch-plans.js';
import type { Effect } from './effects.js';
import type { MasterEvent } from './event-queue.js';
import type { Generation } from './generation.js';
import { generationOf, workerOf, type Model } from './model.js';
import { planAsked, planUpgrade, type Prepared } from './plans.js';
import { planReloadFailed } from './reload-plans.js';
import { meaningOf } from './signals.js';
import { describeExit } from '../proc.js';
import { planChecks, planNotStarted, planWorkerExit, planWorkerReady } from './worker-plans.js';

/** How the new master of an upgrade-exit event went, as the rollback's log line says it. */
function howItExited(ev: Extract<MasterEvent, { type: 'upgrade-exit' }>): string {
  return ev.error ? `could not be started: ${ev.error}` : describeExit(ev.code, ev.signal);
}


/** The master's first generation, prepared before the loop: committed, started by settle. */
function planStart(m: Model, gen: Generation): Effect[] {
  const id = m.nextGeneration;
  const incoming = planIncoming(m, id);
  return [
    ...incoming.effects,
    { do: 'add-generation', gen, id, role: 'active', slots: incoming.slots },
    ...(gen.logAlert ? [{ do: 'log', level: 'alert', line: gen.logAlert } satisfies Effect] : []),
    { do: 'timer', timer: { kind: 'ready', generation: id }, ms: gen.config.readyTimeoutMs },
    { do: 'set', set: { phase: { name: 'running' } } },
  ];
}

export function step(m: Model, ev: MasterEvent, prepared: Prepared | null = null): Effect[] {
  switch (ev.type) {
    case 'start':
      return planStart(m, ev.gen);
    case 'signal': {
      const number = os.constants.signals[ev.signal];
      if (ev.signal === 'SIGWINCH' && m.onTerminal) {
        return [{ do: 'log', level: 'info', line: `signal ${number} (${ev.signal}) received, ignored: the master runs in the foreground on a terminal` }];
      }
      const meaning = meaningOf(ev.signal, m.config.termShutdown);
      return [{ do: 'log', level: 'notice', line: `signal ${number} (${ev.signal}) received, ${meaning.action}` }, ...planAsked(m, meaning.command, { prepared })];
    }
    case 'control-reload':
      // The client waits for the reload it started; an ignored one answers only its own client.
      return planAsked(m, 'reload', { prepared, waiter: ev.done });
    case 'control-upgrade':
      // As USR2, and the client hears each outcome; the master then completes the upgrade itself (settle.ts).
      return [{ do: 'log', level: 'notice', line: 'upgrade asked on the control socket' }, ...planAsked(m, 'upgrade', { prepared, upgradeWaiter: ev.waiter })];
    case 'worker-exit':
      return planWorkerExit(m, ev.pid, ev.code, ev.signal);
    case 'worker-message':
      return ev.msg.t === 'ready' ? planWorkerReady(m, ev.pid) : [];
    case 'worker-notify':
      return ev.msg.split('\n').includes('READY=1') ? planWorkerReady(m, ev.pid) : [];
    case 'spawn-failed':
      return planNotStarted(m, ev.generation, ev.why);
    case 'tick':
      return planChecks(m);
    case 'ready-timeout': {
      // A reload whose workers are not all ready by now fails.
      const gen = generationOf(m, ev.generation);
      if (gen?.role !== 'pending' || gen.everReady) return [];
      return planReloadFailed(m, gen.id, `the workers of generation ${gen.id} were not ready within ${gen.config.readyTimeoutMs}ms`);
    }
    case 'kill-timeout':
      if (!workerOf(m, ev.pid)) return [];
      return [
        { do: 'log', level: 'warn', line: `worker process ${ev.pid} did not exit in time, killing it` },
        { do: 'signal', pid: ev.pid, signal: 'SIGKILL' },
      ];
    case 'upgrade-ready':
      return planUpgrade(m, { type: 'ready', pid: ev.pid });
    case 'upgrade-exit':
      return planUpgrade(m, { type: 'exit', pid: ev.pid, how: howItExited(ev) });
    case 'upgrade-timeout':
      return planUpgrade(m, { type: 'timeout', pid: ev.pid });
    case 'upgrade-batch': {
      const { pid, step, steps } = ev.msg;
      return planUpgrade(m, { type: 'batch-ready', pid, slots: batchSlots(ev.msg), step: Number(step) || 0, steps: Number(steps) || 0 });
    }
    case 'batch-drained':
      return planBatchDrained(m);
    // A timer's end (settle starts what the step held back), or facts only recorded.
    case 'respawn':
    case 'reap':
    case 'watchdog':
    case 'control-handover':
      return [];
  }
}
